/**
 * What goes wrong in a sharded run and how it is reported (docs/scale-out.md): a shard that is
 * missing, duplicated, from another plan or half-written makes `cmd merge` exit 2 with one line
 * listing the shards to rerun and write nothing; a rerun replaces a shard atomically, also when
 * two tasks run the same shard at once; a task killed mid-way leaves no shard file; checkpoints
 * changed after planning and contradictory flags exit 2.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet, modelledTensors } from '../../src/checkpoints/checkpoint-set.ts';
import { tensorIndexOf } from '../../src/checkpoints/parameter-space.ts';
import { readPlan } from '../../src/scale-out/plan.ts';
import { runCli } from '../helpers/cli.ts';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const held = fixture('lenet5-fmnist', 'npz');
const OPTS = ['--chunk-size', '5000', '--samples', '400', '--modes', '5'];
const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

function ok(args: string[], env?: Record<string, string>): string {
  const r = runCli(args, { env });
  if (r.status !== 0) throw new Error(`cmd ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return r.stderr;
}

function planned(n: number, input = held, extra: string[] = []): string {
  const out = path.join(tempDir(), 'out');
  ok(['analyze', input, '-o', out, ...OPTS, ...extra, '--plan-only', '--shards', String(n), '--workers', '1', '-q']);
  return out;
}

function shard(out: string, i: number, n: number, env?: Record<string, string>): void {
  ok(['analyze', '--plan', out, '--shard', `${i}/${n}`, '--workers', '1', '-q'], env);
}

function allShards(out: string, n: number): void {
  for (let i = 0; i < n; i++) shard(out, i, n);
}

const shardFile = (out: string, i: number, n: number) => path.join(out, 'shards', `${i}-of-${n}`);

/** Merge must fail with one stderr line naming these shards, and leave only plan/ and shards/. */
function expectMergeRefused(out: string, rerun: string, why: RegExp): void {
  const r = runCli(['merge', out]);
  expect(r.status).toBe(2);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toContain(`rerun ${rerun}`);
  expect(lines[0]).toMatch(why);
  expect(fs.readdirSync(out).sort()).toEqual(['plan', 'shards']);
}

const drafts = (out: string) => fs.readdirSync(path.join(out, 'shards')).filter((f) => f.endsWith('.tmp')).sort();

/**
 * Shard 1 of 2 killed after its first chunk (the test hook) leaves no shard, only its draft;
 * merge names the shard; the rerun removes the dead task's draft and completes the run.
 */
function killShardOneThenRerun(out: string): void {
  const killed = runCli(['analyze', '--plan', out, '--shard', '1/2', '--workers', '1', '-q'], { env: { CMD_TEST_KILL_AFTER_CHUNKS: '1' } });
  expect(killed.status).toBeNull();
  expect(fs.existsSync(shardFile(out, 1, 2))).toBe(false);
  const left = drafts(out);
  // `.<shard>.<host>.<pid>.<12 hex>.tmp`: the draft names the host and process that wrote it.
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_');
  expect(left).toHaveLength(1);
  expect(left[0].startsWith(`.1-of-2.${host}.`)).toBe(true);
  expect(left[0].slice(`.1-of-2.${host}.`.length)).toMatch(/^\d+\.[0-9a-f]{12}\.tmp$/);
  expectMergeRefused(out, 'shard 1', /1 missing/);
  const rerun = runCli(['analyze', '--plan', out, '--shard', '1/2', '--workers', '1']);
  expect(rerun.status, rerun.stderr).toBe(0);
  expect(rerun.stderr).toContain(`note: removed the draft of shard 1 left by a task that no longer runs (${left[0]})`);
  expect(drafts(out)).toEqual([]);
  const merged = runCli(['merge', out]);
  expect(merged.status).toBe(0);
  expect(merged.stderr).not.toMatch(/draft/);
}

