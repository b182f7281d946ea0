/**
 * `cmd reconstruct --plan OUT --shard i/n` (docs/scale-out.md, "Reconstructions"): the chosen
 * checkpoints and their evaluation split over tasks; `cmd merge` gathers them into
 * reconstructed/ and report.json byte for byte as a plain `cmd reconstruct` on the merged run
 * writes them. A task whose evaluation fails writes no shard, and merge names it.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const held = fixture('lenet5-fmnist', 'npz');
const OPTS = ['--chunk-size', '5000', '--samples', '500', '--baselines', 'avg-last-k,ema'];
// A real evaluation: reads each checkpoint it is given and scores its values.
const score = path.join(repoRoot, 'test', 'fixtures-scripts', 'checkpoint-score.mjs');
const EVAL = `node ${score} {checkpoint}`;
const REC = ['--checkpoints', '5,12,20,25', '--avg-last', '3', '--eval-every', '6'];
// Fewer evaluations where only the bookkeeping is under test.
const FEW = ['--checkpoints', '5,12,20,25', '--avg-last', '3'];

function ok(args: string[]): void {
  const r = runCli(args);
  if (r.status !== 0) throw new Error(`cmd ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
}

/** Relative path → sha256 of every file under `dir`. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!e.isFile()) continue;
    const p = path.join(e.parentPath, e.name);
    out[path.relative(dir, p)] = createHash('sha256').update(fs.readFileSync(p)).digest('hex');
  }
  return out;
}

/** Plan, n analyze shards, merge: a merged planned run in `out`. */
function mergedRun(out: string, n: number): void {
  ok(['analyze', held, '-o', out, ...OPTS, '--plan-only', '--shards', String(n), '--workers', '1', '-q']);
  for (let i = 0; i < n; i++) ok(['analyze', '--plan', out, '--shard', `${i}/${n}`, '--workers', '1', '-q']);
  ok(['merge', out, '-q']);
}

