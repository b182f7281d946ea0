/**
 * One decomposition (post-hoc or online) into a staging folder: the model, samples.json, the
 * heatmap and report.json with its provenance; returns the run-info facts and the input key.
 * Shared by `analyze` and by `reconstruct` when it cannot reuse a model.
 */
import path from 'node:path';
import type { CheckpointSet, LoadOptions } from '../checkpoints/checkpoint-set.ts';
import { UsageError } from '../errors.ts';
import { analyzeCheckpoints, type AnalysisResult, type AnalyzeOptions } from '../pipeline/analyze.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import type { RunReport } from '../output/report-schema.ts';
import { DEFAULTS } from './defaults.ts';
import type { ResolvedHooks } from './hooks.ts';
import type { AnalyzeRunOptions } from './options.ts';
import { decompositionKey, fileSha256, inputsHash, type DecompositionKey, type KeyRequest } from './provenance.ts';

export interface Decomposition {
  report: RunReport;
  key: DecompositionKey;
  /** For run-info.json. */
  facts: Record<string, unknown>;
}

/** Pass 1's sampled-value hashes by checkpoint index (the window's checkpoints), for {@link decompositionKey}. */
export function knownValueHashes(d: { window?: { from: number }; windowValueHashes?: string[] }): (string | undefined)[] {
  const known: (string | undefined)[] = [];
  d.windowValueHashes?.forEach((h, t) => (known[(d.window?.from ?? 0) + t] = h));
  return known;
}

/** The key request of these options (what a model computed with them would record). */
export function keyRequest(o: AnalyzeRunOptions, load: LoadOptions, samplesFrom: [string, number][] | undefined, set: CheckpointSet, warmup?: number): KeyRequest {
  return {
    variant: o.online ? 'online' : 'post-hoc',
    modesRequested: o.modes ?? DEFAULTS.modes,
    samplesRequested: samplesFrom ? null : (o.samples ?? DEFAULTS.samples),
    seed: samplesFrom ? null : (o.seed ?? DEFAULTS.seed),
    samplesFrom,
    warmup: o.online ? (warmup ?? Math.min(o.warmup ?? DEFAULTS.warmup, set.checkpoints.length - 1)) : null,
    skipNonfinite: Boolean(o.skipNonfinite),
    load,
  };
}

/**
 * Adds the provenance (input key hash, model file hash) and writes the report. `modelSha256`:
 * the model's hash when it is being computed already (post-hoc pass 2's worker).
 */
export async function finish(stagingDir: string, report: RunReport, key: DecompositionKey, modelSha256?: Promise<string>): Promise<RunReport> {
  const { writeReport } = await import('../output/run-outputs.ts');
  const { RunReportSchema } = await import('../output/report-schema.ts');
  const model = await (modelSha256 ?? fileSha256(path.join(stagingDir, MODEL_FILE)));
  const withProvenance = RunReportSchema.parse({ ...report, provenance: { inputs: inputsHash(key), model } });
  await writeReport(stagingDir, withProvenance);
  return withProvenance;
}

/** The pipeline's options for a post-hoc run of `o` on `set` (shared by analyze and the scale-out plan). */
export function postHocOptions(set: CheckpointSet, o: AnalyzeRunOptions, samplesFrom: [string, number][] | undefined, hooks: ResolvedHooks): AnalyzeOptions {
  const seed = o.seed ?? DEFAULTS.seed;
  const samples = o.samples ?? DEFAULTS.samples;
  return {
    modes: o.modes ?? DEFAULTS.modes,
    sweepModes: o.sweepModes,
    skipNonFinite: o.skipNonfinite,
    baselines: o.baselines?.length ? { kinds: o.baselines, lastK: o.avgLast ?? DEFAULTS.avgLast, beta: o.emaBeta ?? DEFAULTS.emaBeta } : undefined,
    samples: samplesFrom ? samplesFrom.length : Math.min(samples, set.space.total),
    samplesRequested: samplesFrom ? samplesFrom.length : samples,
    onNote: hooks.warn,
    seed,
    samplesFrom,
    workers: o.workers,
    chunkSize: o.chunkSize,
    signal: hooks.signal,
    progress: hooks.progress,
  };
}

/** What report.json says of how the samples were asked for. */
export function reportSampling(o: AnalyzeRunOptions, samplesFrom: [string, number][] | undefined): { seed: number | null; samplesRequested: number } {
  return { seed: samplesFrom ? null : (o.seed ?? DEFAULTS.seed), samplesRequested: samplesFrom ? samplesFrom.length : (o.samples ?? DEFAULTS.samples) };
}

