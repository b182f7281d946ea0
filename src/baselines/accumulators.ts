/**
 * What pass 2 adds up for the baselines, chunk by chunk (docs/baselines.md). Apart from the
 * finalizing code (PCA, DMD and their linear algebra) so a worker thread loads only this.
 */
import { accumulateGram, createGram, mergeGram, type GramAccumulator } from './gram.ts';
import { accumulateSmoothing, createSmoothing, mergeSmoothing, type SmoothingAccumulator, type SmoothingModels, type SmoothingOptions } from './smoothing.ts';

/** Everything one chunk contributes (plain typed arrays: cloneable between threads). */
export interface BaselineAccumulators {
  gram: GramAccumulator;
  smoothing: SmoothingAccumulator;
}

/** Zeroed accumulators for T checkpoints. */
export function createBaselineAccumulators(T: number, options: SmoothingOptions = {}): BaselineAccumulators {
  return { gram: createGram(T), smoothing: createSmoothing(T, options) };
}

/** Adds one chunk (`values[t·n + i]`, T checkpoints, n parameters) to all baselines. */
export function accumulateBaselines(values: ArrayLike<number>, n: number, T: number, acc: BaselineAccumulators, models?: SmoothingModels): void {
  accumulateGram(values, n, T, acc.gram);
  accumulateSmoothing(values, n, T, acc.smoothing, models);
}

/** Adds `from` into `into`; call in chunk order. */
export function mergeBaselineAccumulators(into: BaselineAccumulators, from: BaselineAccumulators): void {
  mergeGram(into.gram, from.gram);
  mergeSmoothing(into.smoothing, from.smoothing);
}

