/**
 * Streaming sufficient statistics of a trajectory's snapshot Gram matrix, for the PCA and DMD
 * baselines (docs/baselines.md §Numerics).
 *
 * A chunk holds all T values of n parameters, checkpoint-major (`values[t·n + i]`). Every
 * parameter is split exactly, inside the chunk, into its time mean μ_i and its fluctuation
 * z_i(t) = w_i(t) − μ_i (shifted by its t = 0 value first, so float32 inputs lose nothing). The
 * accumulator is the Gram matrix of the augmented rows h_i = [z_i(0) … z_i(T−1), μ_i]:
 *
 *     C = Σ_i z_i z_iᵀ   (T × T)      s = Σ_i μ_i z_i   (T)      q = Σ_i μ_i²
 *
 * C is the Gram matrix of the time-centred snapshots (exactly what PCA needs), and the raw Gram is
 * G = C + s1ᵀ + 1sᵀ + q·11ᵀ. Keeping C apart from the mean terms is what keeps PCA exact when
 * |mean| ≫ std (BatchNorm running variances): forming G and subtracting T·w̄w̄ᵀ would cancel away
 * every digit of the fluctuation. Everything merges by plain addition, in chunk order.
 */

/** Per-chunk (or merged) Gram statistics. Plain typed arrays, so it is cloneable to and from workers. */
export interface GramAccumulator {
  /** Number of checkpoints T. */
  T: number;
  /** Parameters accumulated so far. */
  count: number;
  /** C = Σ_i z_i z_iᵀ, row-major T × T; only the upper triangle (u ≥ t) is filled. */
  C: Float64Array;
  /** s(t) = Σ_i μ_i z_i(t). */
  s: Float64Array;
  /** Σ_i z_i(t) (with Σ μ_i this gives the raw column sums). */
  zSum: Float64Array;
  /** q = Σ_i μ_i² (length-1 array so merging stays element-wise). */
  q: Float64Array;
  /** Σ_i μ_i (length 1). */
  muSum: Float64Array;
  /** ‖w_t‖² = Σ_i w_i(t)², summed directly (no cancellation). */
  normSq: Float64Array;
}

/** A zeroed accumulator for T checkpoints. */
export function createGram(T: number): GramAccumulator {
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`createGram: T must be a positive integer, got ${T}`);
  return {
    T,
    count: 0,
    C: new Float64Array(T * T),
    s: new Float64Array(T),
    zSum: new Float64Array(T),
    q: new Float64Array(1),
    muSum: new Float64Array(1),
    normSq: new Float64Array(T),
  };
}

/** Adds `from` into `into` (same T). Merge chunks in chunk order for reproducible sums. */
export function mergeGram(into: GramAccumulator, from: GramAccumulator): void {
  if (into.T !== from.T) throw new RangeError(`mergeGram: T differs (${into.T} vs ${from.T})`);
  const add = (x: Float64Array, y: Float64Array) => {
    for (let k = 0; k < x.length; k++) x[k] += y[k];
  };
  add(into.C, from.C);
  add(into.s, from.s);
  add(into.zSum, from.zSum);
  add(into.q, from.q);
  add(into.muSum, from.muSum);
  add(into.normSq, from.normSq);
  into.count += from.count;
}

/** Scratch reused across calls of one thread (the kernel allocates nothing per chunk). */
let scratch = new Float64Array(0);

/**
 * Adds the n parameters of one chunk (`values[t·n + i]`, T checkpoints) to `acc`.
 *
 * Cost is T(T+1)/2 multiply-adds per parameter, done as a 2-row × 4-parameter micro-kernel on the
 * upper triangle: each C entry is loaded and stored once per 4 parameters, and each z load feeds
 * two rows.
 */