describe('cmd merge refuses incomplete shard sets', () => {
  it('a missing shard', () => {
    const out = planned(4);
    for (const i of [0, 1, 3]) shard(out, i, 4);
    expectMergeRefused(out, 'shard 2', /2 missing/);
  });

  it('a duplicate shard (a copy of shard 1 under the name of shard 2)', () => {
    const out = planned(3);
    allShards(out, 3);
    fs.copyFileSync(shardFile(out, 1, 3), shardFile(out, 2, 3));
    expectMergeRefused(out, 'shards 1, 2', /1 duplicate.*2 missing/);
  });

  it("a foreign shard (another plan's, same n)", () => {
    const out = planned(3);
    const other = planned(3, held, ['--seed', '9']);
    allShards(out, 3);
    shard(other, 1, 3);
    fs.copyFileSync(shardFile(other, 1, 3), shardFile(out, 1, 3));
    expectMergeRefused(out, 'shard 1', /1 foreign/);
  });

  it('a half-written shard (truncated) and a damaged one (a flipped payload byte)', () => {
    const out = planned(4);
    allShards(out, 4);
    const f0 = shardFile(out, 0, 4);
    fs.truncateSync(f0, fs.statSync(f0).size - 100);
    const f3 = shardFile(out, 3, 4);
    const bytes = fs.readFileSync(f3);
    bytes[200] ^= 0xff;
    fs.writeFileSync(f3, bytes);
    expectMergeRefused(out, 'shards 0, 3', /0 half-written.*3 half-written: checksum mismatch/);
  });

  it('damaged payloads only: merge finds them as it copies, names every one, and writes nothing', () => {
    const out = planned(3, held, ['--chunk-size', '2000']);
    allShards(out, 3);
    for (const i of [0, 2]) {
      const f = shardFile(out, i, 3);
      const bytes = fs.readFileSync(f);
      bytes[Math.floor(bytes.length / 2)] ^= 0x01;
      fs.writeFileSync(f, bytes);
    }
    expectMergeRefused(out, 'shards 0, 2', /0 half-written: checksum mismatch.*2 half-written: checksum mismatch/);
  });
});