describe('cmd reconstruct --plan / --shard', () => {
  it('n = 3 tasks (in reverse order) and merge give the files and report of a plain cmd reconstruct', () => {
    const dir = tempDir();
    const plain = path.join(dir, 'plain');
    ok(['analyze', held, '-o', plain, ...OPTS, '-q']);
    ok(['reconstruct', '-o', plain, ...REC, '--eval-cmd', EVAL, '-q']);
    const report = JSON.parse(fs.readFileSync(path.join(plain, 'report.json'), 'utf8'));
    // Sanity: 4 written positions + every 6th, the averaged model and the EMA are evaluated.
    expect(report.evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([1, 5, 7, 12, 13, 19, 20, 25]);
    expect(report.evaluation.average.lastK).toBe(3);
    expect(report.baselines.find((b: { name: string }) => b.name.startsWith('ema-')).metrics.accuracy).toBeTypeOf('number');

    const out = path.join(dir, 'sharded');
    mergedRun(out, 3);
    const modelBefore = tree(out)['cmd-model.safetensors'];
    for (const i of [2, 0, 1]) ok(['reconstruct', '--plan', out, '--shard', `${i}/3`, ...REC, '--eval-cmd', EVAL, '-q']);
    expect(fs.readdirSync(path.join(out, 'reconstruct-shards')).sort()).toEqual(['0-of-3', '1-of-3', '2-of-3']);
    ok(['merge', out, '-q']);
    expect(fs.readFileSync(path.join(out, 'report.json'), 'utf8')).toBe(fs.readFileSync(path.join(plain, 'report.json'), 'utf8'));
    expect(tree(path.join(out, 'reconstructed'))).toEqual(tree(path.join(plain, 'reconstructed')));
    expect(tree(out)['cmd-model.safetensors']).toBe(modelBefore);
  });

  it('an eval command scores the very files each task writes (not scratch copies)', () => {
    const dir = tempDir();
    const out = path.join(dir, 'sharded');
    mergedRun(out, 2);
    const log = path.join(dir, 'evals.log');
    const count = path.join(repoRoot, 'test', 'fixtures-scripts', 'count-eval.mjs');
    for (const i of [0, 1]) {
      const r = runCli(['reconstruct', '--plan', out, '--shard', `${i}/2`, ...FEW, '--eval-cmd', `node ${count} {checkpoint}`, '-q'], { env: { CMD_EVAL_LOG: log } });
      expect(r.status, r.stderr).toBe(0);
    }
    const fromOutput = fs.readFileSync(log, 'utf8').trim().split('\n').filter((p) => path.basename(path.dirname(p)) === 'reconstructed').map((p) => path.basename(p)).sort();
    expect(fromOutput).toEqual(['avg-last-3.npz', 'epoch_005.npz', 'epoch_012.npz', 'epoch_020.npz', 'epoch_025.npz']);
  });

  it('a failed evaluation writes no shard; merge names it and writes nothing; its rerun completes the run', () => {
    const out = path.join(tempDir(), 'out');
    mergedRun(out, 2);
    const before = tree(out);
    // Step 20 falls in task 1's half of the positions: its evaluation fails there while the
    // marker file exists (a broken node, say), and succeeds once it is gone.
    const marker = path.join(path.dirname(out), 'broken');
    fs.writeFileSync(marker, '');
    const failing = `{ test ! -e ${marker} || test {step} -ne 20; } && ${EVAL}`;
    ok(['reconstruct', '--plan', out, '--shard', '0/2', ...FEW, '--eval-cmd', failing, '-q']);
    const r = runCli(['reconstruct', '--plan', out, '--shard', '1/2', ...FEW, '--eval-cmd', failing, '-q']);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(fs.readdirSync(path.join(out, 'reconstruct-shards'))).toEqual(['0-of-2']);
    const m = runCli(['merge', out]);
    expect(m.status).toBe(2);
    expect(m.stderr).toMatch(/rerun reconstruct shard 1 \(1 missing\)/);
    expect(m.stderr.trim().split('\n')).toHaveLength(1);
    const after = tree(out);
    for (const f of ['cmd-model.safetensors', 'report.json', 'run-info.json']) expect(after[f], f).toBe(before[f]);
    expect(fs.existsSync(path.join(out, 'reconstructed'))).toBe(false);
    // A task run with other options is foreign to the rest: merge names it too.
    fs.rmSync(marker);
    ok(['reconstruct', '--plan', out, '--shard', '1/2', ...FEW, '--avg-last', '2', '--eval-cmd', failing, '-q']);
    expect(runCli(['merge', out]).stderr).toMatch(/rerun reconstruct shard 1 \(1 run with other options\)/);
    // The rerun with the run's options replaces that shard, and merge completes.
    ok(['reconstruct', '--plan', out, '--shard', '1/2', ...FEW, '--eval-cmd', failing, '-q']);
    ok(['merge', out, '-q']);
    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([5, 12, 20, 25]);
    expect(report.outputs.reconstructed).toHaveLength(5);
  });

  it('flags: --plan takes no folder, output or method flag; an online plan or an unmerged run is refused', () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    ok(['analyze', held, '-o', out, ...OPTS, '--plan-only', '--shards', '2', '--workers', '1', '-q']);
    const unmerged = runCli(['reconstruct', '--plan', out, '--shard', '0/2', '-q']);
    expect([unmerged.status, unmerged.stderr]).toEqual([2, `cmd: ${path.join(out, 'cmd-model.safetensors')}: not found: run cmd merge before cmd reconstruct --plan\n`]);
    for (const extra of [['--modes', '3'], ['-o', 'x'], [held], ['--online']]) {
      const r = runCli(['reconstruct', ...extra, '--plan', out, '--shard', '0/2']);
      expect(r.status, extra.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const online = path.join(dir, 'online');
    ok(['analyze', held, '-o', online, '--online', '--plan-only', '--shards', '2', '-q']);
    const r = runCli(['reconstruct', '--plan', online, '--shard', '0/2', '-q']);
    expect(r.status).toBe(2);
    expect(r.stderr).toMatch(/splits post-hoc runs/);
  });
});
