/**
 * `cmd analyze --online` and `cmd reconstruct --online`: the online engine over a loaded
 * checkpoint set, in a staging folder. The running state lives in `<staging>/.online-state`
 * while the run lasts and is removed at the end (only `cmd watch` keeps it, to resume).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { modelledTensors, type CheckpointInfo, type CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { stripCheckpointSuffix } from '../checkpoints/naming.ts';
import type { AnalyzeFlags } from '../cli/commands/analyze.ts';
import { CancelledError, UsageError } from '../errors.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import { StagedDir } from '../output/atomic.ts';
import { openCmdModel } from '../output/model-reader.ts';
import { serializeReport } from '../output/report.ts';
import { RunReportSchema, type RunReport } from '../output/report-schema.ts';
import { writeHeatmap, writeReport, writeRunInfo, writeSamples } from '../output/run-outputs.ts';
import { averagedTensors, originalTensors, reconstructedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import { OnlineEngine, type NewCheckpoint, type OnlineOptions } from './engine.ts';
import { resolveEmbedOptions, type EmbedFlags, type EmbedOptions } from './embedded-flags.ts';

export const DEFAULT_WARMUP = 20;
export const STATE_DIR = '.online-state';

/**
 * F from `--warmup` (default 20), capped at T − 1; the warm-up window 0..F must hold at least 3
 * checkpoints (F ≥ 2), as post-hoc CMD does.
 */
export function resolveWarmup(requested: number | undefined, checkpoints: number): number {
  const F = Math.min(requested ?? DEFAULT_WARMUP, checkpoints - 1);
  if (!Number.isInteger(F) || F < 2) throw new UsageError(`--warmup: online CMD needs warm-up checkpoints 0..F with F ≥ 2, got F = ${F} (${checkpoints} checkpoints)`);
  return F;
}

/** The engine's view of a loaded checkpoint. */
export function newCheckpoint(set: CheckpointSet, c: CheckpointInfo): NewCheckpoint {
  return { step: c.step, name: c.name, bytes: c.bytes, path: c.path, stored: modelledTensors(set, c) };
}

export function onlineOptions(flags: Pick<AnalyzeFlags, 'modes' | 'samples' | 'seed' | 'workers' | 'chunkSize'>, F: number, samplesFrom?: [string, number][], total = Infinity): OnlineOptions {
  return {
    warmup: F,
    modes: flags.modes,
    samples: samplesFrom ? samplesFrom.length : Math.min(flags.samples ?? 1000, total),
    samplesRequested: samplesFrom ? samplesFrom.length : (flags.samples ?? 1000),
    seed: flags.seed ?? 0,
    samplesFrom,
    workers: flags.workers,
    chunkSize: flags.chunkSize,
  };
}

export interface OnlineRun {
  report: RunReport;
  /** Model files of the online model at the requested positions (snapshots). */
  snapshots: Map<number, string>;
}

/**
 * Runs online CMD over every checkpoint of `set` into `stagingDir`: cmd-model.safetensors (the
 * final online a, b), report.json, samples.json, sampled-corr.npy, run-info.json. With
 * `snapshotPositions`, also writes the online model at those positions (≥ F) into `snapshotDir`.
 * With `embed`, also replays the embedded-CMD schedule (embedded.ts) into the report's `embedded`.
 */
