import { spawnSync } from 'node:child_process';
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
