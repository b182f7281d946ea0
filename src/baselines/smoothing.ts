/**
 * Weight-averaging baselines, computed per parameter inside a chunk (each chunk has all T values of
 * its parameters, so no cross-chunk state is needed):
 *
 * - last-k uniform average (LAWA / timm / fairseq `average_checkpoints`): one model
 *   avg = (1/k) Σ_{t ≥ T−k} w(t); its "reconstruction" of every checkpoint is avg itself;
 * - EMA over checkpoints: ema(0) = w(0), ema(t) = β·ema(t−1) + (1−β)·w(t); compared with w(t) at
 *   every t, and its final value ema(T−1) is a model users evaluate.
 */
import { errorSeries, type ErrorSeries } from './series.ts';
import { baselinesKernel, chunkLayout, loadChunk } from './wasm/baselines-kernel.ts';

/** Options of the smoothing baselines. */
export interface SmoothingOptions {
  /** Checkpoints in the uniform average (clamped to T). @default 5 */
  lastK?: number;
  /** EMA decay β ∈ [0, 1). @default 0.9 */
  beta?: number;
}

/** Per-chunk (or merged) sums of the smoothing baselines. Cloneable to and from workers. */
export interface SmoothingAccumulator {
  T: number;
  /** Effective k (min(lastK, T)). */
  lastK: number;
  beta: number;
  count: number;
  /** Σ_i (w_i(t) − avg_i)². */
  avgErrSq: Float64Array;
  /** Σ_i (w_i(t) − ema_i(t))². */
  emaErrSq: Float64Array;
  /** Σ_i w_i(t)². */
  normSq: Float64Array;
}

/** Where {@link accumulateSmoothing} may write the per-parameter models (index `offset + i`). */
export interface SmoothingModels {
  /** The last-k average per parameter. */
  average?: Float32Array | Float64Array;
  /** The final EMA ema(T−1) per parameter. */
  ema?: Float32Array | Float64Array;
  /** Index of the chunk's parameter 0 in the output arrays. @default 0 */
  offset?: number;
}

/** Parameters per block of {@link accumulateSmoothing} (its per-parameter state stays in L1). */
const SMOOTHING_BLOCK = 512;
/** Per-thread scratch: w(t0), the average's shift and the running EMA of a block. */
let firstScratch = new Float64Array(0);
let shiftScratch = new Float64Array(0);
let emaScratch = new Float64Array(0);

/** A zeroed accumulator; validates the options once so the kernel does not have to. */
export function createSmoothing(T: number, options: SmoothingOptions = {}): SmoothingAccumulator {
  const { lastK = 5, beta = 0.9 } = options;
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`createSmoothing: T must be a positive integer, got ${T}`);
  if (!Number.isInteger(lastK) || lastK < 1) throw new RangeError(`createSmoothing: lastK must be a positive integer, got ${lastK}`);
  if (!(beta >= 0 && beta < 1)) throw new RangeError(`createSmoothing: beta must be in [0, 1), got ${beta}`);
  return {
    T,
    lastK: Math.min(lastK, T),
    beta,
    count: 0,
    avgErrSq: new Float64Array(T),
    emaErrSq: new Float64Array(T),
    normSq: new Float64Array(T),
  };
}

/** Adds `from` into `into` (same T, k and β). */
export function mergeSmoothing(into: SmoothingAccumulator, from: SmoothingAccumulator): void {
  if (into.T !== from.T || into.lastK !== from.lastK || into.beta !== from.beta) {
    throw new RangeError(`mergeSmoothing: accumulators differ (T ${into.T}/${from.T}, k ${into.lastK}/${from.lastK}, β ${into.beta}/${from.beta})`);
  }
  for (let t = 0; t < into.T; t++) {
    into.avgErrSq[t] += from.avgErrSq[t];
    into.emaErrSq[t] += from.emaErrSq[t];
    into.normSq[t] += from.normSq[t];
  }
  into.count += from.count;
}

/**
 * Adds the n parameters of one chunk (`values[t·n + i]`) to `acc`, optionally writing the averaged
 * and final-EMA models. The average is taken of differences to w(T−k) and the EMA is updated as
 * ema += (1−β)(w − ema), so both stay exact-ish when |mean| ≫ std.
 */
