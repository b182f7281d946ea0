import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from './tmp.ts';

/**
 * A system temp folder of this test file's own for the CLIs it runs: scratch left in the shared
 * /tmp by a process another test file killed on purpose is then not cleaned up (with a note on
 * stderr) by an unrelated run of this file. Tests may still pass their own TMPDIR.
 */
const privateTmp = mkdtempSync(path.join(os.tmpdir(), 'cmd-cli-tmp-'));
process.on('exit', () => rmSync(privateTmp, { recursive: true, force: true }));

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI (`npm test` builds first) and captures its streams. */
export function runCli(args: string[], options: { cwd?: string; env?: Record<string, string>; timeoutMs?: number } = {}): CliResult {
  const r = spawnSync(process.execPath, [path.join(repoRoot, 'bin', 'cmd.js'), ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, TMPDIR: privateTmp, NO_COLOR: '1', ...options.env },
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 120_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A CLI started in the background, for tests that signal it mid-run. */
export interface RunningCli {
  readonly child: ChildProcess;
  /** What it has written so far. */
  stdout(): string;
  stderr(): string;
  /** Whether it has exited. */
  exited(): boolean;
  /** Its exit status; death by SIGINT counts as 130, as a shell reports it. */
  readonly status: Promise<number>;
}

/** Starts the built CLI without waiting for it (streams captured, colour off). */
export function startCli(args: string[], options: { env?: Record<string, string> } = {}): RunningCli {
  const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'cmd.js'), ...args], {
    env: { ...process.env, TMPDIR: privateTmp, NO_COLOR: '1', ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let done = false;
  child.stdout!.on('data', (d) => (stdout += d));
  child.stderr!.on('data', (d) => (stderr += d));
  const status = new Promise<number>((resolve) =>
    child.on('exit', (code, signal) => {
      done = true;
      resolve(code ?? (signal === 'SIGINT' ? 130 : -1));
    }),
  );
  return { child, stdout: () => stdout, stderr: () => stderr, exited: () => done, status };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `ready` until it holds: the stage a test wants to interrupt. Throws if the CLI exits
 * first (it could not be interrupted there) or the stage never comes (a hang guard, not a
 * timing assertion).
 */
export async function waitForStage(cli: RunningCli, ready: () => boolean, stage: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!ready()) {
    if (cli.exited()) throw new Error(`the CLI ended before ${stage}: ${cli.stderr()}`);
    if (Date.now() > deadline) throw new Error(`the CLI never reached ${stage}`);
    await sleep(2);
  }
}

/**
 * Sends SIGINT and returns the exit status. A CLI that ignores it fails the 15 s guard (against
 * a stuck process; it would otherwise run to completion) and is killed.
 */
export async function interrupt(cli: RunningCli): Promise<number> {
  if (cli.exited()) throw new Error(`the CLI ended before it could be interrupted: ${cli.stderr()}`);
  cli.child.kill('SIGINT');
  const status = await Promise.race([cli.status, sleep(15_000).then(() => undefined)]);
  if (status === undefined) {
    cli.child.kill('SIGKILL');
    throw new Error('the CLI did not exit within 15 s of SIGINT');
  }
  return status;
}
