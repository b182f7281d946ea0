/**
 * `cmd analyze --online` and `cmd reconstruct --online`: the online engine over a loaded
 * checkpoint set, in a staging folder. The running state lives in `<staging>/.online-state`
 * while the run lasts and is removed at the end (only `cmd watch` keeps it, to resume).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { modelledTensors, type CheckpointInfo, type CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, UsageError } from '../errors.ts';
import { DEFAULTS } from '../defaults.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import type { RunReport } from '../output/report-schema.ts';
import { OnlineEngine, type NewCheckpoint, type OnlineOptions } from './engine.ts';
import { resolveEmbedOptions, type EmbedFlags, type EmbedOptions } from './embedded-flags.ts';

export const DEFAULT_WARMUP = DEFAULTS.warmup;
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

export function onlineOptions(flags: { modes?: number; samples?: number; seed?: number; workers?: number; chunkSize?: number }, F: number, samplesFrom?: [string, number][], total = Infinity): OnlineOptions {
  return {
    warmup: F,
    modes: flags.modes ?? DEFAULTS.modes,
    samples: samplesFrom ? samplesFrom.length : Math.min(flags.samples ?? DEFAULTS.samples, total),
    samplesRequested: samplesFrom ? samplesFrom.length : (flags.samples ?? DEFAULTS.samples),
    seed: flags.seed ?? DEFAULTS.seed,
    samplesFrom,
    workers: flags.workers,
    chunkSize: flags.chunkSize,
  };
}

export interface OnlineRun {
  report: RunReport;
  /** Model files of the online model at the requested positions (snapshots). */
  snapshots: Map<number, string>;
  /** Timings and counts for run-info.json (never the report). */
  facts: Record<string, unknown>;
}

/**
 * Runs online CMD over every checkpoint of `set` into `stagingDir`: cmd-model.safetensors (the
 * final online a, b), report.json, samples.json, sampled-corr.npy. With
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
  // The report code (zod) loads while the workers run, off the critical path.
  const outputs = import('../output/run-outputs.ts');
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
    const { writeHeatmap, writeReport, writeSamples } = await outputs;
    const report = await engine.buildReport();
    if (sim) report.embedded = sim.report();
    await writeSamples(stagingDir, set, warm.sampleIndices);
    await writeHeatmap(stagingDir, warm);
    await writeReport(stagingDir, report);
    const seconds = (performance.now() - started) / 1000;
    const facts = { seconds, stageMilliseconds: warm.timings, workers: engine.threads, bytesRead: engine.commit.bytesRead, checkpointBytes: report.storage.checkpointsBytes, gbPerSecond: report.storage.checkpointsBytes / 1e9 / seconds, variant: 'online', warmup: F };
    return { report, snapshots, facts };
  } finally {
    options.progress?.stop();
    await engine.close();
    await fsp.rm(stateDir, { recursive: true, force: true });
  }
}
