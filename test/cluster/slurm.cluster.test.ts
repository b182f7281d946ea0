/**
 * Sharded runs (docs/scale-out.md) as real Slurm jobs: the held LeNet-5 trajectory is planned
 * once, fitted by a `--array=0-3` job whose tasks find their index with `--shard auto`, and
 * merged; the model and the report must equal a one-process `cmd analyze` byte for byte. Then
 * the ways a real cluster goes wrong: a shard lost and its index resubmitted alone, one shard run
 * by two tasks at once, a task killed mid-shard (the CMD_TEST_KILL_AFTER_CHUNKS hook) and rerun.
 */
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { haveTools } from '../helpers/optional-tools.ts';
import { cmdLine, runJob, sbatch, waitForJobs } from '../helpers/slurm.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

const input = fixture('lenet5-fmnist', 'npz');
// 61,706 parameters in chunks of 5,000: 13 chunks, so every one of 4 shards has several and a
// task killed after its first chunk dies mid-shard.
const METHOD = ['--modes', '10', '--samples', '1000', '--seed', '3', '--chunk-size', '5000'];
const SHARDS = ['0-of-4', '1-of-4', '2-of-4', '3-of-4'];
const OUTPUTS = ['cmd-model.safetensors', 'report.json'];

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const hashes = (dir: string) => Object.fromEntries(OUTPUTS.map((f) => [f, sha(path.join(dir, f))]));
const shardFiles = (out: string) => readdirSync(path.join(out, 'shards')).sort();
const shardTask = cmdLine(['analyze', '--plan', '.', '--shard', 'auto']);

function merge(out: string): { status: number | null; stderr: string } {
  const r = runCli(['merge', out, '--quiet']);
  return { status: r.status, stderr: r.stderr };
}

