/**
 * Submitting to and waiting on the private cluster of the cluster tests
 * (test/setup/slurm-cluster.ts). We poll `squeue` ourselves: `sbatch --wait` polls after 2 s,
 * 8 s and then every 32 s, which would make each test wait half a minute for nothing.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { inject } from 'vitest';
import { repoRoot } from './tmp.ts';

/** The environment every Slurm client call and job gets: the test's cluster, never the user's. */
export function slurmEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, SLURM_CONF: inject('slurmConf'), NO_COLOR: '1', ...extra };
}

function client(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { env: slurmEnv(), encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Single-quotes a word for the job's /bin/sh. */
export const shq = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

/** The command line that runs the built CLI inside a job (the same node as the tests). */
export function cmdLine(args: string[]): string {
  return [process.execPath, path.join(repoRoot, 'bin', 'cmd.js'), ...args].map(shq).join(' ');
}

export interface SubmitOptions {
  /** `--array` spec, e.g. `0-3` or `2`. */
  array?: string;
  /** Working folder of the job and home of its `slurm-%A_%a.out` logs. */
  cwd: string;
  /** Job ids this one waits for to succeed (`--dependency=afterok:`). */
  afterOk?: string[];
  env?: Record<string, string>;
}

/** `sbatch --wrap` a shell command; returns the job id. */
export function sbatch(command: string, o: SubmitOptions): string {
  const args = ['--parsable', `--chdir=${o.cwd}`, '--output=slurm-%A_%a.out', '--export=ALL'];
  if (o.array) args.push(`--array=${o.array}`);
  if (o.afterOk?.length) args.push(`--dependency=afterok:${o.afterOk.join(':')}`);
  args.push('--wrap', command);
  const r = spawnSync('sbatch', args, { env: slurmEnv(o.env), encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`sbatch failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout.trim().split(';')[0];
}

export interface TaskEnd {
  /** Array index, or -1 for a job that is not an array. */
  index: number;
  state: string;
  /** `code:signal` as scontrol prints it. */
  exitCode: string;
}

/** Polls squeue until none of the jobs is pending, running or completing; then their end states. */
export async function waitForJobs(ids: string[], timeoutMs = 600_000): Promise<TaskEnd[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = client('squeue', ['-h', '-o', '%A %r', '-j', ids.join(',')]).trim();
    if (!left) break;
    // Reasons that never clear by waiting: asking for more than the node has, a failed dependency.
    const stuck = /^\d+ (PartitionConfig|PartitionNodeLimit|DependencyNeverSatisfied|BadConstraints)$/m.exec(left);
    if (stuck) throw new Error(`job ${stuck[0]}: it can never run on the test cluster`);
    if (Date.now() > deadline) throw new Error(`jobs ${ids.join(',')} still queued after ${timeoutMs} ms: ${left.replace(/\n/g, ' ')}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  const ends: TaskEnd[] = [];
  for (const id of ids) {
    // Ended jobs stay known to slurmctld for MinJobAge (scripts/slurm/up.sh); no accounting needed.
    for (const line of client('scontrol', ['-o', 'show', 'job', id]).split('\n').filter(Boolean)) {
      const field = (k: string) => new RegExp(`(?:^| )${k}=(\\S*)`).exec(line)?.[1] ?? '';
      const task = field('ArrayTaskId');
      ends.push({ index: task ? Number(task) : -1, state: field('JobState'), exitCode: field('ExitCode') });
    }
  }
  return ends.sort((a, b) => a.index - b.index);
}

/** Submits and waits: the end state of each task, in index order. */
export async function runJob(command: string, o: SubmitOptions): Promise<TaskEnd[]> {
  return waitForJobs([sbatch(command, o)]);
}
