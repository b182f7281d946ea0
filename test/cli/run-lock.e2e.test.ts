/**
 * Issue 12 points 4 and 7: one run per output folder (a second run exits 2 naming the holder),
 * and leftovers of killed runs (a lock, staging folders) are removed by the next run, which says so.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';
import { runCli } from '../helpers/cli.ts';

const bin = path.join(repoRoot, 'bin', 'cmd.js');
const flat = fixture('lenet5-fmnist', 'flat');
const small = ['-k', '40', '-m', '2', '--workers', '1'];

function checkpoints(root: string): string {
  const ck = path.join(root, 'ck');
  mkdirSync(ck);
  for (const f of readdirSync(flat).sort()) copyInto(ck, path.join(flat, f));
  return ck;
}

async function waitFor(cond: () => boolean, ms = 60_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A pid that certainly does not run any more: a process that has already exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(r.stdout);
}

describe('run lock on the output folder', () => {
  it('a second run to the same -o exits 2 naming the holder; a killed holder leaves a lock the next run removes', async () => {
    const root = tempDir();
    checkpoints(root);
    // watch holds the lock for its whole run: it waits for step 99 that never comes.
    const watcher = spawn(process.execPath, [bin, 'watch', 'ck', '-o', 'out', '--warmup', '2', '--until', '99', '--poll-ms', '20', ...small], { cwd: root, stdio: 'ignore' });
    try {
      const lock = path.join(root, '.out.lock');
      await waitFor(() => existsSync(path.join(root, 'out', 'report.json')));
      expect(existsSync(lock)).toBe(true);
      for (const args of [['analyze', 'ck', '-o', 'out', '--force', ...small], ['watch', 'ck', '-o', 'out', '--warmup', '2', '--until', '3', ...small], ['analyze', 'ck', '-o', 'ck/../out', '--force', ...small]]) {
        const second = runCli(args, { cwd: root });
        expect(second.status, second.stderr).toBe(2);
        const lines = second.stderr.trimEnd().split('\n');
        expect(lines).toHaveLength(1);
        expect(lines[0]).toContain(`process ${watcher.pid} on ${hostname()}`);
        expect(lines[0]).toContain('watch ck -o out');
      }
      expect(readFileSync(path.join(root, 'out', 'report.json'), 'utf8')).toContain('"online"');
    } finally {
      watcher.kill('SIGKILL');
      await new Promise((r) => watcher.once('exit', r));
    }
    // kill -9 left the lock; the next run removes it, says so, and succeeds.
    expect(existsSync(path.join(root, '.out.lock'))).toBe(true);
    const next = runCli(['analyze', 'ck', '-o', 'out', '--force', ...small], { cwd: root });
    expect(next.status, next.stderr).toBe(0);
    expect(next.stderr).toMatch(new RegExp(`removed the stale lock .*\\.out\\.lock of process ${watcher.pid}`));
    expect(readdirSync(root).sort()).toEqual(['ck', 'out']);
  }, 120_000);

  it('staging folders of dead processes beside the target are removed (and said); those of live ones are kept', () => {
    const root = tempDir();
    checkpoints(root);
    const dead = deadPid();
    const stale = [`.out.partial-${dead}-0a1b2c3d`, `.out.partial-${dead}-0a1b2c3d.old`];
    for (const s of stale) {
      mkdirSync(path.join(root, s));
      writeFileSync(path.join(root, s, 'cmd-model.safetensors'), Buffer.alloc(4096));
    }
    // The test runner itself is alive: its folder must stay.
    const live = `.out.partial-${process.pid}-deadbeef`;
    mkdirSync(path.join(root, live));
    const r = runCli(['analyze', 'ck', '-o', 'out', ...small], { cwd: root });
    expect(r.status, r.stderr).toBe(0);
    for (const s of stale) expect(r.stderr).toContain(`removed ${path.join(root, s)}, left by process ${dead}`);
    expect(readdirSync(root).sort()).toEqual(['.out.partial-' + process.pid + '-deadbeef', 'ck', 'out'].sort());
    // -q removes leftovers too, silently.
    mkdirSync(path.join(root, stale[0]));
    const quiet = runCli(['analyze', 'ck', '-o', 'out', '--force', '-q', ...small], { cwd: root });
    expect(quiet.status, quiet.stderr).toBe(0);
    expect(quiet.stderr).toBe('');
    expect(existsSync(path.join(root, stale[0]))).toBe(false);
  }, 60_000);
});
