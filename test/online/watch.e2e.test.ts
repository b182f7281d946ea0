/**
 * `cmd watch` end to end with the built CLI: a writer process produces checkpoints (real LeNet-5
 * npz files) piece by piece while the watcher runs; the watcher is killed with SIGKILL mid-run,
 * the checkpoints it had committed are moved away, and a restarted watcher must finish without
 * opening any of them; the result must equal the offline `cmd analyze --online` byte for byte.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { readReport } from '../../src/output/report.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const bin = path.join(repoRoot, 'bin', 'cmd.js');
const EPOCHS = 9;
const F = 3;

/** Writes epoch files in 5 pieces 250 ms apart; odd epochs under a temp name renamed into place. */
const writerSource = `
import fs from 'node:fs';
import path from 'node:path';
const [src, dst, count] = process.argv.slice(1);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
for (let e = 1; e <= Number(count); e++) {
  const name = 'epoch_' + String(e).padStart(3, '0') + '.npz';
  const bytes = fs.readFileSync(path.join(src, name));
  const target = path.join(dst, name);
  const writeTo = e % 2 === 1 ? target + '.partial' : target;
  const fd = fs.openSync(writeTo, 'w');
  const piece = Math.ceil(bytes.length / 5);
  for (let p = 0; p < 5; p++) {
    fs.writeSync(fd, bytes, p * piece, Math.min(piece, bytes.length - p * piece), p * piece);
    await sleep(250);
  }
  fs.closeSync(fd);
  if (writeTo !== target) fs.renameSync(writeTo, target);
}
`;

function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

function watcher(src: string, out: string, trace: string, extra: string[] = []): ChildProcess {
  return spawn(process.execPath, [bin, 'watch', src, '-o', out, '--warmup', String(F), '--poll-ms', '100', '--workers', '2', '-q', ...extra], {
    env: { ...process.env, CMD_TRACE_OPENS: trace },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

async function committedIndex(out: string): Promise<number> {
  try {
    return (JSON.parse(await fsp.readFile(path.join(out, '.online-state', 'commit.json'), 'utf8')) as { t: number }).t;
  } catch {
    return -1;
  }
}

async function waitFor(cond: () => Promise<boolean>, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('cmd watch (built CLI) alongside a writer', () => {
  it('survives kill -9, resumes without opening earlier checkpoints, and matches analyze --online', async () => {
    const root = tempDir('cmd-watch-');
    const src = path.join(root, 'ckpts');
    const out = path.join(root, 'out');
    const stash = path.join(root, 'stash');
    await fsp.mkdir(src);
    await fsp.mkdir(stash);
    const trace1 = path.join(root, 'trace1.txt');
    const trace2 = path.join(root, 'trace2.txt');

    const writer = spawn(process.execPath, ['--input-type=module', '-e', writerSource, fixture('lenet5-fmnist', 'npz'), src, String(EPOCHS)], { stdio: 'ignore' });
    const writerDone = exitOf(writer);
    const first = watcher(src, out, trace1, ['--until', String(EPOCHS)]);
    const firstExit = exitOf(first);
    // Let it commit the warm-up and a couple of updates, then kill it hard.
    await waitFor(async () => (await committedIndex(out)) >= F + 2, 30_000);
    first.kill('SIGKILL');
    expect((await firstExit).signal).toBe('SIGKILL');
    const commit = JSON.parse(await fsp.readFile(path.join(out, '.online-state', 'commit.json'), 'utf8')) as { t: number; checkpoints: { name: string }[] };
    expect(commit.t).toBeGreaterThanOrEqual(F + 2);
    expect(commit.t).toBeLessThan(EPOCHS - 1);
    // The committed checkpoints go away: a restart that needed any of them would fail.
    const committed = commit.checkpoints.map((c) => c.name);
    for (const name of committed) await fsp.rename(path.join(src, name), path.join(stash, name));

    const second = watcher(src, out, trace2, ['--until', String(EPOCHS)]);
    let log = '';
    second.stderr!.on('data', (d) => (log += String(d)));
    const secondExit = await exitOf(second);
    expect(secondExit.code, log).toBe(0);
    await writerDone;

    const opened = readFileSync(trace2, 'utf8').split('\n').filter(Boolean).map((p) => path.basename(p));
    for (const name of committed) expect(opened).not.toContain(name);
    const rest = Array.from({ length: EPOCHS - committed.length }, (_, i) => `epoch_${String(committed.length + i + 1).padStart(3, '0')}.npz`);
    expect([...new Set(opened)].sort()).toEqual(rest);
    expect(readFileSync(trace1, 'utf8')).toContain('epoch_001.npz');

    const report = await readReport(path.join(out, 'report.json'));
    expect(report.method.variant).toBe('online');
    expect(report.checkpoints.map((c) => c.name)).toEqual(Array.from({ length: EPOCHS }, (_, i) => `epoch_${String(i + 1).padStart(3, '0')}.npz`));
    expect(existsSync(path.join(out, 'samples.json'))).toBe(true);
    expect((await fsp.readdir(path.join(out, '.online-state'))).filter((f) => f.startsWith('sums-')).every((f) => f.endsWith(`.t${EPOCHS - 1}.bin`))).toBe(true);

    // Offline on the same folder (committed files restored): the same model, byte for byte.
    for (const name of committed) await fsp.rename(path.join(stash, name), path.join(src, name));
    const offline = path.join(root, 'offline');
    const run = spawnSync(process.execPath, [bin, 'analyze', src, '--online', '--warmup', String(F), '-o', offline, '--workers', '1', '-q'], { encoding: 'utf8' });
    expect(run.status, run.stderr).toBe(0);
    const a = await fsp.readFile(path.join(out, 'cmd-model.safetensors'));
    const b = await fsp.readFile(path.join(offline, 'cmd-model.safetensors'));
    expect(a.length).toBe(b.length);
    expect(Buffer.compare(a, b)).toBe(0);
    expect(report.checkpoints).toEqual((await readReport(path.join(offline, 'report.json'))).checkpoints);

    // Ctrl-C while waiting for a checkpoint that never comes: exit 130, state untouched.
    const before = await fsp.readFile(path.join(out, '.online-state', 'commit.json'), 'utf8');
    const third = watcher(src, out, path.join(root, 'trace3.txt'), ['--until', '999']);
    let log3 = '';
    third.stderr!.on('data', (d) => (log3 += String(d)));
    await new Promise((r) => setTimeout(r, 1500));
    third.kill('SIGINT');
    const thirdExit = await exitOf(third);
    expect(thirdExit.code, log3).toBe(130);
    expect(await fsp.readFile(path.join(out, '.online-state', 'commit.json'), 'utf8')).toBe(before);
    expect(existsSync(path.join(root, 'trace3.txt'))).toBe(false);
    expect(Buffer.compare(await fsp.readFile(path.join(out, 'cmd-model.safetensors')), b)).toBe(0);
  });
});
