/**
 * Choosing the K "represented" parameters (docs/method.md §1; the official `sample_represented_weights`).
 */
import { createRng, sampleDistinct } from './rng.ts';

/** 'U_B' = balanced per layer (the official default); 'U' = uniform over all N parameters. */
export type SamplingScheme = 'U_B' | 'U';

/** Per-layer sample counts of the balanced scheme, with the intermediate terms for reports. */
export interface BalancedPlan {
  /** Final count per layer (s_l, remainder included). */
  counts: number[];
  /** Count per layer before the remainder was placed. */
  countsBeforeRemainder: number[];
  /** `k − Σ countsBeforeRemainder`. */
  remainder: number;
  /** Layer that received the remainder, or −1 (none needed, or no layer had room). */
  remainderLayer: number;
  /** Σ counts; equals k unless no layer could take the remainder (the reference code then samples fewer). */
  total: number;
}

/**
 * The official rule for picking a scheme: uniform sampling when `k/2 < L` (too few samples to
 * give every layer a share), balanced otherwise.
 */
export function chooseScheme(layerCount: number, k: number): SamplingScheme {
  return k / 2 < layerCount ? 'U' : 'U_B';
}

/**
 * Per-layer counts of the 'U_B' scheme, exactly as docs/method.md §1 with one documented deviation:
 *
 * - `base_l = min(trunc(k / (2L)), n_l)`
 * - `prop_l = trunc(n_l / N * k / 2)`, evaluated left to right in float64 like Python's
 *   `int(n_l / N * k / 2)`
 * - `s_l = base_l + prop_l` if `prop_l ≤ n_l − base_l`, else `base_l` (the proportional part is
 *   dropped, not capped)
 * - the remainder `R = k − Σ s_l` goes whole to the first layer, in ascending order of `s_l`,
 *   that has `n_l − s_l ≥ R`.
 *
 * Tie-break (deviation): layers with equal `s_l` are visited lowest layer index first (a stable
 * sort). numpy's quicksort `argsort` is unstable, so on ties the official code may pick another
 * layer (LeNet5-RGB: numpy gave the remainder to fc2.bias, this rule gives it to fc1.bias).
 */
export function planBalancedSample(layerSizes: readonly number[], k: number): BalancedPlan {
  const L = layerSizes.length;
  if (L === 0) throw new RangeError('planBalancedSample: no layers');
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`planBalancedSample: k must be a non-negative integer, got ${k}`);
  let N = 0;
  for (const n of layerSizes) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`planBalancedSample: layer sizes must be non-negative integers, got ${n}`);
    N += n;
  }
  if (N === 0) throw new RangeError('planBalancedSample: all layers are empty');

  const evenShare = Math.trunc(k / (2 * L));
  const counts = layerSizes.map((n) => {
    const base = Math.min(evenShare, n);
    const prop = Math.trunc((n / N) * k / 2);
    return prop <= n - base ? base + prop : base;
  });
  const countsBeforeRemainder = counts.slice();
  let sum = 0;
  for (const s of counts) sum += s;
  const remainder = k - sum;

  let remainderLayer = -1;
  if (remainder > 0) {
    const order = counts.map((_, l) => l).sort((a, b) => counts[a] - counts[b] || a - b);
    for (const l of order) {
      if (layerSizes[l] - counts[l] >= remainder) {
        remainderLayer = l;
        counts[l] += remainder;
        break;
      }
    }
  }
  const total = remainderLayer >= 0 ? k : sum;
  return { counts, countsBeforeRemainder, remainder, remainderLayer, total };
}

/**
 * The warning when fewer parameters were sampled than asked for, or undefined when K is what
 * was asked. Two caps can apply: K cannot exceed the N modelled parameters, and the balanced
 * scheme drops a layer's proportional share that does not fit in it (see
 * {@link planBalancedSample}), so a large K on a small model gives fewer samples. Both change
 * K, which the user chose, so they are said, never silent (issue 9, defect 10).
 */
export function sampleShortfallNote(requested: number, used: number, N: number, scheme: SamplingScheme | 'file'): string | undefined {
  if (used >= requested) return undefined;
  const why =
    requested > N
      ? `only ${N} parameters are modelled${used < N ? `, and the ${scheme} sampling scheme places ${used} of them` : ''}`
      : `the ${scheme} sampling scheme (balanced per layer) drops a layer's proportional share that does not fit in the layer`;
  return `--samples ${requested} gives ${used} sampled parameters (K = ${used}): ${why}; report.json records both (method.samplesRequested, method.samples)`;
}

/** Options of {@link drawSamples}. */
export interface DrawSamplesOptions {
  /** Sizes of the layers (tensors) in vector order. */
  layerSizes: readonly number[];
  /** Number of parameters to sample (K). */
  k: number;
  /** Seed of the xoshiro128** generator. */
  seed: number;
  /** Force a scheme; by default {@link chooseScheme} decides like the official code. */
  scheme?: SamplingScheme;
}

/** The drawn sample. */
export interface SampleDraw {
  /** Global parameter indices (0-based positions in the flattened vector). */
  indices: Float64Array;
  scheme: SamplingScheme;
  /** Per-layer counts (present for 'U_B'). */
  plan?: BalancedPlan;
}

/**
 * Draws the K sampled parameters.
 *
 * 'U_B': layer by layer in vector order, `s_l` distinct indices uniform in the layer's range, in
 * draw order (not sorted inside a layer, like the official code). 'U': K distinct indices uniform
 * over [0, N), sorted ascending. Same seed → same indices.
 */
export function drawSamples(options: DrawSamplesOptions): SampleDraw {
  const { layerSizes, k, seed } = options;
  const scheme = options.scheme ?? chooseScheme(layerSizes.length, k);
  const rng = createRng(seed);
  if (scheme === 'U') {
    let N = 0;
    for (const n of layerSizes) N += n;
    const drawn = sampleDistinct(rng, 0, N, k);
    const indices = Float64Array.from(drawn).sort();
    return { indices, scheme };
  }
  const plan = planBalancedSample(layerSizes, k);
  const indices = new Float64Array(plan.total);
  let pos = 0;
  let lo = 0;
  for (let l = 0; l < layerSizes.length; l++) {
    const drawn = sampleDistinct(rng, lo, lo + layerSizes[l], plan.counts[l]);
    indices.set(drawn, pos);
    pos += drawn.length;
    lo += layerSizes[l];
  }
  return { indices, scheme, plan };
}