describe('shard tasks', () => {
  it('a rerun replaces the shard atomically, and two tasks of one shard at once leave one complete file', async () => {
    const out = planned(2);
    allShards(out, 2);
    const first = sha(shardFile(out, 1, 2));
    const inode = fs.statSync(shardFile(out, 1, 2)).ino;
    shard(out, 1, 2);
    expect(fs.statSync(shardFile(out, 1, 2)).ino).not.toBe(inode);
    expect(sha(shardFile(out, 1, 2))).toBe(first);
    const both = await Promise.all(
      [0, 1].map(
        () =>
          new Promise<number | null>((resolve) => {
            const p = spawn(process.execPath, [path.join(repoRoot, 'bin', 'cmd.js'), 'analyze', '--plan', out, '--shard', '1/2', '--workers', '1', '-q'], { stdio: 'ignore' });
            p.on('close', (code) => resolve(code));
          }),
      ),
    );
    expect(both).toEqual([0, 0]);
    expect(fs.readdirSync(path.join(out, 'shards')).sort()).toEqual(['0-of-2', '1-of-2']);
    expect(sha(shardFile(out, 1, 2))).toBe(first);
    expect(runCli(['merge', out, '-q']).status).toBe(0);
  });

  it('CMD_TEST_KILL_AFTER_CHUNKS: a task killed after its first chunk leaves no shard; its rerun completes the run', () => {
    const out = planned(2);
    shard(out, 0, 2);
    killShardOneThenRerun(out);
  });

  it('a rerun removes only its own shard\'s drafts whose writer is gone on this host; merge names the rest', () => {
    const out = planned(2);
    const dir = path.join(out, 'shards');
    fs.mkdirSync(dir, { recursive: true });
    const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_');
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const elsewhere = '.0-of-2.other-node.4242.0123456789ab.tmp';
    const live = `.0-of-2.${host}.${process.pid}.0123456789ab.tmp`;
    const deadOwn = `.0-of-2.${host}.${gone}.0123456789ab.tmp`;
    const deadOther = `.1-of-2.${host}.${gone}.abcdef012345.tmp`;
    for (const f of [elsewhere, live, deadOwn, deadOther]) fs.writeFileSync(path.join(dir, f), 'draft');
    const first = runCli(['analyze', '--plan', out, '--shard', '0/2', '--workers', '1']);
    expect(first.status, first.stderr).toBe(0);
    expect(first.stderr).toContain(`note: removed the draft of shard 0 left by a task that no longer runs (${deadOwn})`);
    expect(drafts(out)).toEqual([elsewhere, live, deadOther].sort());
    shard(out, 1, 2);
    expect(drafts(out)).toEqual([elsewhere, live].sort());
    const merged = runCli(['merge', out]);
    expect(merged.status, merged.stderr).toBe(0);
    expect(merged.stderr).toContain(`${dir} holds 2 drafts of shard tasks that did not finish (0.0 MB: ${[elsewhere, live].sort().join(', ')}); delete them once no shard task runs`);
  });

  it('--online: a task killed after its first chunk leaves no shard, and a checkpoint changed after planning exits 2 naming it', () => {
    const input = copyInto(tempDir(), held, 'ckpts');
    const out = planned(2, input, ['--online', '--warmup', '6']);
    shard(out, 0, 2);
    killShardOneThenRerun(out);
    // A checkpoint after the warm-up, rewritten with other values (same size and mtime).
    const victim = path.join(input, 'epoch_020.npz');
    const before = fs.statSync(victim);
    fs.copyFileSync(path.join(input, 'epoch_021.npz'), victim);
    fs.utimesSync(victim, before.atime, before.mtime);
    const r = runCli(['analyze', '--plan', out, '--shard', '0/2', '-q']);
    expect([r.status, r.stderr]).toEqual([2, `cmd: ${victim}: holds other values than when planned; plan again\n`]);
  });

  it('--shard auto takes the index from SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX; bad indices exit 2', () => {
    const out = planned(2);
    const auto = (e: Record<string, string | undefined>) => {
      const clean = { ...process.env, ...e };
      for (const k of Object.keys(e)) if (e[k] === undefined) delete clean[k];
      return runCli(['analyze', '--plan', out, '--shard', 'auto', '--workers', '1', '-q'], { env: clean as Record<string, string> });
    };
    expect(auto({ SLURM_ARRAY_TASK_ID: '1', JOB_COMPLETION_INDEX: undefined }).status).toBe(0);
    expect(fs.existsSync(shardFile(out, 1, 2))).toBe(true);
    expect(auto({ SLURM_ARRAY_TASK_ID: undefined, JOB_COMPLETION_INDEX: '0' }).status).toBe(0);
    expect(fs.existsSync(shardFile(out, 0, 2))).toBe(true);
    const missing = auto({ SLURM_ARRAY_TASK_ID: undefined, JOB_COMPLETION_INDEX: undefined });
    expect([missing.status, missing.stderr]).toEqual([2, 'cmd: --shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set\n']);
    const high = auto({ SLURM_ARRAY_TASK_ID: '2', JOB_COMPLETION_INDEX: undefined });
    expect(high.status).toBe(2);
    expect(high.stderr).toMatch(/SLURM_ARRAY_TASK_ID=2 but the plan has 2 shards/);
    for (const spec of ['2/2', '0/3', 'x']) {
      const r = runCli(['analyze', '--plan', out, '--shard', spec]);
      expect([r.status, r.stderr.split('\n').length]).toEqual([2, 2]);
    }
  });

  it('a checkpoint changed after planning: the task exits 2 naming it', () => {
    const input = copyInto(tempDir(), held, 'ckpts');
    const out = planned(2, input);
    const victim = path.join(input, 'epoch_007.npz');
    // Same size, same mtime, other values: only the sampled-value hashes can tell.
    const before = fs.statSync(victim);
    const bytes = fs.readFileSync(victim);
    const copy = path.join(input, 'epoch_008.npz');
    fs.copyFileSync(copy, victim);
    expect(fs.readFileSync(victim).equals(bytes)).toBe(false);
    fs.utimesSync(victim, before.atime, before.mtime);
    const r = runCli(['analyze', '--plan', out, '--shard', '0/2', '-q']);
    expect(r.status).toBe(2);
    expect(r.stderr).toBe(`cmd: ${victim}: holds other values than when planned; plan again\n`);
    expect(fs.existsSync(path.join(out, 'shards', '0-of-2'))).toBe(false);
    // Touched only: the mtime changed.
    fs.writeFileSync(victim, bytes);
    fs.utimesSync(victim, before.atime, new Date(before.mtimeMs + 5000));
    const t = runCli(['analyze', '--plan', out, '--shard', '0/2', '-q']);
    expect([t.status, t.stderr]).toEqual([2, `cmd: ${victim}: was modified after planning; plan again\n`]);
  });

  it('a sampled value changed after planning: the task whose parameter range holds it exits 2 naming the file, the others need not read it, merge refuses', async () => {
    const input = copyInto(tempDir(), held, 'ckpts');
    // A whole-second mtime, so that setting it back restores exactly what the plan recorded.
    const victimFile = path.join(input, 'epoch_012.npz');
    const mtime = 1_700_000_000;
    fs.utimesSync(victimFile, mtime, mtime);
    const n = 3;
    const out = planned(n, input);
    const { body } = await readPlan(out);
    const set = await loadCheckpointSet(input, body.load);
    const victim = set.checkpoints.find((c) => c.path === victimFile)!;
    const stored = modelledTensors(set, victim);
    const original = fs.readFileSync(victim.path);
    for (let s = 0; s < n; s++) {
      // One sampled parameter inside shard s's range, rewritten in place (stored npz, float32):
      // same size, same mtime, only this shard's sampled-value hash can tell.
      const [g0, g1] = body.shards.parameters[s];
      const g = Array.from(body.decomposition.indices).find((i) => i >= g0 && i < g1)!;
      expect(g).toBeDefined();
      const ti = tensorIndexOf(set.space, g);
      const t = stored[ti];
      expect([t.dtype, t.spans.length, t.spans[0].path]).toEqual(['F32', 1, victim.path]);
      const bytes = Buffer.from(original);
      const at = t.spans[0].offset + 4 * (g - set.space.tensors[ti].offset);
      bytes.writeFloatLE(bytes.readFloatLE(at) + 0.5, at);
      fs.writeFileSync(victim.path, bytes);
      fs.utimesSync(victim.path, mtime, mtime);
      fs.rmSync(path.join(out, 'shards'), { recursive: true, force: true });
      for (let i = 0; i < n; i++) {
        const r = runCli(['analyze', '--plan', out, '--shard', `${i}/${n}`, '--workers', '1', '-q']);
        if (i === s) expect([r.status, r.stderr]).toEqual([2, `cmd: ${victim.path}: holds other values than when planned; plan again\n`]);
        else expect([i, r.status, r.stderr]).toEqual([i, 0, '']);
      }
      expectMergeRefused(out, `shard ${s}`, new RegExp(`${s} missing`));
    }
    // Restored: every task and the merge go through.
    fs.writeFileSync(victim.path, original);
    fs.utimesSync(victim.path, mtime, mtime);
    allShards(out, n);
    expect(runCli(['merge', out, '-q']).status).toBe(0);
  });
});

describe('flags', () => {
  it('--plan takes nothing of the method, input or output; --embed-* cannot be split', () => {
    const out = planned(2);
    for (const extra of [['--modes', '3'], ['-o', 'x'], ['--samples', '50'], ['--baselines', 'ema'], [held]]) {
      const r = runCli(['analyze', ...extra, '--plan', out, '--shard', '0/2']);
      expect(r.status, extra.join(' ')).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
    const dir = tempDir();
    for (const args of [['--plan-only', '--shards', '2'], ['--shards', '2', '--local']]) {
      const r = runCli(['analyze', held, '-o', path.join(dir, 'e'), '--online', '--embed-perc', '5', ...args]);
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(/cannot be split over shards/);
    }
    const s = runCli(['analyze', '--plan', out, '--shard', '0/2', '--embed-window', '3']);
    expect([s.status, /cannot be split/.test(s.stderr)]).toEqual([2, true]);
    expect(fs.existsSync(path.join(dir, 'e'))).toBe(false);
  });
});
