/**
 * Online CMD arithmetic (docs/method.md §11, §12): running sums instead of a reference
 * history. Per mode m: n, R1 = Σ (r_m − c_m), R2 = Σ (r_m − c_m)² with c_m = r_m(0). Per
 * parameter i of mode m(i): S1 = Σ (w_i − c_i), S2 = Σ (w_i − c_i)², P = Σ (w_i − c_i)(r_m − c_m)
 * with c_i = w_i(0). Adding a checkpoint is O(N); a and b follow from the closed form, which
 * equals numpy's `X W̃ᵀ (W̃W̃ᵀ)⁺` (the pinv minimum-norm solution for a constant reference).
 *
 * Shifting by the first value makes the sums small numbers whose differences keep full float64
 * precision even when |mean| ≫ spread (BatchNorm running variances); b is shifted back at the end.
 * Every function is pure over typed arrays so chunks can run on worker threads.
 */
import { PINV_RCOND } from '../core/fit.ts';

/** Per-mode running sums of the shifted references. */
export interface ModeSums {
  /** Checkpoints added so far. */
  n: number;
  /** c_m = r_m(0), the shift. */
  shift: number[];
  R1: number[];
  R2: number[];
}

/** Empty sums with the given shifts (the references' values at checkpoint 0). */
export function createModeSums(shift: ArrayLike<number>): ModeSums {
  const M = shift.length;
  return { n: 0, shift: Array.from(shift), R1: new Array<number>(M).fill(0), R2: new Array<number>(M).fill(0) };
}

/** The sums after adding one checkpoint's reference values `r` (raw, M of them); `sums` is unchanged. */
export function addReferences(sums: ModeSums, r: ArrayLike<number>): ModeSums {
  const R1 = sums.R1.slice();
  const R2 = sums.R2.slice();
  for (let m = 0; m < R1.length; m++) {
    const q = r[m] - sums.shift[m];
    R1[m] += q;
    R2[m] += q * q;
  }
  return { n: sums.n + 1, shift: sums.shift, R1, R2 };
}

/** What the per-parameter solve needs per mode, derived once per checkpoint from {@link ModeSums}. */
export interface ModeFit {
  n: number;
  shift: Float64Array;
  R1: Float64Array;
  /** n·R2 − R1², the scaled variance of the reference. */
  varR: Float64Array;
  /** 1 / varR: the solve multiplies by it (one rounding more than a division, shared by every path). */
  invVarR: Float64Array;
  /** 1 / n. */
  invN: number;
  /** Time mean of the reference. */
  mean: Float64Array;
  /** 1 when numpy's pinv(rcond = 1e-15) would drop the Gram matrix's second singular value. */
  constant: Uint8Array;
}

/**
 * Per-mode fit constants. The constant-reference test is {@link prepareReferences}'s: the
 * eigenvalues of G = [[Σr², Σr], [Σr, n]] from centred sums, second ≤ 1e-15 × first → constant.
 */
export function modeFit(sums: ModeSums): ModeFit {
  const M = sums.R1.length;
  const n = sums.n;
  const fit: ModeFit = { n, shift: Float64Array.from(sums.shift), R1: Float64Array.from(sums.R1), varR: new Float64Array(M), invVarR: new Float64Array(M), invN: 1 / n, mean: new Float64Array(M), constant: new Uint8Array(M) };
  for (let m = 0; m < M; m++) {
    const R1 = sums.R1[m];
    const R2 = sums.R2[m];
    const varR = n * R2 - R1 * R1;
    fit.varR[m] = varR;
    fit.invVarR[m] = 1 / varR;
    const c = sums.shift[m] + R1 / n;
    fit.mean[m] = c;
    const centredSq = Math.max(varR / n, 0);
    const trace = centredSq + n * c * c + n;
    const det = n * centredSq;
    const s1 = (trace + Math.sqrt(Math.max(trace * trace - 4 * det, 0))) / 2;
    const s2 = s1 > 0 ? det / s1 : 0;
    fit.constant[m] = !(s2 > PINV_RCOND * s1) || !(varR > 0) ? 1 : 0;
  }
  return fit;
}

/** The running sums of one chunk of parameters (views into the chunk's state files). */
export interface ChunkSums {
  /** c_i = w_i(0). */
  shift: Float64Array;
  mode: Uint8Array | Uint16Array;
  S1: Float64Array;
  S2: Float64Array;
  P: Float64Array;
}

/** Fresh sums for `n` parameters whose checkpoint-0 values are `first` (S1 = S2 = P = 0). */
export function createChunkSums(first: ArrayLike<number>, mode: Uint8Array | Uint16Array): ChunkSums {
  const n = first.length;
  return { shift: Float64Array.from(first), mode, S1: new Float64Array(n), S2: new Float64Array(n), P: new Float64Array(n) };
}

/**
 * Adds one checkpoint: `w[wOffset + i]` = parameter i's value, `refShifted[m]` = r_m(t) − c_m.
 * Updates the chunk's sums in place.
 */
