/**
 * Streaming sufficient statistics of a trajectory's snapshot Gram matrix, for the PCA and DMD
 * baselines (docs/baselines.md, "Streaming formulation").
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
import { baselinesKernel, chunkLayout, loadChunk, type BaselinesKernel } from './wasm/baselines-kernel.ts';

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

/** Scratch reused across calls on one thread, so the kernel allocates nothing per chunk. */
let zb = new Float64Array(0);
let Cp = new Float64Array(0);
let mu = new Float64Array(0);
let c0 = new Float64Array(0);
let mFull = new Float64Array(0);

/** Parameters per block: the block's centred values (T × B float64) stay in L1. */
function blockSize(T: number): number {
  return Math.max(16, Math.min(128, Math.floor(4096 / T) & ~3));
}

/**
 * Adds the n parameters of one chunk (`values[t·n + i]`, T checkpoints) to `acc`.
 *
 * Cost is about T(T+1)/2 multiply-adds per parameter. Parameters go in blocks of B: the block is
 * centred into a T × B buffer (each checkpoint's B values are read contiguously), then the block's
 * Gram is formed as dot products over the B parameters in 2 × 4 register tiles of (t, u) on the
 * upper triangle, into a chunk-local buffer that is added to `acc` once at the end. For float32
 * chunks the whole of it runs in a WebAssembly SIMD kernel (wasm/baselines-kernel.wat) where
 * available: the same arithmetic per parameter, sums over parameters in two lanes, so results
 * agree with the JavaScript kernel to rounding.
 */
export function accumulateGram(values: ArrayLike<number>, n: number, T: number, acc: GramAccumulator): void {
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`accumulateGram: n must be a non-negative integer, got ${n}`);
  if (acc.T !== T) throw new RangeError(`accumulateGram: accumulator has T = ${acc.T}, chunk has T = ${T}`);
  if (values.length < T * n) throw new RangeError(`accumulateGram: values has ${values.length} entries, expected T·n = ${T}·${n}`);
  const B = blockSize(T);
  const Tp = (T + 3) & ~3; // rows t ≥ T of the block stay zero, so tiles need no edge cases
  const k = baselinesKernel(values);
  if (k) {
    gramWasm(k, values as Float32Array, n, T, B, Tp, acc);
    return;
  }
  if (zb.length < Tp * B) zb = new Float64Array(Tp * B);
  if (Cp.length < Tp * Tp) Cp = new Float64Array(Tp * Tp);
  if (mu.length < B) {
    mu = new Float64Array(B);
    c0 = new Float64Array(B);
    mFull = new Float64Array(B);
  }
  const z = zb;
  const Cb = Cp;
  const m0 = mu;
  const w0 = c0;
  const full = mFull;
  z.fill(0, 0, Tp * B);
  Cb.fill(0, 0, Tp * Tp);
  const { s, zSum, normSq } = acc;
  let q = 0;
  let muSum = 0;
  for (let i0 = 0; i0 < n; i0 += B) {
    const bn = Math.min(B, n - i0);
    // One pass over the (strided, cache-unfriendly) chunk: shift by the t = 0 value (exact for
    // float32 input) into the block buffer; the centring pass then stays in L1.
    for (let j = 0; j < bn; j++) {
      w0[j] = values[i0 + j];
      m0[j] = 0;
    }
    for (let t = 0; t < T; t++) {
      const o = t * n + i0;
      const zo = t * B;
      let w2 = 0;
      for (let j = 0; j < bn; j++) {
        const w = values[o + j];
        const d = w - w0[j];
        z[zo + j] = d;
        m0[j] += d;
        w2 += w * w;
      }
      normSq[t] += w2;
    }
    for (let j = 0; j < bn; j++) {
      m0[j] /= T;
      const m = w0[j] + m0[j];
      full[j] = m;
      q += m * m;
      muSum += m;
    }
    for (let t = 0; t < T; t++) {
      const zo = t * B;
      let sz = 0;
      let smz = 0;
      for (let j = 0; j < bn; j++) {
        const v = z[zo + j] - m0[j];
        z[zo + j] = v;
        sz += v;
        smz += full[j] * v;
      }
      for (let j = bn; j < B; j++) z[zo + j] = 0;
      zSum[t] += sz;
      s[t] += smz;
    }
    gramTiles(z, Tp, B, Cb);
  }
  const C = acc.C;
  for (let t = 0; t < T; t++) {
    for (let u = t; u < T; u++) C[t * T + u] += Cb[t * Tp + u];
  }
  acc.q[0] += q;
  acc.muSum[0] += muSum;
  acc.count += n;
}