export function accumulateSmoothing(values: ArrayLike<number>, n: number, T: number, acc: SmoothingAccumulator, models: SmoothingModels = {}): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`accumulateSmoothing: n must be a non-negative integer, got ${n}`);
  if (acc.T !== T) throw new RangeError(`accumulateSmoothing: accumulator has T = ${acc.T}, chunk has T = ${T}`);
  if (values.length < T * n) throw new RangeError(`accumulateSmoothing: values has ${values.length} entries, expected T·n = ${T}·${n}`);
  const offset = models.offset ?? 0;
  for (const [name, arr] of [['average', models.average], ['ema', models.ema]] as const) {
    if (arr && arr.length < offset + n) throw new RangeError(`accumulateSmoothing: output ${name} has ${arr.length} slots, needs ${offset + n}`);
  }
  const { lastK: k, beta, avgErrSq, emaErrSq, normSq } = acc;
  const alpha = 1 - beta;
  const t0 = T - k;
  const kernel = baselinesKernel(values);
  if (kernel) {
    // The same arithmetic per parameter in WebAssembly SIMD (sums over parameters in two lanes).
    const B = SMOOTHING_BLOCK;
    const chunk = chunkLayout(n, T);
    const { np, layout } = chunk;
    const [FIRST, SHIFT, EMA] = layout.takeEach(3, B * 8);
    const SUMS = layout.take(3 * T * 8);
    const buffer = loadChunk(kernel, values as Float32Array, n, T, chunk);
    const sums = new Float64Array(buffer, SUMS, 3 * T);
    sums.fill(0);
    const f64 = new Float64Array(buffer);
    for (let i0 = 0; i0 < n; i0 += B) {
      kernel.smooth(0, np, T, i0, Math.min(B, np - i0), k, alpha, FIRST, SHIFT, EMA, SUMS);
      const bn = Math.min(B, n - i0);
      for (let j = 0; j < bn; j++) {
        if (models.average) models.average[offset + i0 + j] = f64[FIRST / 8 + j] + f64[SHIFT / 8 + j];
        if (models.ema) models.ema[offset + i0 + j] = f64[EMA / 8 + j];
      }
    }
    for (let t = 0; t < T; t++) {
      normSq[t] += sums[t];
      avgErrSq[t] += sums[T + t];
      emaErrSq[t] += sums[2 * T + t];
    }
    acc.count += n;
    return;
  }
  if (firstScratch.length < SMOOTHING_BLOCK) {
    firstScratch = new Float64Array(SMOOTHING_BLOCK);
    shiftScratch = new Float64Array(SMOOTHING_BLOCK);
    emaScratch = new Float64Array(SMOOTHING_BLOCK);
  }
  // Locals, not the module bindings: the hot loops then keep them in registers.
  const first = firstScratch;
  const shift = shiftScratch;
  const ema = emaScratch;
  // Blocks of parameters, checkpoint rows inside: each row of a block is read contiguously and
  // its three sums stay in registers. Per parameter the arithmetic is sequential in t as before.
  for (let i0 = 0; i0 < n; i0 += SMOOTHING_BLOCK) {
    const bn = Math.min(SMOOTHING_BLOCK, n - i0);
    // The last-k average, shifted by w(t0) (exact for float32 inputs): c + Σ(w − c)/k.
    for (let j = 0; j < bn; j++) {
      first[j] = values[t0 * n + i0 + j];
      shift[j] = 0;
      ema[j] = values[i0 + j];
    }
    for (let t = t0 + 1; t < T; t++) {
      const o = t * n + i0;
      for (let j = 0; j < bn; j++) shift[j] += values[o + j] - first[j];
    }
    for (let j = 0; j < bn; j++) shift[j] /= k;
    for (let t = 0; t < T; t++) {
      const o = t * n + i0;
      // ema(0) = w(0); ema(t) = ema(t−1) + (1 − β)·(w(t) − ema(t−1)).
      const update = t > 0;
      // Two partial sums each (even and odd j), so consecutive additions do not wait on each other.
      let w2 = 0, w2b = 0, a2 = 0, a2b = 0, e2 = 0, e2b = 0;
      let j = 0;
      for (; j + 1 < bn; j += 2) {
        const w = values[o + j];
        const v = values[o + j + 1];
        w2 += w * w;
        w2b += v * v;
        const ea = w - first[j] - shift[j];
        const eb = v - first[j + 1] - shift[j + 1];
        a2 += ea * ea;
        a2b += eb * eb;
        const ma = update ? (ema[j] += alpha * (w - ema[j])) : ema[j];
        const mb = update ? (ema[j + 1] += alpha * (v - ema[j + 1])) : ema[j + 1];
        e2 += (w - ma) * (w - ma);
        e2b += (v - mb) * (v - mb);
      }
      if (j < bn) {
        const w = values[o + j];
        w2 += w * w;
        const ea = w - first[j] - shift[j];
        a2 += ea * ea;
        const ma = update ? (ema[j] += alpha * (w - ema[j])) : ema[j];
        e2 += (w - ma) * (w - ma);
      }
      w2 += w2b;
      a2 += a2b;
      e2 += e2b;
      normSq[t] += w2;
      avgErrSq[t] += a2;
      emaErrSq[t] += e2;
    }
    for (let j = 0; j < bn; j++) {
      if (models.average) models.average[offset + i0 + j] = first[j] + shift[j];
      if (models.ema) models.ema[offset + i0 + j] = ema[j];
    }
  }
  acc.count += n;
}

/** Per-checkpoint errors of both smoothing baselines. */
export function finalizeSmoothing(acc: SmoothingAccumulator): { lastK: number; beta: number; average: ErrorSeries; ema: ErrorSeries } {
  return {
    lastK: acc.lastK,
    beta: acc.beta,
    average: errorSeries(acc.avgErrSq, acc.normSq),
    ema: errorSeries(acc.emaErrSq, acc.normSq),
  };
}
