/**
 * Pass-2 kernel: assign every parameter to a mode and fit its affine model
 * ŵ_i(t) = a_i · r_{m(i)}(t) + b_i (docs/method.md §8, §9, §11).
 *
 * The pipeline calls {@link fitAssign} once per chunk of parameters; everything is a pure function
 * over typed arrays, so chunks can run on worker threads (pass `offset` to write into shared
 * whole-model output arrays, and merge the per-worker {@link FitAccumulators}).
 *
 * Numerics. The official code sums in float32 with `n·Σw² − (Σw)²`, which cancels badly when
 * |mean| ≫ std (BatchNorm running variances, slowly moving weights). Here every parameter is
 * copied to float64, shifted by its value at t = 0 (exact for float32 inputs) and then centred on
 * its mean; every reference is centred on its mean (two-pass). Sums of centred values keep full
 * precision, and b is shifted back: b = b' + c_w − a·c_r with c_w, c_r the means (docs/method.md §11 allows any
 * constants). The closed form equals numpy's `X W̃ᵀ (W̃W̃ᵀ)⁺` (docs/method.md §9).
 *
 * Two kernels compute this. The WebAssembly SIMD one (wasm/fit-kernel.wat, about 3× faster) runs
 * its two float64 lanes over parameters, so each parameter's sums are the same additions in the
 * same order as in the JavaScript one: modes, a, b and R² are bit-identical, and only the
 * per-checkpoint error and norm sums differ in rounding (parameters grouped differently). The
 * JavaScript kernel is the fallback where WebAssembly SIMD is unavailable (setKernel in kernel-choice.ts).
 * For float32 chunks with M ≥ 8 the WebAssembly kernel first chooses modes from float32 cross sums
 * and keeps that choice only where a proven error bound separates the best and second-best
 * |ρ| (docs/performance.md, "Float32 pre-pass"); the rest of the block is redone in float64, so
 * the modes are still exactly the float64 argmax's, and the fit uses the float64 cross sum of the
 * chosen mode, formed with the same operations in the same order as the all-modes sums.
 */

import { kernelChoice } from './kernel-choice.ts';
import { loadFitKernel, type FitKernelExports } from './wasm/fit-kernel.ts';
import { MemoryLayout } from './wasm/instantiate.ts';

/** Singular values of the 2×2 Gram matrix at or below this fraction of the largest are dropped, like numpy's `pinv(rcond=1e-15)`. */
export const PINV_RCOND = 1e-15;

/** Precomputed per-mode reference statistics, shared by all chunks (plain typed arrays: cloneable to workers). */
export interface ReferenceStats {
  /** Number of modes M. */
  M: number;
  /** Number of checkpoints T. */
  T: number;
  /** M rounded up to a multiple of 4 (the kernel works on 4 modes at a time). */
  Mp: number;
  /** Raw references, checkpoint-major: `refsT[t·M + m] = r_m(t)`. */
  refsT: Float64Array;
  /** Centred references, checkpoint-major and zero-padded: `centredT[t·Mp + m] = r_m(t) − mean_m`. */
  centredT: Float64Array;
  /** Centred references, mode-major: `centred[m·T + t]`. */
  centred: Float64Array;
  /** Time mean of each reference (the shift c_r). */
  mean: Float64Array;
  /** Σ_t (r_m(t) − mean_m): zero up to rounding, kept so the closed form stays exact. */
  sum1: Float64Array;
  /** T·Σ r̃² − (Σ r̃)², the scaled variance of each reference. */
  varScaled: Float64Array;
  /** 1 when the reference is constant in numpy's pinv sense (see {@link prepareReferences}). */
  constant: Uint8Array;
}

/**
 * Per-mode statistics of the M references (`refs` is M × T, mode-major, e.g. float32 values
 * widened to float64).
 *
 * A reference is treated as constant when numpy's `pinv` of its Gram matrix
 * G = [[Σr², Σr], [Σr, T]] would drop the second singular value, i.e. s₂ ≤ 1e-15·s₁ with s₁ ≥ s₂
 * the eigenvalues of G (computed here from centred sums). It is then fitted as exactly constant at
 * its mean c: a = c·x̄/(c²+1), b = x̄/(c²+1), the minimum-norm solution, whose reconstruction is the
 * parameter's time mean x̄. Its |ρ| with every parameter is 0 (numpy's 0/0 → NaN → 0), so it
 * attracts no parameters except through ties at 0.
 */
export function prepareReferences(refs: Float64Array | Float32Array, M: number, T: number): ReferenceStats {
  if (!Number.isInteger(M) || M < 1) throw new RangeError(`prepareReferences: M must be a positive integer, got ${M}`);
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`prepareReferences: T must be a positive integer, got ${T}`);
  if (refs.length !== M * T) throw new RangeError(`prepareReferences: refs has ${refs.length} values, expected M·T = ${M}·${T}`);
  const Mp = Math.ceil(M / 4) * 4;
  const refsT = new Float64Array(T * M);
  const centredT = new Float64Array(T * Mp);
  const centred = new Float64Array(M * T);
  const mean = new Float64Array(M);
  const sum1 = new Float64Array(M);
  const varScaled = new Float64Array(M);
  const constant = new Uint8Array(M);
  for (let m = 0; m < M; m++) {
    const o = m * T;
    const first = refs[o];
    let s = 0;
    for (let t = 0; t < T; t++) s += refs[o + t] - first;
    const meanShift = s / T;
    mean[m] = first + meanShift;
    let s1 = 0;
    let s2 = 0;
    for (let t = 0; t < T; t++) {
      const z = refs[o + t] - first - meanShift;
      centred[o + t] = z;
      centredT[t * Mp + m] = z;
      refsT[t * M + m] = refs[o + t];
      s1 += z;
      s2 += z * z;
    }
    sum1[m] = s1;
    varScaled[m] = T * s2 - s1 * s1;
    // Eigenvalues of G from centred sums: trace = Σr² + T, det = T·Σ(r − r̄)².
    const c = mean[m];
    const trace = s2 + T * c * c + T;
    const det = T * s2;
    const s1Eig = (trace + Math.sqrt(Math.max(trace * trace - 4 * det, 0))) / 2;
    const s2Eig = s1Eig > 0 ? det / s1Eig : 0;
    constant[m] = !(s2Eig > PINV_RCOND * s1Eig) || !(varScaled[m] > 0) ? 1 : 0;
  }
  return { M, T, Mp, refsT, centredT, centred, mean, sum1, varScaled, constant };
}