export function accumulateCheckpoint(sums: ChunkSums, w: ArrayLike<number>, wOffset: number, refShifted: Float64Array): void {
  const { shift, mode, S1, S2, P } = sums;
  for (let i = 0; i < shift.length; i++) {
    const z = w[wOffset + i] - shift[i];
    S1[i] += z;
    S2[i] += z * z;
    P[i] += z * refShifted[mode[i]];
  }
}

/** Per-chunk side results of a solve: counts and Σ R² per mode. */
export interface SolveStats {
  modeCount: Float64Array;
  r2Sum: Float64Array;
}

/** Per-mode constants of a fit, indexed by mode (ModeFit) or by checkpoint·M + mode (FitTable). */
interface FitConstants {
  shift: ArrayLike<number>;
  R1: ArrayLike<number>;
  varR: ArrayLike<number>;
  invVarR: ArrayLike<number>;
  mean: ArrayLike<number>;
  constant: ArrayLike<number>;
}

/** solveParam's results: a, b. A module-level pair, so the hot loops allocate nothing. */
const ab = new Float64Array(2);

/**
 * The closed-form solve of one parameter from its shifted sums (c its shift, k the index of its
 * mode's constants): a, b into {@link ab}; returns R² = ρ² = num²/(varW·varR) when `wantR2`,
 * else 0 (R² feeds only the per-mode statistics, so it is skipped when nobody asked). Every JS
 * path (solveChunk, updateFused, warmupSolve) solves through here, so they round identically —
 * and the WebAssembly kernel performs the same operations in the same order.
 */
function solveParam(f: FitConstants, k: number, n: number, invN: number, c: number, s1: number, s2: number, p: number, wantR2: boolean): number {
  if (f.constant[k]) {
    const cm = f.mean[k];
    const xbar = c + s1 / n;
    ab[0] = (cm * xbar) / (cm * cm + 1);
    ab[1] = xbar / (cm * cm + 1);
    return 0;
  }
  const R1 = f.R1[k];
  const num = n * p - s1 * R1;
  const ai = num * f.invVarR[k];
  ab[0] = ai;
  ab[1] = (s1 - ai * R1) * invN + c - ai * f.shift[k];
  if (!wantR2) return 0;
  const varW = n * s2 - s1 * s1;
  if (!(varW > 0)) return 0;
  return Math.min((num * num) / (varW * f.varR[k]), 1);
}

/**
 * a_i, b_i (float64) and R²_i = ρ² from the sums, for every parameter of the chunk:
 * a = (n·P − S1·R1)/(n·R2 − R1²), b = (S1 − a·R1)/n + c_i − a·c_m; for a constant reference
 * with mean c, the minimum-norm a = c·x̄/(c²+1), b = x̄/(c²+1) (reconstruction = time mean x̄).
 */
export function solveChunk(sums: ChunkSums, fit: ModeFit, a: Float64Array, b: Float64Array, stats?: SolveStats): void {
  const { shift, mode, S1, S2, P } = sums;
  const n = fit.n;
  for (let i = 0; i < shift.length; i++) {
    const m = mode[i];
    const r2 = solveParam(fit, m, n, fit.invN, shift[i], S1[i], S2[i], P[i], stats !== undefined);
    a[i] = ab[0];
    b[i] = ab[1];
    if (stats) {
      stats.modeCount[m] += 1;
      stats.r2Sum[m] += r2;
    }
  }
}

/** True when every running sum is finite (a NaN or ±Inf value poisons S2). */
export function sumsFinite(sums: ChunkSums): boolean {
  const S2 = sums.S2;
  // x·0 is 0 for finite x and NaN for ±Inf or NaN: one multiply-add per value, no branch.
  let z = 0;
  for (let i = 0; i < S2.length; i++) z += S2[i] * 0;
  return z === 0;
}

/** K consecutive {@link ModeFit}s flattened per (checkpoint j, mode m) at j·M + m, for the fused kernels. */
export interface FitTable {
  K: number;
  M: number;
  n: Float64Array;
  invN: Float64Array;
  shift: Float64Array;
  R1: Float64Array;
  varR: Float64Array;
  invVarR: Float64Array;
  mean: Float64Array;
  constant: Uint8Array;
}

export function fitTable(fits: ModeFit[]): FitTable {
  const K = fits.length;
  const M = fits[0].R1.length;
  const t: FitTable = { K, M, n: new Float64Array(K), invN: new Float64Array(K), shift: new Float64Array(K * M), R1: new Float64Array(K * M), varR: new Float64Array(K * M), invVarR: new Float64Array(K * M), mean: new Float64Array(K * M), constant: new Uint8Array(K * M) };
  for (let j = 0; j < K; j++) {
    const f = fits[j];
    t.n[j] = f.n;
    t.invN[j] = f.invN;
    t.invVarR.set(f.invVarR, j * M);
    t.shift.set(f.shift, j * M);
    t.R1.set(f.R1, j * M);
    t.varR.set(f.varR, j * M);
    t.mean.set(f.mean, j * M);
    t.constant.set(f.constant, j * M);
  }
  return t;
}