export async function onlineAnalysis(
  set: CheckpointSet,
  options: OnlineOptions,
  stagingDir: string,
  snapshot?: { positions: Set<number>; dir: string },
  embed?: EmbedOptions,
): Promise<OnlineRun> {
  const started = performance.now();
  const T = set.checkpoints.length;
  const F = options.warmup;
  const stateDir = path.join(stagingDir, STATE_DIR);
  const snapshots = new Map<number, string>();
  if (snapshot) await fsp.mkdir(snapshot.dir, { recursive: true });
  const modelOut = (p: number): string | undefined => {
    if (p === T - 1) return path.join(stagingDir, MODEL_FILE);
    if (!snapshot?.positions.has(p)) return undefined;
    const file = path.join(snapshot.dir, `cmd-model-${p}.safetensors`);
    snapshots.set(p, file);
    return file;
  };
  const later = set.checkpoints.slice(F + 1).map((k) => newCheckpoint(set, k));
  // Nothing needed between checkpoints (no embedded replay, no snapshots): the whole run is one
  // chunked pass without any state on disk. Otherwise the state lives in the staging folder and
  // is deleted at the end, so it is not fsynced.
  const onePass = !embed && !snapshot?.positions.size;
  const { engine, warm } = onePass
    ? await OnlineEngine.start(stateDir, set, options, { modelOut: modelOut(T - 1), continueWith: later })
    : await OnlineEngine.start(stateDir, set, { ...options, durable: options.durable ?? false }, { modelOut: modelOut(F) });
  try {
    const sim = embed ? await (await import('./embedded.ts')).EmbeddedSimulation.start(engine, embed, { signal: options.signal }) : undefined;
    if (!onePass) {
      options.progress?.start('online', T - F - 1);
      for (const [j, c] of later.entries()) {
        if (options.signal?.aborted) throw new CancelledError();
        await engine.apply(c, modelOut(F + 1 + j));
        if (sim) await sim.step(c);
        options.progress?.advance(1);
      }
      options.progress?.stop();
    }
    if (snapshot?.positions.has(T - 1)) snapshots.set(T - 1, path.join(stagingDir, MODEL_FILE));
    const report = engine.buildReport();
    if (sim) report.embedded = sim.report();
    await writeSamples(stagingDir, set, warm.sampleIndices);
    await writeHeatmap(stagingDir, warm);
    await writeReport(stagingDir, report);
    const result = { timings: warm.timings, workers: engine.threads, bytesRead: engine.commit.bytesRead };
    await writeRunInfo(stagingDir, { seconds: (performance.now() - started) / 1000, result, checkpointBytes: report.storage.checkpointsBytes, extra: { variant: 'online', warmup: F } });
    return { report, snapshots };
  } finally {
    options.progress?.stop();
    await engine.close();
    await fsp.rm(stateDir, { recursive: true, force: true });
  }
}

/** `cmd analyze --online`: see {@link onlineAnalysis}. */
export async function runOnlineAnalysis(set: CheckpointSet, flags: AnalyzeFlags, stagingDir: string, samplesFrom?: [string, number][]): Promise<{ report: RunReport }> {
  const { interruptSignal } = await import('../cli/signals.ts');
  const { createProgress } = await import('../cli/progress.ts');
  if (flags.sweepModes?.length) throw new UsageError('--online fits one mode count; a --modes list (sweep) is post-hoc only');
  const embed = resolveEmbedOptions(flags as AnalyzeFlags & EmbedFlags);
  const F = resolveWarmup(flags.warmup, set.checkpoints.length);
  const options = onlineOptions(flags, F, samplesFrom, set.space.total);
  const { report } = await onlineAnalysis(
    set,
    { ...options, signal: interruptSignal, progress: createProgress(flags) },
    stagingDir,
    undefined,
    embed,
  );
  if (report.embedded) {
    const { logLine } = await import('../cli/terminal.ts');
    const e = report.embedded;
    const last = e.checkpoints[e.checkpoints.length - 1];
    const pct = (x: number | string) => (typeof x === 'number' ? `${(100 * x).toFixed(2)}%` : x);
    logLine(`embedded CMD (simulation, L = ${e.window}, P = ${e.percent}%${e.relative ? ' relative' : ''}): saved ${pct(e.saved)}; last checkpoint ${last ? `${pct(last.embeddedFraction)} embedded, error ${pct(last.relativeError)}` : '—'}; client bytes ${e.bytesSentTotal} vs ${e.bytesFullTotal} after warm-up`);
  }
  return { report };
}

/** Flags of `cmd reconstruct` that the online branch uses. */
export interface OnlineReconstructFlags extends AnalyzeFlags {
  checkpoints: string;
  outputFormat: import('../reconstruct/write-checkpoint.ts').OutputFormat;
  avgLast: number;
  evalData?: string;
  evalCmd?: string;
  model?: string;
}