/** Where {@link fitAssign} writes its per-parameter results. */
export interface FitOutput {
  /** Mode per parameter (Uint8Array is enough for M ≤ 256). */
  mode: Uint8Array | Uint16Array | Int32Array;
  /** Slope per parameter; pass a Float64Array for exactness and cast later. */
  a: Float32Array | Float64Array;
  /** Offset per parameter. */
  b: Float32Array | Float64Array;
  /** Optional R² = ρ² per parameter (fraction of the temporal variance explained). */
  r2?: Float32Array | Float64Array;
  /** Index in the output arrays of the chunk's parameter 0 (default 0). */
  offset?: number;
}

/** Sums that the pipeline adds up over chunks (and over workers with {@link mergeAccumulators}). */
export interface FitAccumulators {
  /** Per checkpoint: Σ_i (w_i(t) − (â_i r_{m(i)}(t) + b̂_i))², with â, b̂ rounded to float32 as stored. */
  errSq: Float64Array;
  /** Per checkpoint: Σ_i w_i(t)². */
  normSq: Float64Array;
  /** Per mode: number of parameters assigned. */
  modeCount: Float64Array;
  /** Per mode: Σ R² of its parameters. */
  r2Sum: Float64Array;
}

/** Zeroed accumulators for M modes and T checkpoints. */
export function createAccumulators(M: number, T: number): FitAccumulators {
  return { errSq: new Float64Array(T), normSq: new Float64Array(T), modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
}

/** Adds `from` into `into` (same M and T). */
export function mergeAccumulators(into: FitAccumulators, from: FitAccumulators): void {
  const add = (x: Float64Array, y: Float64Array) => {
    for (let k = 0; k < x.length; k++) x[k] += y[k];
  };
  add(into.errSq, from.errSq);
  add(into.normSq, from.normSq);
  add(into.modeCount, from.modeCount);
  add(into.r2Sum, from.r2Sum);
}

function checkChunk(op: string, values: ArrayLike<number>, n: number, stats: ReferenceStats, out: FitOutput, acc: FitAccumulators): number {
  const { T, M } = stats;
  if (!Number.isInteger(n) || n < 0) throw new RangeError(`${op}: n must be a non-negative integer, got ${n}`);
  if (values.length !== T * n) throw new RangeError(`${op}: values has ${values.length} entries, expected T·n = ${T}·${n}`);
  const offset = out.offset ?? 0;
  for (const [name, arr] of [['mode', out.mode], ['a', out.a], ['b', out.b], ['r2', out.r2]] as const) {
    if (arr && arr.length < offset + n) throw new RangeError(`${op}: output ${name} has ${arr.length} slots, needs ${offset + n}`);
  }
  if (acc.errSq.length !== T || acc.normSq.length !== T) throw new RangeError(`${op}: accumulators must have T = ${T} checkpoints`);
  if (acc.modeCount.length < M || acc.r2Sum.length < M) throw new RangeError(`${op}: accumulators must have M = ${M} modes`);
  return offset;
}

/** Parameters per block: the block's float64 copy (B × T) stays in L1. */
function blockSize(T: number): number {
  return Math.max(8, Math.min(256, Math.floor(4096 / T) & ~1));
}

/** Per-block scratch space, reused across blocks. */
interface Scratch {
  loc: Float64Array; // B × T centred values
  meanW: Float64Array; // c_w per parameter
  s1: Float64Array; // Σ z (≈ 0)
  s2: Float64Array; // Σ z²
  u: Float64Array; // Σ (w − w(0)), before centring
  P: Float64Array; // B × Mp cross sums Σ z r̃_m
  fa: Float64Array; // float32-rounded a (as stored)
  fb: Float64Array; // float32-rounded b
  mode: Int32Array;
}

function createScratch(B: number, T: number, Mp: number): Scratch {
  return {
    loc: new Float64Array(B * T),
    meanW: new Float64Array(B),
    s1: new Float64Array(B),
    s2: new Float64Array(B),
    u: new Float64Array(B),
    P: new Float64Array(B * Mp),
    fa: new Float64Array(B),
    fb: new Float64Array(B),
    mode: new Int32Array(B),
  };
}

/**
 * Copies parameters [i0, i0+bn) to float64, parameter-major, shifted by their first value and then
 * centred on their mean; fills meanW (c_w), s1 and s2. Works on 4 parameters at a time: the 4
 * strided reads per checkpoint share cache lines, and 4 independent sums hide add latency.
 */
function loadBlock(values: ArrayLike<number>, n: number, T: number, i0: number, bn: number, sc: Scratch): void {
  const { loc, meanW, s1, s2 } = sc;
  let i = 0;
  for (; i + 3 < bn; i += 4) {
    const c0 = values[i0 + i];
    const c1 = values[i0 + i + 1];
    const c2 = values[i0 + i + 2];
    const c3 = values[i0 + i + 3];
    const o0 = i * T;
    const o1 = o0 + T;
    const o2 = o1 + T;
    const o3 = o2 + T;
    let u0 = 0, u1 = 0, u2 = 0, u3 = 0;
    for (let t = 0, p = i0 + i; t < T; t++, p += n) {
      const z0 = values[p] - c0;
      const z1 = values[p + 1] - c1;
      const z2 = values[p + 2] - c2;
      const z3 = values[p + 3] - c3;
      loc[o0 + t] = z0; loc[o1 + t] = z1; loc[o2 + t] = z2; loc[o3 + t] = z3;
      u0 += z0; u1 += z1; u2 += z2; u3 += z3;
    }
    sc.u[i] = u0; sc.u[i + 1] = u1; sc.u[i + 2] = u2; sc.u[i + 3] = u3;
    const m0 = u0 / T, m1 = u1 / T, m2 = u2 / T, m3 = u3 / T;
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    let q0 = 0, q1 = 0, q2 = 0, q3 = 0;
    for (let t = 0; t < T; t++) {
      const z0 = loc[o0 + t] - m0;
      const z1 = loc[o1 + t] - m1;
      const z2 = loc[o2 + t] - m2;
      const z3 = loc[o3 + t] - m3;
      loc[o0 + t] = z0; loc[o1 + t] = z1; loc[o2 + t] = z2; loc[o3 + t] = z3;
      a0 += z0; a1 += z1; a2 += z2; a3 += z3;
      q0 += z0 * z0; q1 += z1 * z1; q2 += z2 * z2; q3 += z3 * z3;
    }
    meanW[i] = c0 + m0; meanW[i + 1] = c1 + m1; meanW[i + 2] = c2 + m2; meanW[i + 3] = c3 + m3;
    s1[i] = a0; s1[i + 1] = a1; s1[i + 2] = a2; s1[i + 3] = a3;
    s2[i] = q0; s2[i + 1] = q1; s2[i + 2] = q2; s2[i + 3] = q3;
  }
  for (; i < bn; i++) {
    const c = values[i0 + i];
    const o = i * T;
    let u = 0;
    for (let t = 0, p = i0 + i; t < T; t++, p += n) {
      const z = values[p] - c;
      loc[o + t] = z;
      u += z;
    }
    sc.u[i] = u;
    const mu = u / T;
    let a = 0;
    let q = 0;
    for (let t = 0; t < T; t++) {
      const z = loc[o + t] - mu;
      loc[o + t] = z;
      a += z;
      q += z * z;
    }
    meanW[i] = c + mu;
    s1[i] = a;
    s2[i] = q;
  }
}

/**
 * P[i·Mp + m] = Σ_t z_i(t)·r̃_m(t) for the block, m < M. Register tiles of 2 parameters × 4 modes
 * (14 live doubles, no spills on x64), then 2 × 2 and 2 × 1 tiles for the last M mod 4 modes.
 */
function crossSums(sc: Scratch, bn: number, T: number, stats: ReferenceStats): void {
  const { loc, P } = sc;
  const { centredT: R, Mp, M } = stats;
  const M4 = M & ~3;
  for (let i = 0; i < bn; i += 2) {
    const oa = i * T;
    // An odd last parameter pairs with itself (a duplicate load) so one code path serves all.
    const ob = i + 1 < bn ? oa + T : oa;
    const pa = i * Mp;
    const pb = i + 1 < bn ? pa + Mp : pa;
    let m = 0;
    for (; m < M4; m += 4) {
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
      let b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      for (let t = 0, r = m; t < T; t++, r += Mp) {
        const wa = loc[oa + t];
        const wb = loc[ob + t];
        const r0 = R[r];
        const r1 = R[r + 1];
        const r2 = R[r + 2];
        const r3 = R[r + 3];
        a0 += wa * r0; a1 += wa * r1; a2 += wa * r2; a3 += wa * r3;
        b0 += wb * r0; b1 += wb * r1; b2 += wb * r2; b3 += wb * r3;
      }
      P[pa + m] = a0; P[pa + m + 1] = a1; P[pa + m + 2] = a2; P[pa + m + 3] = a3;
      P[pb + m] = b0; P[pb + m + 1] = b1; P[pb + m + 2] = b2; P[pb + m + 3] = b3;
    }
    if (m + 1 < M) {
      let a0 = 0, a1 = 0, b0 = 0, b1 = 0;
      for (let t = 0, r = m; t < T; t++, r += Mp) {
        const wa = loc[oa + t];
        const wb = loc[ob + t];
        const r0 = R[r];
        const r1 = R[r + 1];
        a0 += wa * r0; a1 += wa * r1;
        b0 += wb * r0; b1 += wb * r1;
      }
      P[pa + m] = a0; P[pa + m + 1] = a1;
      P[pb + m] = b0; P[pb + m + 1] = b1;
      m += 2;
    }
    if (m < M) {
      let a0 = 0, b0 = 0;
      for (let t = 0, r = m; t < T; t++, r += Mp) {
        a0 += loc[oa + t] * R[r];
        b0 += loc[ob + t] * R[r];
      }
      P[pa + m] = a0;
      P[pb + m] = b0;
    }
  }
}

/** a, b, R² of the last {@link fitParam} call (a module-level slot avoids an allocation per parameter). */
const fitted = new Float64Array(3);

/**
 * Fits one parameter to mode m from its sums: s1 = Σ z, s2 = Σ z², meanW = c_w and
 * cross = Σ z·r̃_m. Leaves a, b and R² in {@link fitted}.
 */
function fitParam(s1: number, s2: number, meanW: number, cross: number, m: number, T: number, stats: ReferenceStats): void {
  let a: number;
  let b: number;
  let r2 = 0;
  if (stats.constant[m]) {
    // numpy pinv minimum-norm solution of a·c + b = x̄.
    const c = stats.mean[m];
    const xbar = meanW + s1 / T;
    a = (c * xbar) / (c * c + 1);
    b = xbar / (c * c + 1);
  } else {
    const R1 = stats.sum1[m];
    const num = T * cross - s1 * R1;
    const varR = stats.varScaled[m];
    const varW = T * s2 - s1 * s1;
    a = num / varR;
    b = (s1 - a * R1) / T + meanW - a * stats.mean[m];
    if (varW > 0) {
      const rho = num / (Math.sqrt(varW) * Math.sqrt(varR));
      r2 = Math.min(rho * rho, 1);
    }
  }
  fitted[0] = a;
  fitted[1] = b;
  fitted[2] = r2;
}

/**
 * Fits parameter i of the block to mode m from its sums, writes a, b, R² and the float32-rounded
 * a, b used for the error sums. Returns R².
 */
function fitOne(sc: Scratch, i: number, cross: number, m: number, T: number, stats: ReferenceStats, out: FitOutput, dst: number): number {
  fitParam(sc.s1[i], sc.s2[i], sc.meanW[i], cross, m, T, stats);
  const a = fitted[0];
  const b = fitted[1];
  const r2 = fitted[2];
  out.a[dst] = a;
  out.b[dst] = b;
  if (out.r2) out.r2[dst] = r2;
  sc.fa[i] = Math.fround(a);
  sc.fb[i] = Math.fround(b);
  return r2;
}

/**
 * Adds the block's squared reconstruction errors and squared norms per checkpoint. Uses the
 * centred copy: w − (â·r + b̂) = z − â·r̃ + (c_w − â·r̄ − b̂), which avoids cancelling two large
 * numbers when |mean| ≫ spread and reads only contiguous, cache-resident arrays.
 */
function accumulateErrors(T: number, bn: number, sc: Scratch, stats: ReferenceStats, acc: FitAccumulators): void {
  const { fa, fb, mode, loc, meanW } = sc;
  const { centred, mean } = stats;
  const { errSq, normSq } = acc;
  let i = 0;
  // Two parameters per sweep halve the read-modify-writes of errSq[t] and normSq[t].
  for (; i + 1 < bn; i += 2) {
    const ma = mode[i];
    const mb = mode[i + 1];
    const aa = fa[i];
    const ab = fa[i + 1];
    const ca = meanW[i];
    const cb = meanW[i + 1];
    const da = ca - aa * mean[ma] - fb[i];
    const db = cb - ab * mean[mb] - fb[i + 1];
    const oa = i * T;
    const ob = oa + T;
    const ra = ma * T;
    const rb = mb * T;
    for (let t = 0; t < T; t++) {
      const za = loc[oa + t];
      const zb = loc[ob + t];
      const ea = za - aa * centred[ra + t] + da;
      const eb = zb - ab * centred[rb + t] + db;
      const wa = za + ca;
      const wb = zb + cb;
      errSq[t] += ea * ea + eb * eb;
      normSq[t] += wa * wa + wb * wb;
    }
  }
  for (; i < bn; i++) {
    const m = mode[i];
    const a = fa[i];
    const c = meanW[i];
    const delta = c - a * mean[m] - fb[i];
    const o = i * T;
    const ro = m * T;
    for (let t = 0; t < T; t++) {
      const z = loc[o + t];
      const e = z - a * centred[ro + t] + delta;
      const w = z + c;
      errSq[t] += e * e;
      normSq[t] += w * w;
    }
  }
}

/**
 * Assigns and fits one chunk of n parameters. `values` is T × n, checkpoint-major
 * (`values[t·n + i]` = parameter i at checkpoint t).
 *
 * Per parameter i: m(i) = argmax_m |ρ_im| (docs/method.md §8), where |ρ| is taken as 0 for a constant
 * parameter (zero variance) or a constant reference (numpy's NaN → 0). Ties go to the lowest m,
 * so constant parameters land in mode 0; with M = 1 everyone is mode 0. Then a, b by least squares
 * on r_{m(i)} (docs/method.md §9) and R² = ρ². Rounding can make two |ρ| that are equal in exact arithmetic
 * differ in the last bit (e.g. two references that are exact affine copies of each other), in
 * which case the larger computed one wins.
 *
 * Side sums go into `acc`: per-checkpoint squared error of the stored (float32-rounded a, b)
 * model computed in float64, per-checkpoint squared norm, per-mode counts and R² sums.
 */
export function fitAssign(values: Float32Array | Float64Array, n: number, stats: ReferenceStats, out: FitOutput, acc: FitAccumulators): void {
  const offset = checkChunk('fitAssign', values, n, stats, out, acc);
  const k = kernelFor();
  if (k) fitWasm(k, values, n, stats, out, acc, offset, undefined, 0);
  else fitAssignJs(values, n, stats, out, acc, offset);
}

/**
 * Fills rows t = 0..T−1 of parameters [p0, p0 + pw) of a float32 chunk into
 * `into[at + t·stride + i]`, i < pw (e.g. positioned reads straight from the checkpoints).
 */
export type PanelSource = (p0: number, pw: number, into: Float32Array, at: number, stride: number) => void;

/**
 * {@link fitAssign} for a float32 chunk of n parameters that `source` reads panel by panel
 * straight into the WebAssembly kernel's memory: no chunk-sized buffer, and no copy of it into the
 * kernel (the copy of a cold 32 MB chunk cost ≈ 0.25 s per worker on the bench, docs/performance.md).
 * The kernel sees the same panel contents, so every output and sum is bit-identical to
 * {@link fitAssign} on the same values. Returns false, doing nothing, when the WebAssembly kernel is
 * not in use (the caller then reads the chunk and calls fitAssign).
 */
export function fitAssignFromSource(source: PanelSource, n: number, stats: ReferenceStats, out: FitOutput, acc: FitAccumulators): boolean {
  const k = kernelFor();
  if (!k) return false;
  const offset = checkChunk('fitAssignFromSource', { length: stats.T * n }, n, stats, out, acc);
  fitWasm(k, new Float32Array(0), n, stats, out, acc, offset, undefined, 0, false, undefined, source);
  return true;
}

/** The JavaScript kernel of {@link fitAssign} (arguments already checked). */
function fitAssignJs(values: Float32Array | Float64Array, n: number, stats: ReferenceStats, out: FitOutput, acc: FitAccumulators, offset: number, shifted?: ShiftedSums): void {
  const { T, M, Mp } = stats;
  const B = blockSize(T);
  const sc = createScratch(B, T, Mp);
  const { varScaled, sum1, constant } = stats;
  // |ρ_im| ∝ |T·P_im − S1_i·R1_m| / sqrt(varR_m): the parameter's own factor is common to all m,
  // so the argmax needs one multiply per mode and no division.
  const invSqrtVarR = varScaled.map((v, m) => (constant[m] ? 0 : 1 / Math.sqrt(v)));
  const sm = shifted ? shiftedModeConstants(stats) : undefined;
  for (let i0 = 0; i0 < n; i0 += B) {
    const bn = Math.min(B, n - i0);
    loadBlock(values, n, T, i0, bn, sc);
    crossSums(sc, bn, T, stats);
    for (let i = 0; i < bn; i++) {
      const s1 = sc.s1[i];
      const varW = T * sc.s2[i] - s1 * s1;
      let best = 0;
      if (M > 1 && varW > 0) {
        let bestScore = 0;
        const p = i * Mp;
        for (let m = 0; m < M; m++) {
          const score = Math.abs(T * sc.P[p + m] - s1 * sum1[m]) * invSqrtVarR[m];
          if (score > bestScore) {
            bestScore = score;
            best = m;
          }
        }
      }
      sc.mode[i] = best;
      out.mode[offset + i0 + i] = best;
      if (shifted) writeShifted(shifted, i0 + i, values[i0 + i], T, sc.u[i], s1, sc.s2[i], sc.P[i * Mp + best], sm!.qMean[best], sm!.qTotal[best]);
      const r2 = fitOne(sc, i, sc.P[i * Mp + best], best, T, stats, out, offset + i0 + i);
      acc.modeCount[best] += 1;
      acc.r2Sum[best] += r2;
    }
    accumulateErrors(T, bn, sc, stats, acc);
  }
}

/**
 * Per parameter, sums about its first value over the window, with x(t) = w(t) − w(0) and
 * q(t) = r(t) − r(0) of the parameter's mode: S1 = Σx, S2 = Σx², P = Σx·q, and shift = w(0).
 * They are what online CMD's running sums start from (online/kernel.ts), and the assignment
 * pass yields them almost for free: with u = Σx (in order), μ = u/T, z = x − μ and r̃ the
 * centred reference (q = r̃ + Q1/T, Q1 = Σq),
 *   S1 = u,  S2 = Σz² + μ·(2·Σz + T·μ),  P = Σz·r̃ + (Q1/T)·Σz + μ·(Σr̃ + Q1).
 */
export interface ShiftedSums {
  shift: Float64Array;
  S1: Float64Array;
  S2: Float64Array;
  P: Float64Array;
}

/** Per-mode constants of {@link ShiftedSums}' P: Q1/T and Σr̃ + Q1 (Q1 summed as the online mode sums are). */
function shiftedModeConstants(stats: ReferenceStats): { qMean: Float64Array; qTotal: Float64Array } {
  const { M, T, refsT, sum1 } = stats;
  const qMean = new Float64Array(M);
  const qTotal = new Float64Array(M);
  for (let m = 0; m < M; m++) {
    let Q1 = 0;
    for (let t = 0; t < T; t++) Q1 += refsT[t * M + m] - refsT[m];
    qMean[m] = Q1 / T;
    qTotal[m] = sum1[m] + Q1;
  }
  return { qMean, qTotal };
}

/** Writes parameter `i`'s {@link ShiftedSums} from the assignment's sums (u, Σz, Σz², Σz·r̃ of mode m). */
function writeShifted(out: ShiftedSums, i: number, first: number, T: number, u: number, s1: number, s2: number, sel: number, qMean: number, qTotal: number): void {
  const mu = u / T;
  out.shift[i] = first;
  out.S1[i] = u;
  out.S2[i] = s2 + mu * (2 * s1 + T * mu);
  out.P[i] = sel + qMean * s1 + mu * qTotal;
}

/**
 * Only the modes of {@link fitAssign} (the same assignment, bit for bit), without the fit and
 * its error sums; with `shifted`, also each parameter's {@link ShiftedSums}.
 */
export function assignModes(values: Float32Array | Float64Array, n: number, stats: ReferenceStats, mode: Uint8Array | Uint16Array | Int32Array, shifted?: ShiftedSums): void {
  if (values.length !== stats.T * n || mode.length < n) throw new RangeError(`assignModes: ${values.length} values and ${mode.length} mode slots for T·n = ${stats.T}·${n}`);
  if (shifted && [shifted.shift, shifted.S1, shifted.S2, shifted.P].some((x) => x.length < n)) throw new RangeError(`assignModes: shifted sums need ${n} slots`);
  const none = new Float64Array(0);
  const acc = createAccumulators(stats.M, stats.T);
  const k = kernelFor();
  if (k) fitWasm(k, values, n, stats, { mode, a: none, b: none }, acc, 0, undefined, 0, true, shifted);
  else fitAssignJs(values, n, stats, { mode, a: new Float64Array(n), b: new Float64Array(n) }, acc, 0, shifted);
}

/**
 * {@link assignModes} for a float32 chunk whose panels `source` reads straight into the
 * WebAssembly kernel's memory (as {@link fitAssignFromSource}): the online warm-up's modes and
 * shifted sums without a chunk-sized buffer or its copy into the kernel. Same panel contents, so
 * the same bits. Returns false, doing nothing, when the WebAssembly kernel is not in use.
 */
export function assignModesFromSource(source: PanelSource, n: number, stats: ReferenceStats, mode: Uint8Array | Uint16Array | Int32Array, shifted: ShiftedSums): boolean {
  if (mode.length < n || [shifted.shift, shifted.S1, shifted.S2, shifted.P].some((x) => x.length < n)) throw new RangeError(`assignModesFromSource: mode and shifted sums need ${n} slots`);
  const k = kernelFor();
  if (!k) return false;
  const none = new Float64Array(0);
  fitWasm(k, new Float32Array(0), n, stats, { mode, a: none, b: none }, createAccumulators(stats.M, stats.T), 0, undefined, 0, true, shifted, source);
  return true;
}

/**
 * Fits one chunk with the modes already given (`modes[i]` for chunk parameter i, read at
 * `modes[modesOffset + i]`): the least-squares part of {@link fitAssign} without the assignment
 * (library API; the online tests use it as the independent reference for the final online
 * model). Writes a, b, R² (and copies the mode into `out.mode`) and fills the same accumulators.
 */
export function fitFixedModes(
  values: Float32Array | Float64Array,
  n: number,
  stats: ReferenceStats,
  modes: ArrayLike<number>,
  modesOffset: number,
  out: FitOutput,
  acc: FitAccumulators,
): void {
  const offset = checkChunk('fitFixedModes', values, n, stats, out, acc);
  if (modes.length < modesOffset + n) throw new RangeError(`fitFixedModes: modes has ${modes.length} entries, needs ${modesOffset + n}`);
  const k = kernelFor();
  if (k) fitWasm(k, values, n, stats, out, acc, offset, modes, modesOffset);
  else fitFixedModesJs(values, n, stats, modes, modesOffset, out, acc, offset);
}

function badMode(m: number, i: number, M: number): RangeError {
  return new RangeError(`fitFixedModes: mode ${m} of parameter ${i} is not in 0..${M - 1}`);
}

/** The JavaScript kernel of {@link fitFixedModes} (arguments already checked). */
function fitFixedModesJs(
  values: Float32Array | Float64Array,
  n: number,
  stats: ReferenceStats,
  modes: ArrayLike<number>,
  modesOffset: number,
  out: FitOutput,
  acc: FitAccumulators,
  offset: number,
): void {
  const { T, M, centred } = stats;
  const B = blockSize(T);
  const sc = createScratch(B, T, stats.Mp);
  for (let i0 = 0; i0 < n; i0 += B) {
    const bn = Math.min(B, n - i0);
    loadBlock(values, n, T, i0, bn, sc);
    for (let i = 0; i < bn; i++) {
      const m = modes[modesOffset + i0 + i];
      if (!(Number.isInteger(m) && m >= 0 && m < M)) throw badMode(m, i0 + i, M);
      const o = i * T;
      const ro = m * T;
      let cross = 0;
      for (let t = 0; t < T; t++) cross += sc.loc[o + t] * centred[ro + t];
      sc.mode[i] = m;
      out.mode[offset + i0 + i] = m;
      const r2 = fitOne(sc, i, cross, m, T, stats, out, offset + i0 + i);
      acc.modeCount[m] += 1;
      acc.r2Sum[m] += r2;
    }
    accumulateErrors(T, bn, sc, stats, acc);
  }
}

/** Which implementation of the kernel runs: WebAssembly SIMD or plain JavaScript. */
export type FitKernel = 'wasm' | 'js';

/**
 * The kernel chosen by the project's one switch (setKernel in kernel-choice.ts). Both give
 * bit-identical modes, a, b and R²; the per-checkpoint error and norm sums agree to rounding
 * (they add the parameters in a different grouping).
 */
function kernelFor(): FitKernelExports | null {
  return kernelChoice() === 'js' ? null : loadFitKernel();
}

/** The kernel that {@link fitAssign} and {@link fitFixedModes} use on this thread. */
export function activeFitKernel(): FitKernel {
  return kernelFor() ? 'wasm' : 'js';
}

/** Parameters per WebAssembly block (a multiple of 8): the block's centred float64 copy (≤ 32 KB) stays in L1/L2. */
function wasmBlockSize(T: number): number {
  return Math.max(8, Math.min(256, Math.floor(4096 / T) & ~7));
}

/** Bytes of raw values copied into kernel memory at a time: few set() calls, and the panel stays in L2. */
const PANEL_BYTES = 256 << 10;

/**
 * Panel bytes when a {@link PanelSource} fills the panel: one positioned read per checkpoint row,
 * so wider rows mean fewer system calls (at T = 40, 2 MB is 52 KB per read). On the bench 2 and
 * 4 MB were ≈ 30 ms faster in pass 2 than 1 MB, 512 KB and 8 MB slower (docs/performance.md).
 */
const SOURCE_PANEL_BYTES = 2 << 20;

/** Whether `out` is the pipeline's compact form the kernel's `emit` writes: float32 a and b, byte modes, no R². */
function outIsCompact(out: FitOutput, M: number): boolean {
  return out.a instanceof Float32Array && out.b instanceof Float32Array && out.mode instanceof Uint8Array && !out.r2 && M <= 256;
}

/** Modes per float32 cross-sum tile of the pre-pass (wasm cross32). */
const PRE_TILE = 5;

/**
 * Smallest M for which the pre-pass runs: below it the float64 cross sums are cheap and the extra
 * chosen-mode sum (crossSel) costs more than the pre-pass saves (scripts/bench-fit.mjs: M = 2 is
 * 20 % slower with it, M = 10 level, M = 20 19 % faster).
 */
const PRE_MIN_MODES = 8;

/** Blocks of the WebAssembly argmax on this thread: all of them, and those the float32 pre-pass could not settle. */
const preStats = { blocks: 0, fallbackBlocks: 0 };

/**
 * How often the float32 pre-pass of the mode choice fell back to float64 on this thread (for
 * tests and profiling; docs/performance.md "Float32 pre-pass").
 */
export function preassignStats(): { blocks: number; fallbackBlocks: number } {
  return { ...preStats };
}

/** Tables of the float32 pre-pass; see {@link preassignTables}. */
interface PreTables {
  /** Modes rounded up to whole tiles of {@link PRE_TILE}. */
  M5: number;
  /** ŕ_m(t) = f32(r̃_m(t)·c_m), c_m = T·invSqrtVarR_m: checkpoint-major, M5 per row, zero padding. */
  r32: Float32Array;
  /** κ_m = f32(R1_m·invSqrtVarR_m). */
  k32: Float32Array;
  /** Settling threshold K·√s2 + η, twice the error bound E with a margin for its own rounding. */
  K: number;
  eta: number;
}

/**
 * Tables of the float32 pre-pass of the mode choice (docs/performance.md, "Float32 pre-pass",
 * where the bound is proven): |σ_m − score_m| ≤ E = (2(T + 10)·2⁻²⁴·Q + T·2⁻¹⁴⁸)·‖z‖ + η₀ with
 * Q = max_m c_m·‖r̃_m‖ and η₀ = 2⁻¹⁴⁸·(√T·(Q + 1) + T + 4); the threshold is 2E·(1 + 2⁻²⁰).
 * Undefined where the proof's range conditions fail (then the float64 argmax runs alone).
 */
function preassignTables(stats: ReferenceStats): PreTables | undefined {
  const { T, M, Mp, centredT, sum1, varScaled, constant } = stats;
  if (M < PRE_MIN_MODES || T > 2 ** 20) return undefined;
  const M5 = Math.ceil(M / PRE_TILE) * PRE_TILE;
  const r32 = new Float32Array(T * M5);
  const k32 = new Float32Array(M5);
  let Q = 0;
  for (let m = 0; m < M; m++) {
    const inv = constant[m] ? 0 : 1 / Math.sqrt(varScaled[m]);
    const c = T * inv;
    let ss = 0;
    for (let t = 0; t < T; t++) {
      const r = centredT[t * Mp + m];
      r32[t * M5 + m] = r * c;
      ss += r * r;
    }
    k32[m] = sum1[m] * inv;
    // 1e-6 covers the rounding of this float64 value of c·‖r̃‖ many times over.
    Q = Math.max(Q, c * Math.sqrt(ss) * (1 + 1e-6));
  }
  if (!(Q < 1e10)) return undefined;
  const margin = 2 * (1 + 2 ** -20);
  const K = margin * (2 * (T + 10) * 2 ** -24 * Q + T * 2 ** -148);
  const eta = margin * 2 ** -148 * (Math.sqrt(T) * (Q + 1) + T + 4);
  return { M5, r32, k32, K, eta };
}

/**
 * Both entry points on the WebAssembly kernel (`modes` given: fixed modes, else argmax). The chunk
 * is copied into kernel memory in panels of about {@link PANEL_BYTES} (one set() per checkpoint
 * row); per block of B parameters the kernel centres the values (adding the squared norms), forms
 * the cross sums with every mode (or with the fixed mode), picks the modes, fits a, b, R² with
 * the operation order of {@link fitParam}, and adds the squared errors. JavaScript only copies the
 * results out and keeps the per-mode counts and R² sums in parameter order.
 */
function fitWasm(
  k: FitKernelExports,
  values: Float32Array | Float64Array,
  n: number,
  stats: ReferenceStats,
  out: FitOutput,
  acc: FitAccumulators,
  offset: number,
  modes: ArrayLike<number> | undefined,
  modesOffset: number,
  modesOnly = false,
  shifted?: ShiftedSums,
  source?: PanelSource,
): void {
  const { T, M, Mp, sum1, constant, varScaled, mean } = stats;
  const B = wasmBlockSize(T);
  const elt = values instanceof Float64Array ? 8 : 4;
  // At least 64 parameters per row copy, so very long trajectories still copy in sizeable runs.
  // The panel width is a multiple of B, so blocks (and every sum) are the same for any width.
  const PW = Math.max(Math.ceil(64 / B) * B, Math.floor((source ? SOURCE_PANEL_BYTES : PANEL_BYTES) / (T * elt * B)) * B);
  const rowBytes = PW * elt;
  // Memory layout (byte offsets). EV to PANEL is one run the call zeroes.
  const L = new MemoryLayout();
  L.take(64);
  const ST = L.take(M * 64); // per-mode table, 64 bytes per mode
  const R = L.take(T * Mp * 8);
  const Z = L.take(T * B * 8);
  const P = L.take(Mp * B * 8);
  const [MEAN, S1, S2, A, D, SEL, OA, OB, OR2, U] = L.takeEach(10, B * 8);
  const MO = L.take(B * 4);
  // Float32 pre-pass of the mode choice (argmax only): scaled references, κ, scaled values, cross
  // sums (before EV: the run from EV to PANEL is zeroed below).
  const pre = !modes && elt === 4 ? preassignTables(stats) : undefined;
  const M5 = pre ? pre.M5 : 0;
  const R32 = L.take(T * M5 * 4);
  const K32 = L.take(M5 * 4);
  const Y = L.take(pre ? T * B * 4 : 0);
  const P32 = L.take(M5 * B * 4);
  const EV = L.take(T * 16);
  const NV = L.take(T * 16);
  // Per panel, the shifted sums and modes of the mode-only pass, copied out once per panel.
  const [SHP, S1P, S2P, PP] = L.takeEach(4, PW * 8);
  const MODEP = L.take(PW * 4);
  // The pipeline's destinations (float32 a, b, byte modes, no R²) are filled by the kernel per
  // panel and copied with one set() each, instead of a JavaScript loop per parameter.
  const emit = !modesOnly && outIsCompact(out, M);
  const CNT = L.take(emit ? M * 16 : 0);
  const A32 = L.take(emit ? PW * 4 : 0);
  const B32 = L.take(emit ? PW * 4 : 0);
  const M8 = L.take(emit ? PW : 0);
  const PANEL = L.take(T * rowBytes);
  const buffer = L.ensure(k.memory);
  const f64 = new Float64Array(buffer);
  const i32 = new Int32Array(buffer);
  const panel = elt === 4 ? new Float32Array(buffer) : f64;
  const sm = shifted ? shiftedModeConstants(stats) : undefined;
  for (let m = 0, q = ST / 8; m < M; m++, q += 8) {
    f64[q] = sum1[m];
    f64[q + 1] = constant[m] ? 0 : 1 / Math.sqrt(varScaled[m]);
    f64[q + 2] = varScaled[m];
    f64[q + 3] = Math.sqrt(varScaled[m]);
    f64[q + 4] = mean[m];
    f64[q + 5] = 0;
    if (constant[m]) i32[2 * q + 10] = i32[2 * q + 11] = -1; // all-ones lane mask
    if (sm) {
      f64[q + 6] = sm.qMean[m];
      f64[q + 7] = sm.qTotal[m];
    }
  }
  f64.set(stats.centredT, R / 8);
  if (pre) {
    const f32 = new Float32Array(buffer);
    f32.set(pre.r32, R32 / 4);
    f32.set(pre.k32, K32 / 4);
  }
  const ys = B * 4;
  f64.fill(0, EV / 8, PANEL / 8);
  // After the fill: the per-mode counts and R² sums continue from the accumulators' values.
  if (emit) {
    for (let m = 0; m < M; m++) {
      f64[CNT / 8 + 2 * m] = acc.modeCount[m];
      f64[CNT / 8 + 2 * m + 1] = acc.r2Sum[m];
    }
  }
  const load = elt === 4 ? k.load_f32 : k.load_f64;
  const zs = B * 8;
  const rs = Mp * 8;
  const { modeCount, r2Sum } = acc;
  const { a: outA, b: outB, r2: outR2, mode: outMode } = out;
  const mo4 = MO / 4;
  const or28 = OR2 / 8, oa8 = OA / 8, ob8 = OB / 8;
  // The mode-only pass with shifted sums writes them, and the modes, per panel in the kernel.
  const mw = outMode.BYTES_PER_ELEMENT;
  const panelOut = modesOnly && shifted !== undefined;
  for (let p0 = 0; p0 < n; p0 += PW) {
    const pw = Math.min(PW, n - p0);
    const pw8 = (pw + 7) & ~7;
    if (source) {
      source(p0, pw, panel as Float32Array, PANEL / elt, PW);
      if (pw8 > pw) for (let t = 0, dst = PANEL / elt; t < T; t++, dst += PW) panel.fill(0, dst + pw, dst + pw8);
    } else {
      for (let t = 0, src = t * n + p0, dst = PANEL / elt; t < T; t++, src += n, dst += PW) {
        panel.set(values.subarray(src, src + pw), dst);
        if (pw8 > pw) panel.fill(0, dst + pw, dst + pw8);
      }
    }
    for (let b0 = 0; b0 < pw; b0 += B) {
      const bn = Math.min(B, pw - b0);
      const ng = (bn + 7) >> 3;
      const i0 = p0 + b0; // chunk index of the block's parameter 0
      if (pre) k.load_f32y(PANEL + b0 * elt, rowBytes, T, ng, Z, zs, MEAN, S1, S2, NV, U, Y, ys);
      else load(PANEL + b0 * elt, rowBytes, T, ng, Z, zs, MEAN, S1, S2, NV, U);
      if (modes) {
        for (let i = 0; i < bn; i++) {
          const m = modes[modesOffset + i0 + i];
          if (!(Number.isInteger(m) && m >= 0 && m < M)) throw badMode(m, i0 + i, M);
          i32[mo4 + i] = m * 8;
        }
        for (let i = bn; i < ng * 8; i++) i32[mo4 + i] = 0;
        k.crossSel(Z, zs, T, R, rs, ng * 2, MO, SEL);
      } else {
        let settled = false;
        if (pre) {
          // Modes from float32 sums where the proven bound separates best and second best; the
          // chosen mode's float64 cross sum is then the same sum cross2 would have formed.
          for (let m = 0; m < M5; m += PRE_TILE) k.cross32(Y, ys, T, R32 + m * 4, M5 * 4, ng, P32 + m * ys, ys);
          settled = k.argmax32(ng * 2, T, M, P32, ys, S1, S2, K32, pre.K, pre.eta, MO) === 0;
          preStats.blocks++;
          if (settled) k.crossSel(Z, zs, T, R, rs, ng * 2, MO, SEL);
          else preStats.fallbackBlocks++;
        }
        if (!settled) {
          let m = 0;
          for (; m + 1 < M; m += 2) k.cross2(Z, zs, T, R + m * 8, rs, ng, P + m * zs, zs);
          if (m < M) k.cross1(Z, zs, T, R + m * 8, rs, ng, P + m * zs);
          k.argmax(ng * 2, T, M, P, zs, S1, S2, ST, MO, SEL);
        }
      }
      if (modesOnly) {
        if (panelOut) k.shifted(bn, T, MO, ST, U, S1, S2, SEL, PANEL + b0 * elt, elt === 4 ? 1 : 0, SHP + b0 * 8, S1P + b0 * 8, S2P + b0 * 8, PP + b0 * 8, MODEP + b0 * mw, mw);
        else for (let i = 0, dst = offset + i0; i < bn; i++, dst++) outMode[dst] = i32[mo4 + i] >> 3;
        continue;
      }
      // Padded lanes (zero values) fit to a = b = 0 and add nothing to the error sums.
      k.fit(ng * 4, T, S1, S2, MEAN, ST, MO, SEL, A, D, OA, OB, OR2);
      if (emit) k.emit(bn, MO, OA, OB, OR2, CNT, A32 + b0 * 4, B32 + b0 * 4, M8 + b0);
      else for (let i = 0, dst = offset + i0; i < bn; i++, dst++) {
        const m = i32[mo4 + i] >> 3;
        const r2 = f64[or28 + i];
        outMode[dst] = m;
        outA[dst] = f64[oa8 + i];
        outB[dst] = f64[ob8 + i];
        if (outR2) outR2[dst] = r2;
        modeCount[m] += 1;
        r2Sum[m] += r2;
      }
      k.errors(Z, zs, T, R, rs, ng, A, D, MO, EV);
    }
    if (emit) {
      (outA as Float32Array).set(new Float32Array(buffer, A32, pw), offset + p0);
      (outB as Float32Array).set(new Float32Array(buffer, B32, pw), offset + p0);
      (outMode as Uint8Array).set(new Uint8Array(buffer, M8, pw), offset + p0);
    }
    if (panelOut) {
      shifted!.shift.set(f64.subarray(SHP / 8, SHP / 8 + pw), p0);
      shifted!.S1.set(f64.subarray(S1P / 8, S1P / 8 + pw), p0);
      shifted!.S2.set(f64.subarray(S2P / 8, S2P / 8 + pw), p0);
      shifted!.P.set(f64.subarray(PP / 8, PP / 8 + pw), p0);
      outMode.set(mw === 1 ? new Uint8Array(buffer, MODEP, pw) : mw === 2 ? new Uint16Array(buffer, MODEP, pw) : new Int32Array(buffer, MODEP, pw), offset + p0);
    }
  }
  if (emit) {
    for (let m = 0; m < M; m++) {
      modeCount[m] = f64[CNT / 8 + 2 * m];
      r2Sum[m] = f64[CNT / 8 + 2 * m + 1];
    }
  }
  const { errSq, normSq } = acc;
  for (let t = 0, e = EV / 8, w = NV / 8; t < T; t++, e += 2, w += 2) {
    errSq[t] += f64[e] + f64[e + 1];
    normSq[t] += f64[w] + f64[w + 1];
  }
}
