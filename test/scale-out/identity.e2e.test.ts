/**
 * Scale-out gives the one-process result byte for byte (docs/scale-out.md): plan + n shard tasks
 * + merge, and --local, write the same model, report, samples, heatmap and sweep models as a
 * plain `cmd analyze` with the same options, for n = 1, 3 and 4.
 */
import { createHash } from 'node:crypto';
import fs, { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

/**
 * sha256 of the cmd-model.safetensors that plain `cmd analyze fixtures/lenet5-fmnist/npz` (default
 * options) wrote on main before scale-out existed (commit bdc8306), taken with the input folder's
 * absolute path blanked out of its metadata (`cmd.source` records it, so the raw file hash depends
 * on where the repository is checked out; raw: 0e547e4c… in /work/wt-i11-shard). Sharding must
 * not move it.
 */
const HELD_MODEL_SHA256 = 'd046f5291192ee1b04ac59125bdb872ef9cfa13a878c217b2643e33173b0313d';

/** The model's sha256 with `cmd.source`'s dir replaced by a placeholder (header JSON, then the data bytes). */
function modelShaWithoutInputPath(file: string): string {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const source = JSON.parse(header.__metadata__['cmd.source']);
  header.__metadata__['cmd.source'] = JSON.stringify({ ...source, dir: '<input>' });
  return createHash('sha256').update(JSON.stringify(header)).update(buf.subarray(8 + n)).digest('hex');
}

const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Every file analyze writes that must not depend on how the run was split (run-info.json may). */
function products(out: string): Record<string, string> {
  const files = ['cmd-model.safetensors', 'report.json', 'samples.json', 'sampled-corr.npy'];
  const sweep = path.join(out, 'sweep');
  if (fs.existsSync(sweep)) files.push(...fs.readdirSync(sweep).sort().map((f) => `sweep/${f}`));
  return Object.fromEntries(files.map((f) => [f, sha(path.join(out, f))]));
}

function ok(args: string[], env?: Record<string, string>): void {
  const r = runCli(args, { env });
  if (r.status !== 0) throw new Error(`cmd ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
}

function plain(input: string, out: string, opts: string[]): Record<string, string> {
  ok(['analyze', input, '-o', out, ...opts, '--workers', '2', '-q']);
  return products(out);
}

/** Plan, then each shard as its own process (in reverse order: order must not matter), then merge. */
function planShardMerge(input: string, out: string, opts: string[], n: number): Record<string, string> {
  ok(['analyze', input, '-o', out, ...opts, '--plan-only', '--shards', String(n), '--workers', '2', '-q']);
  expect(fs.readdirSync(out)).toEqual(['plan']);
  for (let i = n - 1; i >= 0; i--) ok(['analyze', '--plan', out, '--shard', `${i}/${n}`, '--workers', '1', '-q']);
  const r = runCli(['merge', out, '--json']);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toBe(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
  expect(fs.readdirSync(path.join(out, 'shards')).sort()).toEqual(Array.from({ length: n }, (_, i) => `${i}-of-${n}`).sort());
  expect(fs.existsSync(path.join(out, 'plan', 'plan.json'))).toBe(true);
  return products(out);
}

function local(input: string, out: string, opts: string[], n: number): Record<string, string> {
  ok(['analyze', input, '-o', out, ...opts, '--shards', String(n), '--local', '--workers', '2', '-q']);
  return products(out);
}

describe('scale-out is byte-identical to one process', () => {
  const held = fixture('lenet5-fmnist', 'npz');
  let base: string;
  let heldPlain: Record<string, string>;
  beforeAll(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'cmd-scale-out-'));
    heldPlain = plain(held, path.join(base, 'plain'), []);
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('held fixture, default options: plain analyze still writes the model committed before scale-out', () => {
    expect(modelShaWithoutInputPath(path.join(base, 'plain', 'cmd-model.safetensors'))).toBe(HELD_MODEL_SHA256);
  });

  for (const n of [1, 3, 4]) {
    it(`held fixture, default options (one chunk: some shards are empty), n = ${n}: plan + shards + merge and --local`, () => {
      const dir = tempDir();
      const sharded = planShardMerge(held, path.join(dir, 'sharded'), [], n);
      expect(sharded).toEqual(heldPlain);
      expect(modelShaWithoutInputPath(path.join(dir, 'sharded', 'cmd-model.safetensors'))).toBe(HELD_MODEL_SHA256);
      expect(local(held, path.join(dir, 'local'), [], n)).toEqual(heldPlain);
    });
  }

  it('held fixture, many chunks, a --modes 10,2,5 sweep and all baselines (Gram blocks too): n = 3 by tasks, n = 4 --local', () => {
    const dir = tempDir();
    const opts = ['--chunk-size', '5000', '--modes', '10,2,5', '--baselines', 'all', '--samples', '600', '--seed', '3'];
    const want = plain(held, path.join(dir, 'plain'), opts);
    expect(Object.keys(want)).toContain('sweep/cmd-model-M5.safetensors');
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'plain', 'report.json'), 'utf8')).baselines).toBeTruthy();
    expect(planShardMerge(held, path.join(dir, 'sharded'), opts, 3)).toEqual(want);
    expect(local(held, path.join(dir, 'local'), opts, 4)).toEqual(want);
  });

  it('held fixture, --online (the warm-up decomposition is the plan), many chunks: n = 1, 3, 4 by tasks and n = 3 --local', () => {
    const dir = tempDir();
    const opts = ['--online', '--warmup', '8', '--chunk-size', '5000', '--samples', '700', '--seed', '5'];
    const want = plain(held, path.join(dir, 'plain'), opts);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'plain', 'report.json'), 'utf8')).method.variant).toBe('online');
    for (const n of [1, 3, 4]) expect(planShardMerge(held, path.join(dir, `s${n}`), opts, n), `n = ${n}`).toEqual(want);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 's4', 'run-info.json'), 'utf8')).analyze).toMatchObject({ mode: 'sharded', variant: 'online', shards: 4 });
    expect(local(held, path.join(dir, 'l3'), opts, 3)).toEqual(want);
    // Default options (one chunk over the whole model: most shards are empty) too.
    const oneChunk = ['--online'];
    expect(planShardMerge(held, path.join(dir, 'one'), oneChunk, 3)).toEqual(plain(held, path.join(dir, 'one-plain'), oneChunk));
  });

  it('second fixture (fmnist-mlp, tfjs folders, many chunks): n = 3 by tasks, n = 4 --local', () => {
    const dir = tempDir();
    const input = fixture('fmnist-mlp', 'checkpoints');
    const opts = ['--chunk-size', '4096', '--modes', '6', '--baselines', 'avg-last-k,ema'];
    const want = plain(input, path.join(dir, 'plain'), opts);
    expect(planShardMerge(input, path.join(dir, 's3'), opts, 3)).toEqual(want);
    expect(local(input, path.join(dir, 'l4'), opts, 4)).toEqual(want);
  });
});
