import { promises as fsp } from 'node:fs';
import { loadCheckpointSet, type CheckpointSet } from '../../checkpoints/checkpoint-set.ts';
import { UsageError, InputError } from '../../errors.ts';
import { analyzeCheckpoints, type AnalysisResult, type BaselineKind } from '../../pipeline/analyze.ts';
import { StagedDir } from '../../output/atomic.ts';
import type { RunReport } from '../../output/report-schema.ts';
import { loadOptionsFrom, type SelectionFlags } from '../options.ts';
import { createProgress } from '../progress.ts';
import { interruptSignal } from '../signals.ts';
import { chalkFor, formatBytes, formatTable, logLine, warn, writeOut } from '../terminal.ts';

export interface AnalyzeFlags extends SelectionFlags {
  out: string;
  /** Leave parameters with NaN/±Inf out of the model instead of failing. */
  skipNonfinite?: boolean;
  /** Baselines beside CMD in the same pass: avg-last-k, ema, pca, dmd. */
  baselines?: BaselineKind[];
  avgLast?: number;
  emaBeta?: number;
  /** Extra mode counts of a sweep, fitted in the same pass. */
  sweepModes?: number[];
  /** Online CMD: modes and references from the first warm-up checkpoints, then running a, b. */
  online?: boolean;
  warmup?: number;
  modes: number;
  samples?: number;
  seed?: number;
  samplesFrom?: string;
  workers?: number;
  chunkSize?: number;
  force?: boolean;
  json?: boolean;
  quiet?: boolean;
  html?: string;
}

/** Parses a samples file: a JSON array of [tensorName, elementOffset] pairs. */
export async function readSamplesFile(file: string): Promise<[string, number][]> {
  let json: unknown;
  try {
    json = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    throw new InputError(file, `cannot read samples (${(e as Error).message.split('\n')[0]})`, 'bad-samples');
  }
  if (!Array.isArray(json) || !json.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && Number.isInteger(p[1]) && p[1] >= 0)) {
    throw new InputError(file, 'must be a JSON array of [tensorName, elementOffset] pairs', 'bad-samples');
  }
  return json as [string, number][];
}

/** Runs the decomposition into a staging folder and writes its side files; returns the report. */
export async function runAnalysis(set: CheckpointSet, flags: AnalyzeFlags, stagingDir: string, samplesFrom?: [string, number][]): Promise<{ report: RunReport; result: AnalysisResult }> {
  const started = performance.now();
  // The report code (zod) loads while the workers run, off the critical path.
  const reporting = Promise.all([import('../../output/report.ts'), import('../../output/run-outputs.ts')]);
  const seed = flags.seed ?? 0;
  const samples = flags.samples ?? 1000;
  const result = await analyzeCheckpoints(set, stagingDir, {
    modes: flags.modes,
    sweepModes: flags.sweepModes,
    skipNonFinite: flags.skipNonfinite,
    baselines: flags.baselines?.length ? { kinds: flags.baselines, lastK: flags.avgLast ?? 5, beta: flags.emaBeta ?? 0.9 } : undefined,
    samples: samplesFrom ? samplesFrom.length : Math.min(samples, set.space.total),
    samplesRequested: samplesFrom ? samplesFrom.length : samples,
    onNote: warn,
    seed,
    samplesFrom,
    workers: flags.workers,
    chunkSize: flags.chunkSize,
    signal: interruptSignal,
    progress: createProgress(flags),
  });
  const [{ buildReport }, { writeHeatmap, writeReport, writeRunInfo, writeSamples }] = await reporting;
  const report = buildReport({ set, result, seed: samplesFrom ? null : seed, samplesRequested: samplesFrom ? samplesFrom.length : samples });
  await writeSamples(stagingDir, set, result.sampleIndices);
  await writeHeatmap(stagingDir, result);
  await writeReport(stagingDir, report);
  await writeRunInfo(stagingDir, { seconds: (performance.now() - started) / 1000, result, checkpointBytes: report.storage.checkpointsBytes });
  return { report, result };
}

export function checkSampleFlags(flags: AnalyzeFlags): void {
  if (flags.samplesFrom && (flags.samples !== undefined || flags.seed !== undefined)) {
    throw new UsageError('--samples-from fixes the samples; --samples and --seed cannot be combined with it');
  }
}

export async function analyzeCommand(dir: string, flags: AnalyzeFlags): Promise<void> {
  checkSampleFlags(flags);
  if (flags.online && flags.skipNonfinite) throw new UsageError('--skip-nonfinite is not supported with --online');
  const samplesFrom = flags.samplesFrom ? await readSamplesFile(flags.samplesFrom) : undefined;
  const set = await loadCheckpointSet(dir, await loadOptionsFrom(flags));
  for (const n of set.notes) logLine(`note: ${n}`);
  const staged = await StagedDir.create(flags.out, flags.force);
  try {
    const { report } = flags.online
      ? await (await import('../../online/run-online.ts')).runOnlineAnalysis(set, flags, staged.path, samplesFrom)
      : await runAnalysis(set, flags, staged.path, samplesFrom);
    await staged.commit();
    if (flags.html) await (await import('../../report/html.ts')).writeHtmlReport(flags.out, flags.html);
    writeOut(flags.json ? (await import('../../output/report.ts')).serializeReport(report) : renderSummary(report, flags.out));
  } catch (e) {
    await staged.abort();
    throw e;
  }
}

function pct(x: number | string): string {
  return typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : x;
}

export function renderSummary(r: RunReport, out: string): string {
  const c = chalkFor(process.stdout);
  const first = r.checkpoints[0];
  const last = r.checkpoints[r.checkpoints.length - 1];
  const lines = [
    c.bold(`CMD: ${r.method.modes} modes (${r.method.modesRequested} requested) from ${r.method.samples} sampled parameters, ${r.input.modelledParameters.toLocaleString('en-US')} parameters over ${r.checkpoints.length} checkpoints`),
    '',
    formatTable(
      [['mode', 'sampled', 'assigned', 'mean R²', 'reference'], ...r.modes.map((m) => [String(m.mode), String(m.sampledCount), String(m.assignedCount), typeof m.meanR2 === 'number' ? m.meanR2.toFixed(3) : m.meanR2, `${m.reference.tensor}[${m.reference.element}]`])],
      ['r', 'r', 'r', 'r', 'l'],
    ),
    '',
    `relative reconstruction error: ${pct(first.relativeError)} at step ${first.step} (first), ${pct(last.relativeError)} at step ${last.step} (last)`,
    `storage: ${formatBytes(r.storage.modelBytes)} model vs ${formatBytes(r.storage.checkpointsBytes)} of checkpoints (${typeof r.storage.compressionVsTrajectory === 'number' ? r.storage.compressionVsTrajectory.toFixed(1) : r.storage.compressionVsTrajectory}x), ${formatBytes(r.storage.oneCheckpointBytes)} for one checkpoint`,
    `outputs: ${out}/cmd-model.safetensors, ${out}/report.json, ${out}/samples.json`,
  ];
  return lines.join('\n');
}