/** samples.json, the heatmap and report.json (with its provenance) of a post-hoc result. */
export async function writePostHocOutputs(stagingDir: string, set: CheckpointSet, result: AnalysisResult, sampling: { seed: number | null; samplesRequested: number }, key: DecompositionKey): Promise<RunReport> {
  const [{ buildReport }, { writeHeatmap, writeSamples }] = await Promise.all([import('../output/report.ts'), import('../output/run-outputs.ts')]);
  const built = buildReport({ set, result, ...sampling });
  await writeSamples(stagingDir, set, result.sampleIndices);
  await writeHeatmap(stagingDir, result);
  return finish(stagingDir, built, key, result.modelSha256);
}

export async function decompose(set: CheckpointSet, o: AnalyzeRunOptions, load: LoadOptions, stagingDir: string, samplesFrom: [string, number][] | undefined, hooks: ResolvedHooks): Promise<Decomposition> {
  if (o.online) return decomposeOnline(set, o, load, stagingDir, samplesFrom, hooks);
  const started = performance.now();
  // The report code (zod) loads while the workers run, off the critical path.
  const reporting = Promise.all([import('../output/report.ts'), import('../output/run-outputs.ts')]);
  const result = await analyzeCheckpoints(set, stagingDir, postHocOptions(set, o, samplesFrom, hooks));
  await reporting;
  const outputsStarted = performance.now();
  const key = await decompositionKey(set, keyRequest(o, load, samplesFrom, set), Array.from(result.sampleIndices), knownValueHashes(result));
  const report = await writePostHocOutputs(stagingDir, set, result, reportSampling(o, samplesFrom), key);
  const seconds = (performance.now() - started) / 1000;
  const checkpointBytes = report.storage.checkpointsBytes;
  // outputs: the key, samples, heatmap, the model's sha256 and the report, after pass 2.
  const stageMilliseconds = { ...result.timings, outputs: performance.now() - outputsStarted };
  return { report, key, facts: { seconds, stageMilliseconds, workers: result.workers, bytesRead: result.bytesRead, ...(result.bytesFetched ? { bytesFetched: result.bytesFetched } : {}), checkpointBytes, gbPerSecond: checkpointBytes / 1e9 / seconds } };
}

async function decomposeOnline(set: CheckpointSet, o: AnalyzeRunOptions, load: LoadOptions, stagingDir: string, samplesFrom: [string, number][] | undefined, hooks: ResolvedHooks): Promise<Decomposition> {
  const { onlineAnalysis, onlineOptions, resolveWarmup } = await import('../online/run-online.ts');
  const { resolveEmbedOptions } = await import('../online/embedded-flags.ts');
  if (o.sweepModes?.length) throw new UsageError('--online fits one mode count; a --modes list (sweep) is post-hoc only');
  const embed = resolveEmbedOptions(o);
  const F = resolveWarmup(o.warmup, set.checkpoints.length);
  const options = onlineOptions(o, F, samplesFrom, set.space.total);
  const run = await onlineAnalysis(set, { ...options, signal: hooks.signal, progress: hooks.progress, onNote: hooks.warn }, stagingDir, undefined, embed);
  const { openCmdModel } = await import('../output/model-reader.ts');
  const model = await openCmdModel(path.join(stagingDir, MODEL_FILE));
  const sampleIndex = model.sampleIndex;
  model.close();
  const key = await decompositionKey(set, keyRequest(o, load, samplesFrom, set, F), sampleIndex);
  const report = await finish(stagingDir, run.report, key);
  if (report.embedded) {
    const e = report.embedded;
    const last = e.checkpoints[e.checkpoints.length - 1];
    const pct = (x: number | string) => (typeof x === 'number' ? `${(100 * x).toFixed(2)}%` : x);
    hooks.log(`embedded CMD (simulation, L = ${e.window}, P = ${e.percent}%${e.relative ? ' relative' : ''}): saved ${pct(e.saved)}; last checkpoint ${last ? `${pct(last.embeddedFraction)} embedded, error ${pct(last.relativeError)}` : '—'}; client bytes ${e.bytesSentTotal} vs ${e.bytesFullTotal} after warm-up`);
  }
  return { report, key, facts: run.facts };
}