function positionsFor(spec: string, set: CheckpointSet): number[] {
  const T = set.checkpoints.length;
  if (spec === 'last') return [T - 1];
  if (spec === 'all') return set.checkpoints.map((_, i) => i);
  return spec.split(',').map((s) => {
    const step = Number(s.trim());
    const i = set.checkpoints.findIndex((c) => c.step === step);
    if (!Number.isFinite(step) || i < 0) throw new UsageError(`--checkpoints: no checkpoint with step ${s.trim()} (steps: ${set.checkpoints.map((c) => c.step).join(', ')})`);
    return i;
  });
}

/**
 * `cmd reconstruct --online`: runs online CMD and writes, for each chosen checkpoint t, the
 * online model at t: ŵ(t) = a(t) ⊙ r(t)[mode] + b(t) with a(t), b(t) fitted on 0..t (snapshots
 * taken during the pass); before F the online model is the checkpoint itself (copied as is).
 */
export async function reconstructOnlineCommand(set: CheckpointSet, flags: OnlineReconstructFlags, samplesFrom?: [string, number][]): Promise<void> {
  if (flags.model) throw new UsageError('--model cannot be combined with --online (the online model changes per checkpoint; it is recomputed)');
  if (flags.evalData || flags.evalCmd) throw new UsageError('--eval-data/--eval-cmd are not supported with --online yet; evaluate the written checkpoints instead');
  const { interruptSignal } = await import('../cli/signals.ts');
  const { createProgress } = await import('../cli/progress.ts');
  const { renderSummary } = await import('../cli/commands/analyze.ts');
  const { logLine, writeOut } = await import('../cli/terminal.ts');
  const F = resolveWarmup(flags.warmup, set.checkpoints.length);
  const positions = positionsFor(flags.checkpoints, set);
  const previous = await fsp.access(path.join(flags.out, MODEL_FILE)).then(() => true, () => false);
  const staged = await StagedDir.create(flags.out, flags.force || previous);
  try {
    const snapshotDir = staged.file('.online-snapshots');
    const options = onlineOptions(flags, F, samplesFrom, set.space.total);
    const run = await onlineAnalysis(
      set,
      { ...options, signal: interruptSignal, progress: createProgress(flags) },
      staged.path,
      { positions: new Set(positions.filter((p) => p >= F)), dir: snapshotDir },
    );
    const recDir = staged.file('reconstructed');
    await fsp.mkdir(recDir, { recursive: true });
    const written: string[] = [];
    for (const p of positions) {
      if (interruptSignal.aborted) throw new CancelledError();
      const c = set.checkpoints[p];
      let tensors;
      if (p < F) {
        tensors = originalTensors(c);
      } else {
        const model = await openCmdModel(run.snapshots.get(p)!);
        try {
          tensors = reconstructedTensors(set, model, c, p);
        } finally {
          model.close();
        }
      }
      written.push(path.relative(staged.path, await writeCheckpointLike(c, recDir, tensors, flags.outputFormat)));
    }
    const k = Math.min(flags.avgLast, set.checkpoints.length);
    if (k > 0) {
      const averaged = set.checkpoints.slice(set.checkpoints.length - k);
      const last = averaged[averaged.length - 1];
      const name = `avg-last-${k}${last.name.slice(stripCheckpointSuffix(last.name).length)}`;
      written.push(path.relative(staged.path, await writeCheckpointLike(last, recDir, averagedTensors(averaged), flags.outputFormat, name)));
    }
    await fsp.rm(snapshotDir, { recursive: true, force: true });
    const report = RunReportSchema.parse({ ...run.report, outputs: { ...run.report.outputs, reconstructed: written } });
    await writeReport(staged.path, report);
    await staged.commit();
    if (positions.some((p) => p < F)) logLine(`note: checkpoints before the warm-up end (step ${set.checkpoints[F].step}) are written unchanged: the online model there is the checkpoint itself`);
    writeOut(flags.json ? serializeReport(report) : `${renderSummary(report, flags.out)}\nreconstructed (online model at each checkpoint): ${written.join(', ')}`);
  } catch (e) {
    await staged.abort();
    throw e;
  }
}
