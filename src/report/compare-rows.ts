/**
 * The report's comparisons as rows every view shares: the mode sweep (the same data fitted with
 * other M) and the baselines (other compressions of the same trajectory), each reduced to the
 * numbers people compare: last and mean relative error, storage, accuracy.
 */
import { fromNum, type NumValue, type RunReport } from '../output/report-schema.ts';
import { finiteMean } from './metrics.ts';

type Metrics = { accuracy?: NumValue; loss?: NumValue; error?: string };

/** Error at the last checkpoint (NaN when it is missing or not finite) and mean of the finite errors. */
export function seriesErrors(checkpoints: readonly { relativeError: NumValue }[]): { last: number; mean: number } {
  return {
    last: fromNum(checkpoints[checkpoints.length - 1]?.relativeError),
    mean: finiteMean(checkpoints.map((c) => fromNum(c.relativeError))),
  };
}

export interface SweepRow {
  modesRequested: number;
  modes: number;
  /** This is the report's own model (the one the rest of the report describes). */
  main: boolean;
  model: string;
  modelBytes: number;
  compressionVsTrajectory: number;
  lastError: number;
  meanError: number;
  metrics?: Metrics;
}

/** One row per swept M, ordered by the modes found (then requested); empty without a sweep. */
export function sweepRows(r: RunReport): SweepRow[] {
  const sweep = r.modeSweep ?? [];
  // The model path ties an entry to the main model; the M pair is the fallback for reports that moved files.
  const byPath = sweep.some((s) => s.model === r.outputs.model);
  const isMain = (s: (typeof sweep)[number]) => (byPath ? s.model === r.outputs.model : s.modesRequested === r.method.modesRequested && s.modes === r.method.modes);
  return sweep
    .map((s) => {
      const { last, mean } = seriesErrors(s.checkpoints);
      return {
        modesRequested: s.modesRequested,
        modes: s.modes,
        main: isMain(s),
        model: s.model,
        modelBytes: s.modelBytes,
        compressionVsTrajectory: fromNum(s.compressionVsTrajectory),
        lastError: last,
        meanError: mean,
        ...(s.metrics ? { metrics: s.metrics } : {}),
      };
    })
    .sort((a, b) => a.modes - b.modes || a.modesRequested - b.modesRequested);
}

export interface BaselineRow {
  name: string;
  rank?: number;
  storageBytes?: number;
  /** storageBytes / the CMD model's bytes; NaN when the baseline reports no storage. */
  storageVsCmd: number;
  lastError: number;
  meanError: number;
  metrics?: Metrics;
  /**
   * Drawn in the error chart: baselines that fit in the CMD model's storage (or do not say).
   * The larger ones (rank-M PCA/DMD, several times CMD's bytes) are listed in the tables only,
   * which keeps the chart to a fair comparison and its legend readable.
   */
  inChart: boolean;
  /** Index in report.baselines, for a colour that does not change when others are hidden. */
  index: number;
}

/** One row per baseline, in report order. */
export function baselineRows(r: RunReport): BaselineRow[] {
  const cmdBytes = r.storage.modelBytes;
  return (r.baselines ?? []).map((b, index) => {
    const { last, mean } = seriesErrors(b.checkpoints);
    return {
      name: b.name,
      ...(b.rank !== undefined ? { rank: b.rank } : {}),
      ...(b.storageBytes !== undefined ? { storageBytes: b.storageBytes } : {}),
      storageVsCmd: b.storageBytes !== undefined && cmdBytes > 0 ? b.storageBytes / cmdBytes : NaN,
      lastError: last,
      meanError: mean,
      ...(b.metrics ? { metrics: b.metrics } : {}),
      inChart: b.storageBytes === undefined || b.storageBytes <= cmdBytes,
      index,
    };
  });
}

/** "0.43×" for a storage ratio, '–' when unknown. */
export function ratio(x: number): string {
  return Number.isFinite(x) ? `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}×` : '–';
}
