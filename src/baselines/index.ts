/**
 * Baselines reported beside CMD (docs/baselines.md): last-k average, EMA, PCA (DLDR-style) and
 * exact DMD, each at rank M and at CMD's storage. Pass 2 runs {@link accumulateBaselines} per chunk
 * in the workers; the main thread merges the results in chunk order and calls
 * {@link finalizeBaselines} once.
 */
import { finalizePca, type PcaRankResult } from './pca.ts';
import { finalizeDmd, type DmdRankResult } from './dmd.ts';
import { finalizeSmoothing } from './smoothing.ts';
import type { BaselineAccumulators } from './accumulators.ts';
import { dmdBytes, pcaBytes, sameStorageRank } from './storage.ts';
import type { ErrorSeries } from './series.ts';

export { accumulateGram, centredGram, createGram, mergeGram, rawGram, type GramAccumulator } from './gram.ts';
export { finalizePca, symmetricEigen, type PcaRankResult, type PcaResult } from './pca.ts';
export { finalizeDmd, isometricSnapshots, type DmdRankResult, type DmdResult } from './dmd.ts';
export {
  accumulateSmoothing,
  createSmoothing,
  finalizeSmoothing,
  mergeSmoothing,
  type SmoothingAccumulator,
  type SmoothingModels,
  type SmoothingOptions,
} from './smoothing.ts';
export { cmdModelBytes, dmdBytes, pcaBytes, sameStorageRank, type CmdModelSize, type SameStorageRanks } from './storage.ts';
export { errorSeries, type ErrorSeries } from './series.ts';
export { accumulateBaselines, createBaselineAccumulators, mergeBaselineAccumulators, type BaselineAccumulators } from './accumulators.ts';

/** One low-rank baseline at one rank, with its storage. */
export interface LowRankEntry<R> {
  /** Why this rank: the CMD mode count, or the largest rank within CMD's bytes. */
  basis: 'modes' | 'sameStorage';
  bytes: number;
  /** True when bytes ≤ the CMD model's bytes. */
  withinBudget: boolean;
  result: R;
}

/** All baseline results for the report. */
export interface BaselineResults {
  parameters: number;
  checkpoints: number;
  cmdBytes: number;
  sameStorage: { pca: number; dmd: number };
  average: { lastK: number; bytes: number; errors: ErrorSeries };
  ema: { beta: number; bytes: number; errors: ErrorSeries };
  pca: LowRankEntry<PcaRankResult>[];
  /** Empty when T < 2 (DMD needs a pair of snapshots); the same-storage entry is absent when no rank fits. */
  dmd: LowRankEntry<DmdRankResult>[];
  /** Eigenvalues of the centred Gram (PCA spectrum), descending. */
  pcaSpectrum: Float64Array;
  /** Singular values of X1 (DMD), descending. */
  dmdSingularValues: Float64Array;
}

/**
 * Turns the merged accumulators into per-checkpoint errors: last-k average, EMA, and PCA / DMD at
 * rank `modes` and at the largest rank within `cmdBytes` (see {@link sameStorageRank}).
 */
export function finalizeBaselines(acc: BaselineAccumulators, options: { modes: number; cmdBytes: number }): BaselineResults {
  const { modes, cmdBytes } = options;
  const { T, count: N } = acc.smoothing;
  if (N < 1) throw new RangeError('finalizeBaselines: no parameters were accumulated');
  // The Gram matrix is only accumulated when PCA or DMD was asked for.
  const withGram = acc.gram.count > 0;
  const same = sameStorageRank(cmdBytes, N, T);
  const smooth = finalizeSmoothing(acc.smoothing);
  const pcaRanks: [number, LowRankEntry<unknown>['basis']][] = withGram ? [[modes, 'modes']] : [];
  if (withGram && same.pca >= 0) pcaRanks.push([same.pca, 'sameStorage']);
  const pca = withGram ? finalizePca(acc.gram, pcaRanks.map(([r]) => r)) : undefined;
  const dmdRanks: [number, LowRankEntry<unknown>['basis']][] = withGram && T >= 2 ? [[modes, 'modes']] : [];
  if (withGram && T >= 2 && same.dmd >= 1) dmdRanks.push([same.dmd, 'sameStorage']);
  const dmd = dmdRanks.length ? finalizeDmd(acc.gram, dmdRanks.map(([r]) => r)) : undefined;
  return {
    parameters: N,
    checkpoints: T,
    cmdBytes,
    sameStorage: same,
    average: { lastK: smooth.lastK, bytes: 4 * N, errors: smooth.average },
    ema: { beta: smooth.beta, bytes: 4 * N, errors: smooth.ema },
    pca: (pca?.ranks ?? []).map((result, k) => {
      const bytes = pcaBytes(result.rank, N, T);
      return { basis: pcaRanks[k][1], bytes, withinBudget: bytes <= cmdBytes, result };
    }),
    dmd: (dmd?.ranks ?? []).map((result, k) => {
      const bytes = dmdBytes(result.rank, N);
      return { basis: dmdRanks[k][1], bytes, withinBudget: bytes <= cmdBytes, result };
    }),
    pcaSpectrum: pca?.spectrum ?? new Float64Array(0),
    dmdSingularValues: dmd?.singularValues ?? new Float64Array(0),
  };
}