/** {@link accumulateGram} on the WebAssembly kernel: the chunk copied in once, then per block the centring and the tiles. */
function gramWasm(k: BaselinesKernel, values: Float32Array, n: number, T: number, B: number, Tp: number, acc: GramAccumulator): void {
  const zBytes = Tp * B * 8;
  const cBytes = Tp * Tp * 8;
  const chunk = chunkLayout(n, T);
  const { np, layout } = chunk;
  const Z = layout.take(zBytes);
  const C = layout.take(cBytes);
  const [W0, M0, FULL] = layout.takeEach(3, B * 8);
  const SUMS = layout.take((3 * T + 2) * 8);
  const buffer = loadChunk(k, values, n, T, chunk);
  new Float64Array(buffer, Z, (C + cBytes - Z) / 8).fill(0);
  const sums = new Float64Array(buffer, SUMS, 3 * T + 2);
  sums.fill(0);
  for (let i0 = 0; i0 < n; i0 += B) {
    const bn = Math.min(B, np - i0);
    k.centre(0, np, T, i0, bn, Z, B, W0, M0, FULL, SUMS);
    k.tiles(Z, Tp, B, C);
  }
  const Cb = new Float64Array(buffer, C, Tp * Tp);
  for (let t = 0; t < T; t++) {
    for (let u = t; u < T; u++) acc.C[t * T + u] += Cb[t * Tp + u];
    acc.normSq[t] += sums[t];
    acc.s[t] += sums[T + t];
    acc.zSum[t] += sums[2 * T + t];
  }
  acc.q[0] += sums[3 * T];
  acc.muSum[0] += sums[3 * T + 1];
  acc.count += n;
}

/**
 * Cp[t·Tp + u] += Σ_j zb[t·B + j]·zb[u·B + j] for u ≥ t (plus a few entries below the diagonal in
 * the diagonal tiles, which are never read). 2 × 4 tiles: 6 loads feed 8 multiply-adds, and the 8
 * sums plus 6 operands fit the 16 x64 float registers.
 */
function gramTiles(zb: Float64Array, Tp: number, B: number, Cp: Float64Array): void {
  for (let t = 0; t < Tp; t += 2) {
    const a = t * B;
    const b = a + B;
    for (let u = t & ~3; u < Tp; u += 4) {
      const x0 = u * B;
      const x1 = x0 + B;
      const x2 = x1 + B;
      const x3 = x2 + B;
      let s00 = 0, s01 = 0, s02 = 0, s03 = 0, s10 = 0, s11 = 0, s12 = 0, s13 = 0;
      for (let j = 0; j < B; j++) {
        const za = zb[a + j];
        const zc = zb[b + j];
        const y0 = zb[x0 + j];
        const y1 = zb[x1 + j];
        const y2 = zb[x2 + j];
        const y3 = zb[x3 + j];
        s00 += za * y0; s01 += za * y1; s02 += za * y2; s03 += za * y3;
        s10 += zc * y0; s11 += zc * y1; s12 += zc * y2; s13 += zc * y3;
      }
      const r0 = t * Tp + u;
      const r1 = r0 + Tp;
      Cp[r0] += s00; Cp[r0 + 1] += s01; Cp[r0 + 2] += s02; Cp[r0 + 3] += s03;
      Cp[r1] += s10; Cp[r1 + 1] += s11; Cp[r1 + 2] += s12; Cp[r1 + 3] += s13;
    }
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