describe.skipIf(!haveTools('slurm'))('sharded analyze on a Slurm job array', () => {
  let reference: Record<string, string>;
  /** plan/ and the four shards the array wrote, before any merge: each test works on a copy. */
  let sharded: string;
  // Shared by every test of the file (tempDir() would be removed after the first one).
  let shared: string;
  afterAll(() => {
    if (shared) rmSync(shared, { recursive: true, force: true });
  });

  beforeAll(async () => {
    shared = mkdtempSync(path.join(os.tmpdir(), 'cmd-slurm-shared-'));
    const ref = path.join(shared, 'ref');
    const one = runCli(['analyze', input, ...METHOD, '-o', ref, '--quiet']);
    expect(one.status, one.stderr).toBe(0);
    reference = hashes(ref);

    sharded = path.join(shared, 'sharded');
    const plan = runCli(['analyze', input, ...METHOD, '-o', sharded, '--plan-only', '--shards', '4']);
    expect(plan.status, plan.stderr).toBe(0);
    expect(existsSync(path.join(sharded, 'plan'))).toBe(true);
    expect(existsSync(path.join(sharded, 'cmd-model.safetensors'))).toBe(false);

    // The tasks run in the output folder and name it '.', as a batch script in that folder would.
    const ends = await runJob(shardTask, { cwd: sharded, array: '0-3' });
    expect(ends.map((e) => `${e.index} ${e.state} ${e.exitCode}`)).toEqual(['0 COMPLETED 0:0', '1 COMPLETED 0:0', '2 COMPLETED 0:0', '3 COMPLETED 0:0']);
  });

  /** A private copy of the array's output, without Slurm's job logs. */
  function copy(): string {
    const out = path.join(tempDir('cmd-slurm-case-'), 'out');
    cpSync(sharded, out, { recursive: true });
    for (const f of readdirSync(out)) if (f.startsWith('slurm-')) rmSync(path.join(out, f));
    return out;
  }

  it('writes one shard per array index, and their merge equals the one-process run byte for byte', () => {
    expect(shardFiles(sharded)).toEqual(SHARDS);
    const out = copy();
    const m = merge(out);
    expect(m.status, m.stderr).toBe(0);
    expect(hashes(out)).toEqual(reference);
    // The merge keeps the pieces (a rerun of one shard can be merged again).
    expect(shardFiles(out)).toEqual(SHARDS);
    expect(existsSync(path.join(out, 'plan'))).toBe(true);
  });

  it('splits an --online run and a --baselines/--modes sweep the same way (plan once, --array=0-3, merge)', async () => {
    const common = ['--samples', '1000', '--seed', '3', '--chunk-size', '5000'];
    const variants = [
      ['--modes', '10', '--online', '--warmup', '8', ...common],
      ['--modes', '10,4', '--baselines', 'all', ...common],
    ];
    for (const flags of variants) {
      const extra = flags.slice(2, 4);
      const ref = path.join(shared, `ref${extra[0]}`);
      const one = runCli(['analyze', input, ...flags, '-o', ref, '--quiet']);
      expect(one.status, one.stderr).toBe(0);
      const out = path.join(shared, `sharded${extra[0]}`);
      const plan = runCli(['analyze', input, ...flags, '-o', out, '--plan-only', '--shards', '4']);
      expect(plan.status, plan.stderr).toBe(0);
      const ends = await runJob(shardTask, { cwd: out, array: '0-3' });
      expect(ends.map((e) => e.state), extra.join(' ')).toEqual(Array(4).fill('COMPLETED'));
      const m = merge(out);
      expect(m.status, m.stderr).toBe(0);
      expect(hashes(out), extra.join(' ')).toEqual(hashes(ref));
    }
  });

  it('names a lost shard, then merges identically after its index is resubmitted alone (--array=2)', async () => {
    const out = copy();
    rmSync(path.join(out, 'shards', '2-of-4'));
    const lost = merge(out);
    expect(lost.status).toBe(2);
    expect(lost.stderr.trim().split('\n')).toHaveLength(1);
    expect(lost.stderr).toMatch(/\b2\b/);
    expect(lost.stderr).not.toMatch(/\b[013]-of-4\b/);
    expect(existsSync(path.join(out, 'cmd-model.safetensors'))).toBe(false);
    expect(existsSync(path.join(out, 'report.json'))).toBe(false);

    const ends = await runJob(shardTask, { cwd: out, array: '2' });
    expect(ends.map((e) => `${e.index} ${e.state}`)).toEqual(['2 COMPLETED']);
    expect(shardFiles(out)).toEqual(SHARDS);
    const m = merge(out);
    expect(m.status, m.stderr).toBe(0);
    expect(hashes(out)).toEqual(reference);
  });

  it('leaves one complete shard file when two tasks run the same shard at once', async () => {
    const out = copy();
    rmSync(path.join(out, 'shards', '1-of-4'));
    // Each task stamps when its CLI started and ended, to show the two really overlapped.
    const task = `date +%s%N > start-$SLURM_JOB_ID && ${shardTask} && date +%s%N > end-$SLURM_JOB_ID`;
    const a = sbatch(task, { cwd: out, array: '1' });
    const b = sbatch(task, { cwd: out, array: '1' });
    const ends = await waitForJobs([a, b]);
    expect(ends.map((e) => e.state)).toEqual(['COMPLETED', 'COMPLETED']);
    const stamps = readdirSync(out).filter((f) => /^(start|end)-/.test(f));
    const time = (kind: string) => stamps.filter((f) => f.startsWith(kind)).map((f) => BigInt(readFileSync(path.join(out, f), 'utf8').trim()));
    const [starts, endsAt] = [time('start'), time('end')];
    expect(starts).toHaveLength(2);
    expect(endsAt).toHaveLength(2);
    const latestStart = starts.reduce((x, y) => (x > y ? x : y));
    const earliestEnd = endsAt.reduce((x, y) => (x < y ? x : y));
    expect(latestStart < earliestEnd, 'the two tasks did not run at the same time').toBe(true);

    expect(shardFiles(out)).toEqual(SHARDS);
    expect(sha(path.join(out, 'shards', '1-of-4'))).toBe(sha(path.join(sharded, 'shards', '1-of-4')));
    const m = merge(out);
    expect(m.status, m.stderr).toBe(0);
    expect(hashes(out)).toEqual(reference);
  });

  it('a task killed after its first chunk leaves no shard, merge names it, and its rerun merges identically', async () => {
    const out = copy();
    rmSync(path.join(out, 'shards', '3-of-4'));
    // exec: the task's own process is the CLI, so Slurm sees the SIGKILL itself.
    const killed = await runJob(`exec ${shardTask}`, { cwd: out, array: '3', env: { CMD_TEST_KILL_AFTER_CHUNKS: '1' } });
    expect(killed.map((e) => `${e.index} ${e.state} ${e.exitCode}`)).toEqual(['3 FAILED 0:9']);
    // All it can leave is its hidden draft (a SIGKILL runs no clean-up), never a 3-of-4.
    const left = shardFiles(out);
    expect(left.filter((f) => !f.startsWith('.'))).toEqual(SHARDS.slice(0, 3));
    for (const f of left.filter((f) => f.startsWith('.'))) expect(f).toMatch(/^\.3-of-4\..*\.tmp$/);

    const missing = merge(out);
    expect(missing.status).toBe(2);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(/\b3\b/);
    expect(existsSync(path.join(out, 'cmd-model.safetensors'))).toBe(false);

    const rerun = await runJob(shardTask, { cwd: out, array: '3' });
    expect(rerun.map((e) => `${e.index} ${e.state}`)).toEqual(['3 COMPLETED']);
    expect(shardFiles(out).filter((f) => !f.startsWith('.'))).toEqual(SHARDS);
    expect(sha(path.join(out, 'shards', '3-of-4'))).toBe(sha(path.join(sharded, 'shards', '3-of-4')));
    const m = merge(out);
    expect(m.status, m.stderr).toBe(0);
    expect(hashes(out)).toEqual(reference);
  });
});
