/**
 * The scale-out forms of `cmd analyze` (--plan-only, --plan/--shard, --local) and `cmd merge`
 * (docs/scale-out.md). `--local` runs the shard tasks as child processes of this very CLI, as
 * a scheduler would.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import { RuntimeError, UsageError } from '../../errors.ts';
import { mergeRun, planRun, runShard } from '../../run/scale-out.ts';
import type { AnalyzeRunOptions, ReconstructRunOptions } from '../../run/options.ts';
import { interruptSignal } from '../signals.ts';
import { writeOut } from '../terminal.ts';
import { cliHooks, renderSummary } from './analyze.ts';

export interface ScaleOutFlags extends AnalyzeRunOptions {
  out: string;
  json?: boolean;
  quiet?: boolean;
  planOnly?: boolean;
  shards?: number;
  plan?: string;
  shard?: string;
  local?: boolean;
}

/** Options of `analyze` that may go with `--plan`: everything else comes from the plan. */
const WITH_PLAN = new Set(['plan', 'shard', 'workers', 'quiet', 'json']);

/**
 * Checks how the scale-out flags combine; `given` lists the options set on the command line
 * (commander's value source 'cli'), as attribute names.
 */
export function checkScaleOutFlags(dir: string | undefined, flags: ScaleOutFlags, given: string[]): void {
  const spelled = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  const embed = given.filter((g) => g.startsWith('embed'));
  if ((flags.plan || flags.shard || flags.planOnly || flags.local) && embed.length) {
    throw new UsageError(`${spelled(embed[0])}: --embed-* selects parameters globally at each step and cannot be split over shards`);
  }
  if (flags.plan !== undefined) {
    if (dir !== undefined) throw new UsageError(`--plan takes the checkpoint folder from the plan; do not give one (${dir})`);
    const extra = given.filter((g) => !WITH_PLAN.has(g));
    if (extra.length) throw new UsageError(`${spelled(extra[0])} cannot be given with --plan: the plan fixes the method, inputs and output folder`);
    if (flags.shard === undefined) throw new UsageError('--plan needs --shard i/n or --shard auto');
    return;
  }
  if (flags.shard !== undefined) throw new UsageError('--shard needs --plan <out>');
  if (dir === undefined) throw new UsageError("missing required argument 'dir'");
  if (flags.planOnly && flags.local) throw new UsageError('--plan-only and --local cannot be combined');
  if ((flags.planOnly || flags.local) && flags.shards === undefined) throw new UsageError(`${flags.planOnly ? '--plan-only' : '--local'} needs --shards n`);
  if (flags.shards !== undefined && !flags.planOnly && !flags.local) throw new UsageError('--shards needs --plan-only (a scheduler runs the shards) or --local');
}

export async function planOnlyCommand(dir: string, flags: ScaleOutFlags): Promise<void> {
  await planRun(dir, { ...flags, shards: flags.shards! }, cliHooks(flags));
}

export async function shardCommand(flags: ScaleOutFlags): Promise<void> {
  await runShard(flags.plan!, flags.shard!, { workers: flags.workers }, cliHooks(flags));
}

export async function mergeCommand(out: string, flags: { json?: boolean; quiet?: boolean }): Promise<void> {
  const { report } = await mergeRun(out, cliHooks(flags));
  writeOut(flags.json ? (await import('../../output/report.ts')).serializeReport(report) : renderSummary(report, out));
}

/** Runs one shard as a child process of this CLI; resolves with its exit code and first stderr line. */
function runChild(out: string, i: number, n: number, workers: number): Promise<{ code: number; line: string }> {
  const args = [...process.execArgv, process.argv[1], 'analyze', '--plan', out, '--shard', `${i}/${n}`, '--workers', String(workers), '-q'];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const stop = () => child.kill('SIGINT');
    interruptSignal.addEventListener('abort', stop, { once: true });
    child.on('close', (code, signal) => {
      interruptSignal.removeEventListener('abort', stop);
      resolve({ code: code ?? (signal ? 128 + (os.constants.signals[signal] ?? 0) : 2), line: err.trim().split('\n')[0] ?? '' });
    });
  });
}

/** `--shards n --local`: plan, the n shards as local processes at once, merge. */
export async function localCommand(dir: string, flags: ScaleOutFlags): Promise<void> {
  const n = flags.shards!;
  const plan = await planRun(dir, { ...flags, shards: n }, cliHooks(flags));
  const threads = flags.workers ?? Math.max(1, os.availableParallelism());
  const perShard = Math.max(1, Math.floor(threads / n));
  const done = await Promise.all(Array.from({ length: n }, (_, i) => runChild(plan.out, i, n, perShard)));
  if (interruptSignal.aborted) throw new (await import('../../errors.ts')).CancelledError();
  const failed = done.flatMap((r, i) => (r.code === 0 ? [] : [`${i} (exit ${r.code}${r.line ? `: ${r.line.replace(/^cmd: /, '')}` : ''})`]));
  if (failed.length) throw new RuntimeError(`--local: shard${failed.length === 1 ? '' : 's'} ${failed.join('; ')}`);
  await mergeCommand(plan.out, flags);
}

/** Options of `reconstruct` that may go with `--plan`: what to write and how to evaluate it. */
const RECONSTRUCT_WITH_PLAN = new Set(['plan', 'shard', 'checkpoints', 'format', 'avgLast', 'evalData', 'evalCmd', 'evalEvery', 'evalJobs', 'evalTimeout', 'quiet', 'json']);

/** `cmd reconstruct --plan OUT --shard i/n|auto`: one reconstruct task of a merged planned run. */
export async function reconstructShardCommand(dir: string | undefined, flags: ReconstructRunOptions & { plan?: string; shard?: string; quiet?: boolean; json?: boolean }, given: string[]): Promise<void> {
  const spelled = (name: string) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;
  if (flags.plan === undefined) throw new UsageError('--shard needs --plan <out>');
  if (flags.shard === undefined) throw new UsageError('--plan needs --shard i/n or --shard auto');
  if (dir !== undefined) throw new UsageError(`--plan takes the checkpoint folder from the plan; do not give one (${dir})`);
  const extra = given.filter((g) => !RECONSTRUCT_WITH_PLAN.has(g));
  if (extra.length) throw new UsageError(`${spelled(extra[0])} cannot be given with reconstruct --plan: the plan fixes the model, inputs and output folder`);
  const { reconstructShard } = await import('../../run/scale-out-reconstruct.ts');
  await reconstructShard(flags.plan, flags.shard, flags, cliHooks(flags));
}