/** K per-checkpoint per-mode vectors (M each) flattened at j·M + m. */
export function flatRows(rows: ArrayLike<number>[], M: number): Float64Array {
  const out = new Float64Array(rows.length * M);
  for (let j = 0; j < rows.length; j++) for (let m = 0; m < M; m++) out[j * M + m] = rows[j][m];
  return out;
}

/**
 * Fused {@link accumulateCheckpoint} + {@link solveChunk} + {@link checkpointError} over
 * parameters [i0, i1) for K consecutive checkpoints: `w[wOffset + j·stride + i]` = parameter i
 * at the j-th checkpoint, `refShifted`/`refs` flattened (j·M + m), `fits` for each checkpoint.
 * The per-parameter arithmetic is exactly that of the three functions applied checkpoint by
 * checkpoint; errSq[j]/normSq[j] get the sum over the range in two partial sums (even- and
 * odd-numbered parameters, in order) added at the end, as the WebAssembly kernel's two lanes
 * do. The sums stay in registers across the K checkpoints. Leaves
 * a, b of the last checkpoint; `stats` (if given) counts the last checkpoint's R².
 */
export function updateFused(
  sums: ChunkSums,
  w: Float32Array | Float64Array,
  wOffset: number,
  stride: number,
  refShifted: Float64Array,
  refs: Float64Array,
  fits: FitTable,
  a: Float64Array,
  b: Float64Array,
  i0: number,
  i1: number,
  errSq: Float64Array,
  normSq: Float64Array,
  stats: SolveStats | undefined,
): void {
  const { shift, mode, S1, S2, P } = sums;
  const K = fits.K;
  const M = fits.M;
  const fn = fits.n;
  const fInvN = fits.invN;
  const last = K - 1;
  // Two partial sums per checkpoint, for the even- and odd-numbered parameters of the range
  // (the WebAssembly kernel's two SIMD lanes), added at the end.
  const lanes = new Float64Array(4 * K);
  for (let i = i0; i < i1; i++) {
    const m = mode[i];
    const c = shift[i];
    let s1 = S1[i];
    let s2 = S2[i];
    let p = P[i];
    let ai = 0;
    let bi = 0;
    let off = wOffset + i;
    const lane = (i - i0) & 1;
    for (let j = 0, jm = m; j < K; j++, jm += M, off += stride) {
      const x = w[off];
      const z = x - c;
      s1 += z;
      s2 += z * z;
      p += z * refShifted[jm];
      const r2 = solveParam(fits, jm, fn[j], fInvN[j], c, s1, s2, p, stats !== undefined && j === last);
      ai = ab[0];
      bi = ab[1];
      if (stats && j === last) {
        stats.modeCount[m] += 1;
        stats.r2Sum[m] += r2;
      }
      const e = x - (Math.fround(ai) * refs[jm] + Math.fround(bi));
      lanes[4 * j + lane] += e * e;
      lanes[4 * j + 2 + lane] += x * x;
    }
    S1[i] = s1;
    S2[i] = s2;
    P[i] = p;
    a[i] = ai;
    b[i] = bi;
  }
  for (let j = 0; j < K; j++) {
    errSq[j] += lanes[4 * j] + lanes[4 * j + 1];
    normSq[j] += lanes[4 * j + 2] + lanes[4 * j + 3];
  }
}

/**
 * The warm-up solve over parameters [i0, i1): a, b from the sums with `fit` ({@link solveChunk}),
 * the per-mode statistics (when `stats` is given), and the error at the last warm-up checkpoint (`w[lastOffset + i]`,
 * references `refsLast`) added to err[0] (errSq) and err[1] (normSq) in parameter order, as
 * {@link checkpointError} does. The WebAssembly kernel performs the same operations in the same order.
 */
export function warmupSolve(
  sums: ChunkSums,
  w: Float32Array | Float64Array,
  lastOffset: number,
  fit: ModeFit,
  refsLast: ArrayLike<number>,
  a: Float64Array,
  b: Float64Array,
  i0: number,
  i1: number,
  err: Float64Array,
  stats: SolveStats | undefined,
): void {
  const { shift, mode, S1, S2, P } = sums;
  let errSq = err[0];
  let normSq = err[1];
  for (let i = i0; i < i1; i++) {
    const m = mode[i];
    const r2 = solveParam(fit, m, fit.n, fit.invN, shift[i], S1[i], S2[i], P[i], stats !== undefined);
    const ai = ab[0];
    const bi = ab[1];
    if (stats) {
      stats.modeCount[m] += 1;
      stats.r2Sum[m] += r2;
    }
    a[i] = ai;
    b[i] = bi;
    const x = w[lastOffset + i];
    const e = x - (Math.fround(ai) * refsLast[m] + Math.fround(bi));
    errSq += e * e;
    normSq += x * x;
  }
  err[0] = errSq;
  err[1] = normSq;
}
