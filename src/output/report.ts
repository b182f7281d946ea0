/** Building, serializing and reading back `report.json`. */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.ts';
import type { AnalysisResult } from '../pipeline/analyze.ts';
import { TOOL_NAME, TOOL_VERSION } from '../version.ts';
import { num, REPORT_SCHEMA_VERSION, RunReportSchema, type RunReport } from './report-schema.ts';

export { REPORT_FILE, RUN_INFO_FILE, SAMPLES_FILE } from './file-names.ts';
import { SAMPLES_FILE } from './file-names.ts';

/** What a report says about its input: the folder, the checkpoints and the parameter space. */
export interface ReportSource {
  dir: string;
  format: string;
  checkpoints: readonly { index: number; step: number; name: string; bytes: number }[];
  space: { total: number; tensors: readonly unknown[]; carried: readonly { name: string; reason: string }[] };
}

/** The decomposition's results a report is built from. */
export type ReportResult = Pick<AnalysisResult, 'modesRequested' | 'modes' | 'sampleIndices' | 'sampling' | 'checkpointErrors' | 'tensorErrors' | 'modelPath' | 'modelBytes' | 'sweep' | 'window' | 'baselines' | 'skippedNonFinite'>;

export interface ReportInputs {
  set: ReportSource;
  result: ReportResult;
  seed: number | null;
  samplesRequested: number;
  variant?: 'post-hoc' | 'online';
  warmup?: number;
}

export function buildReport({ set, result, seed, samplesRequested, variant = 'post-hoc', warmup }: ReportInputs): RunReport {
  const window = set.checkpoints.slice(result.window.from, result.window.to);
  const checkpointsBytes = window.reduce((s, c) => s + c.bytes, 0);
  const last = window[window.length - 1];
  const report: RunReport = {
    schemaVersion: REPORT_SCHEMA_VERSION,
    tool: { name: TOOL_NAME, version: TOOL_VERSION },
    input: {
      dir: set.dir,
      format: set.format,
      checkpoints: set.checkpoints.map((c) => ({ index: c.index, step: c.step, name: c.name, bytes: c.bytes })),
      modelledParameters: set.space.total,
      modelledTensors: set.space.tensors.length,
      carriedTensors: set.space.carried.map((t) => ({ name: t.name, reason: t.reason })),
    },
    method: {
      variant,
      modesRequested: result.modesRequested,
      modes: result.modes.length,
      samplesRequested,
      samples: result.sampleIndices.length,
      sampling: result.sampling,
      seed,
      correlation: 'abs-pearson',
      distance: 'euclidean-between-rows-of-abs-corr',
      linkage: 'complete',
      cut: 'maxclust',
      ...(warmup !== undefined ? { warmup } : {}),
      skippedNonFinite: result.skippedNonFinite ?? 0,
    },
    modes: result.modes.map((m) => ({ ...m, meanR2: m.meanR2 === null ? 'NaN' : num(m.meanR2) })),
    checkpoints: window.map((c, t) => ({ index: c.index, step: c.step, name: c.name, relativeError: num(result.checkpointErrors[t]) })),
    tensors: result.tensorErrors.map((t) => ({ name: t.name, parameters: t.parameters, relativeError: num(t.relativeError) })),
    storage: {
      checkpointsBytes,
      oneCheckpointBytes: last.bytes,
      modelBytes: result.modelBytes,
      compressionVsTrajectory: num(checkpointsBytes / result.modelBytes),
      compressionVsFinalCheckpoint: num(last.bytes / result.modelBytes),
    },
    outputs: { model: 'cmd-model.safetensors', samples: SAMPLES_FILE, correlationHeatmap: 'sampled-corr.npy' },
  };
  if (result.baselines) report.baselines = baselineSection(result.baselines, window);
  if (result.sweep.length) {
    const all = [result, ...result.sweep].sort((x, y) => x.modesRequested - y.modesRequested);
    report.modeSweep = all.map((m) => ({
      modesRequested: m.modesRequested,
      modes: m.modes.length,
      model: path.relative(path.dirname(result.modelPath), m.modelPath),
      modelBytes: m.modelBytes,
      compressionVsTrajectory: num(checkpointsBytes / m.modelBytes),
      checkpoints: window.map((c, t) => ({ index: c.index, step: c.step, name: c.name, relativeError: num(m.checkpointErrors[t]) })),
    }));
  }
  return RunReportSchema.parse(report);
}

/** The report's `baselines`: one entry per baseline and rank, with its per-checkpoint error. */
function baselineSection(b: NonNullable<AnalysisResult['baselines']>, window: ReportSource['checkpoints']): NonNullable<RunReport['baselines']> {
  const series = (rel: Float64Array) => window.map((c, t) => ({ index: c.index, step: c.step, name: c.name, relativeError: num(rel[t]) }));
  const out: NonNullable<RunReport['baselines']> = [];
  const r = b.results;
  if (b.kinds.includes('avg-last-k')) out.push({ name: `avg-last-${r.average.lastK}`, storageBytes: r.average.bytes, checkpoints: series(r.average.errors.relativeError) });
  if (b.kinds.includes('ema')) out.push({ name: `ema-${r.ema.beta}`, storageBytes: r.ema.bytes, checkpoints: series(r.ema.errors.relativeError) });
  const label = (kind: string, e: { basis: string; result: { rank: number } }) => (e.basis === 'modes' ? `${kind}-rank-${e.result.rank}` : `${kind}-same-storage-rank-${e.result.rank}`);
  const weights = (w: Float64Array) => Array.from(w, (x) => (Number.isFinite(x) ? x : 0));
  if (b.kinds.includes('pca')) for (const e of r.pca) out.push({ name: label('pca', e), rank: e.result.rank, storageBytes: e.bytes, checkpoints: series(e.result.errors.relativeError), finalWeights: weights(e.result.finalWeights) });
  if (b.kinds.includes('dmd')) for (const e of r.dmd) out.push({ name: label('dmd', e), rank: e.result.rank, storageBytes: e.bytes, checkpoints: series(e.result.errors.relativeError), finalWeights: weights(e.result.finalWeights) });
  return out;
}

export function serializeReport(report: RunReport): string {
  return `${JSON.stringify(report, null, 2)}\n`;
}

/** Reads and validates a report; a bad file is an InputError naming it. */
export async function readReport(file: string): Promise<RunReport> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new InputError(file, `cannot read report (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `is not JSON (${(e as Error).message})`, 'bad-json');
  }
  const parsed = RunReportSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(file, `is not a cmd report: ${issue.message} at ${issue.path.join('.') || '(root)'}`, 'bad-report');
  }
  return parsed.data;
}