export function accumulateGram(values: ArrayLike<number>, n: number, T: number, acc: GramAccumulator): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`accumulateGram: n must be a non-negative integer, got ${n}`);
  if (acc.T !== T) throw new RangeError(`accumulateGram: accumulator has T = ${acc.T}, chunk has T = ${T}`);
  if (values.length < T * n) throw new RangeError(`accumulateGram: values has ${values.length} entries, expected T·n = ${T}·${n}`);
  if (scratch.length < 4 * T) scratch = new Float64Array(4 * T);
  const z = scratch; // z[t·4 + j]: fluctuation of parameter j of the group at checkpoint t
  const { C, s, zSum, normSq } = acc;
  let q = 0;
  let muSum = 0;
  for (let i0 = 0; i0 < n; i0 += 4) {
    const g = Math.min(4, n - i0);
    for (let j = 0; j < 4; j++) {
      if (j >= g) {
        for (let t = 0; t < T; t++) z[t * 4 + j] = 0; // padding contributes exact zeros
        continue;
      }
      const i = i0 + j;
      const c = values[i];
      let d = 0;
      for (let t = 0; t < T; t++) {
        const w = values[t * n + i];
        d += w - c;
        normSq[t] += w * w;
      }
      const shift = d / T;
      const mu = c + shift;
      for (let t = 0; t < T; t++) {
        const zt = values[t * n + i] - c - shift;
        z[t * 4 + j] = zt;
        s[t] += mu * zt;
        zSum[t] += zt;
      }
      q += mu * mu;
      muSum += mu;
    }
    gramBlock4(z, T, C);
  }
  acc.q[0] += q;
  acc.muSum[0] += muSum;
  acc.count += n;
}

/** C[t·T + u] += Σ_j z[t·4+j]·z[u·4+j] for u ≥ t, two rows t, t+1 at a time. */
function gramBlock4(z: Float64Array, T: number, C: Float64Array): void {
  let t = 0;
  for (; t + 1 < T; t += 2) {
    const a0 = z[4 * t], a1 = z[4 * t + 1], a2 = z[4 * t + 2], a3 = z[4 * t + 3];
    const b0 = z[4 * t + 4], b1 = z[4 * t + 5], b2 = z[4 * t + 6], b3 = z[4 * t + 7];
    const ra = t * T;
    const rb = ra + T;
    C[ra + t] += a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3;
    for (let u = t + 1; u < T; u++) {
      const o = 4 * u;
      const z0 = z[o], z1 = z[o + 1], z2 = z[o + 2], z3 = z[o + 3];
      C[ra + u] += a0 * z0 + a1 * z1 + a2 * z2 + a3 * z3;
      C[rb + u] += b0 * z0 + b1 * z1 + b2 * z2 + b3 * z3;
    }
  }
  if (t < T) {
    const a0 = z[4 * t], a1 = z[4 * t + 1], a2 = z[4 * t + 2], a3 = z[4 * t + 3];
    C[t * T + t] += a0 * a0 + a1 * a1 + a2 * a2 + a3 * a3;
  }
}

/** The full symmetric centred Gram C (T × T, row-major) from the accumulated upper triangle. */
export function centredGram(acc: GramAccumulator): Float64Array {
  const { T } = acc;
  const out = new Float64Array(T * T);
  for (let t = 0; t < T; t++) {
    for (let u = t; u < T; u++) {
      const v = acc.C[t * T + u];
      out[t * T + u] = v;
      out[u * T + t] = v;
    }
  }
  return out;
}

/**
 * The raw Gram G = WᵀW and the column sums Σ_i w_i(t), derived from the accumulator. Provided for
 * callers that want them; the baselines themselves never use G directly (its small eigenvalues are
 * swamped by the mean when |mean| ≫ std).
 */
export function rawGram(acc: GramAccumulator): { G: Float64Array; colSums: Float64Array } {
  const { T, s, zSum } = acc;
  const q = acc.q[0];
  const C = centredGram(acc);
  const G = new Float64Array(T * T);
  for (let t = 0; t < T; t++) {
    for (let u = 0; u < T; u++) G[t * T + u] = C[t * T + u] + s[t] + s[u] + q;
  }
  const colSums = Float64Array.from(zSum, (v) => v + acc.muSum[0]);
  return { G, colSums };
}
