/**
 * The sampled |correlation| matrix and the Euclidean distances between its rows
 * (docs/method.md §2–3: `abs(corrcoef(X))`, NaN → 0, then `pdist(A)`).
 */

import { kernelChoice } from './kernel-choice.ts';
import { loadDistanceKernel, type DistanceKernelExports } from './wasm/distance-kernel.ts';
import { MemoryLayout } from './wasm/instantiate.ts';

/**
 * |Pearson correlation| between the rows of X (K × T, row-major), as a K × K row-major matrix.
 *
 * Each row is first shifted by its first value, then centred (two passes, float64), so rows with
 * a large mean and a tiny spread keep their precision. A row whose T values are all identical has
 * zero variance: numpy's corrcoef gives NaN for its whole row and column, diagonal included,
 * which CMD maps to 0 — we write 0 there directly. Values are clipped to [0, 1] like numpy's
 * `clip(-1, 1)`.
 *
 * `out` (optional, K² values, overwritten) receives the matrix instead of a new array, e.g. one on
 * a SharedArrayBuffer so worker threads can read it without a copy (K = 10,000: 800 MB).
 */
export function absCorrelation(X: Float64Array | Float32Array, K: number, T: number, out?: Float64Array): Float64Array {
  if (X.length !== K * T) throw new RangeError(`absCorrelation: X has ${X.length} values, expected K·T = ${K}·${T}`);
  if (out && out.length !== K * K) throw new RangeError(`absCorrelation: out has ${out.length} slots, expected K² = ${K * K}`);
  const Z = new Float64Array(K * T);
  const scale = new Float64Array(K); // 1/‖z_i‖, or 0 for a constant row
  for (let i = 0; i < K; i++) {
    const off = i * T;
    const first = X[off];
    let sum = 0;
    for (let t = 0; t < T; t++) sum += X[off + t] - first;
    const mean = sum / T;
    let ss = 0;
    for (let t = 0; t < T; t++) {
      const z = X[off + t] - first - mean;
      Z[off + t] = z;
      ss += z * z;
    }
    scale[i] = ss > 0 ? 1 / Math.sqrt(ss) : 0;
  }
  const A = out ? out.fill(0) : new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    const oi = i * T;
    const si = scale[i];
    if (si === 0) continue;
    let j = i;
    // Four rows j at a time: four independent sums (each still over t = 0..T−1 in order, so every
    // entry is bit-identical to the one-row loop) keep the adder busy instead of waiting on one
    // chain of dependent additions (docs/performance.md, "Serial part").
    for (; j + 3 < K; j += 4) {
      const o0 = j * T;
      const o1 = o0 + T;
      const o2 = o1 + T;
      const o3 = o2 + T;
      let d0 = 0;
      let d1 = 0;
      let d2 = 0;
      let d3 = 0;
      for (let t = 0; t < T; t++) {
        const zi = Z[oi + t];
        d0 += zi * Z[o0 + t];
        d1 += zi * Z[o1 + t];
        d2 += zi * Z[o2 + t];
        d3 += zi * Z[o3 + t];
      }
      setAbsCorr(A, K, i, j, si, scale[j], d0);
      setAbsCorr(A, K, i, j + 1, si, scale[j + 1], d1);
      setAbsCorr(A, K, i, j + 2, si, scale[j + 2], d2);
      setAbsCorr(A, K, i, j + 3, si, scale[j + 3], d3);
    }
    for (; j < K; j++) {
      const oj = j * T;
      let dot = 0;
      for (let t = 0; t < T; t++) dot += Z[oi + t] * Z[oj + t];
      setAbsCorr(A, K, i, j, si, scale[j], dot);
    }
  }
  return A;
}

/** Writes |corr| of rows i and j from their dot product (both triangles); 0 stays for a constant row j. */
function setAbsCorr(A: Float64Array, K: number, i: number, j: number, si: number, sj: number, dot: number): void {
  if (sj === 0) return;
  // si·sj first: a commutative product, so duplicated rows give bitwise-identical entries
  // (and exactly zero distance between them).
  let c = Math.abs(dot) * (si * sj);
  if (c > 1) c = 1;
  A[i * K + j] = c;
  A[j * K + i] = c;
}

/** Position of pair (i, j), i ≠ j, in a condensed (scipy `pdist` order) distance vector of n points. */
export function condensedIndex(n: number, i: number, j: number): number {
  if (i > j) {
    const s = i;
    i = j;
    j = s;
  }
  return n * i - (i * (i + 1)) / 2 + (j - i - 1);
}

/** Length of a condensed distance vector of n points. */
export function condensedLength(n: number): number {
  return (n * (n - 1)) / 2;
}

/**
 * Splits rows 0..K−1 into `parts` contiguous ranges with about equal pair counts (row i owns the
 * K−1−i pairs (i, j>i)), for spreading {@link rowDistancesBlock} over worker threads. Returns
 * parts+1 boundaries, starting at 0 and ending at K.
 */
export function splitRowsByPairs(K: number, parts: number): number[] {
  const total = condensedLength(K);
  const bounds = [0];
  let row = 0;
  let done = 0;
  for (let p = 1; p < parts; p++) {
    const target = (total * p) / parts;
    while (row < K && done + (K - 1 - row) <= target) {
      done += K - 1 - row;
      row++;
    }
    bounds.push(Math.max(row, bounds[bounds.length - 1]));
  }
  bounds.push(K);
  return bounds;
}

/** Which implementation computes the distances: WebAssembly SIMD or plain JavaScript. */
export type DistanceKernel = 'wasm' | 'js';

/** The kernel chosen by the project's one switch (setKernel in kernel-choice.ts); both give bit-identical distances. */
function kernelFor(): DistanceKernelExports | null {
  return kernelChoice() === 'js' ? null : loadDistanceKernel();
}

/** The kernel that {@link rowDistancesBlock} and {@link rowDistances} use on this thread. */
export function activeDistanceKernel(): DistanceKernel {
  return kernelFor() ? 'wasm' : 'js';
}

/**
 * Euclidean distances between row i of A (K × K) and every later row j > i, for i in [i0, i1),
 * written into `out` (a full condensed vector of length K(K−1)/2, e.g. on a SharedArrayBuffer) at
 * their scipy `pdist` positions. Workers can fill disjoint row ranges of the same `out`.
 *
 * Computed by direct differences Σ (a_il − a_jl)², summed over l in increasing order for every
 * pair. The Gram identity |a|² + |b|² − 2a·b is not used: it cancels catastrophically for nearly
 * identical rows (an error of ~1e-7 in d when d ≈ 0 at K = 1000), and ties between duplicated rows
 * must stay exact. The WebAssembly kernel (setKernel in kernel-choice.ts) and the JavaScript loops do
 * the same float64 operations in the same order per pair, so their results are bit-identical.
 */
export function rowDistancesBlock(A: Float64Array, K: number, i0: number, i1: number, out: Float64Array): void {
  if (A.length !== K * K) throw new RangeError(`rowDistancesBlock: A has ${A.length} values, expected K² = ${K * K}`);
  if (out.length < condensedLength(K)) throw new RangeError(`rowDistancesBlock: out has ${out.length} slots, expected ${condensedLength(K)}`);
  if (!(0 <= i0 && i0 <= i1 && i1 <= K)) throw new RangeError(`rowDistancesBlock: bad row range [${i0}, ${i1}) for K = ${K}`);
  const k = kernelFor();
  if (k) distancesWasm(k, A, K, i0, i1, out);
  else distancesJs(A, K, i0, i1, out);
}

/** Rows per JavaScript tile: a tile of 16 rows i stays in L2 while rows j stream past it. */
const ROW_TILE = 16;

/** JavaScript kernel: four j rows at a time share each load of a_il. */
function distancesJs(A: Float64Array, K: number, i0: number, i1: number, out: Float64Array): void {
  for (let ib = i0; ib < i1; ib += ROW_TILE) {
    const ie = Math.min(ib + ROW_TILE, i1);
    let j = ib + 1;
    // j runs over all rows after the tile's first row; each row i of the tile takes the j > i.
    for (; j + 3 < K; j += 4) {
      const o0 = j * K;
      const o1 = o0 + K;
      const o2 = o1 + K;
      const o3 = o2 + K;
      for (let i = ib; i < ie && i < j + 3; i++) {
        const oi = i * K;
        let s0 = 0;
        let s1 = 0;
        let s2 = 0;
        let s3 = 0;
        for (let l = 0; l < K; l++) {
          const a = A[oi + l];
          const d0 = a - A[o0 + l];
          const d1 = a - A[o1 + l];
          const d2 = a - A[o2 + l];
          const d3 = a - A[o3 + l];
          s0 += d0 * d0;
          s1 += d1 * d1;
          s2 += d2 * d2;
          s3 += d3 * d3;
        }
        const base = K * i - (i * (i + 1)) / 2 - i - 1;
        if (j > i) out[base + j] = Math.sqrt(s0);
        if (j + 1 > i) out[base + j + 1] = Math.sqrt(s1);
        if (j + 2 > i) out[base + j + 2] = Math.sqrt(s2);
        out[base + j + 3] = Math.sqrt(s3);
      }
    }
    for (; j < K; j++) {
      const oj = j * K;
      for (let i = ib; i < ie && i < j; i++) {
        const oi = i * K;
        let s = 0;
        for (let l = 0; l < K; l++) {
          const d = A[oi + l] - A[oj + l];
          s += d * d;
        }
        out[K * i - (i * (i + 1)) / 2 + (j - i - 1)] = Math.sqrt(s);
      }
    }
  }
}

/** Bytes of A copied into kernel memory per tile of rows i. */
const TILE_BYTES = 16 << 20;

/** Rows j per kernel call: their 256-column chunk (≤ 256 KB) stays in L2 while all groups use it. */
const J_ROWS = 128;

/**
 * WebAssembly kernel driver. A (800 MB at K = 10,000) never goes into kernel memory whole: a tile
 * of TI rows i is copied interleaved in groups of 8 (the kernel's lanes), then the rows j after
 * the tile's first row are copied {@link J_ROWS} at a time (one contiguous set() each) and the
 * kernel runs every group against them. Kernel memory stays below {@link TILE_BYTES} plus
 * 129 rows of A (≈ 27 MB at K = 10,000). JavaScript takes the square roots (Math.sqrt and the
 * scalar path's are the same correctly rounded operation).
 */
function distancesWasm(k: DistanceKernelExports, A: Float64Array, K: number, i0: number, i1: number, out: Float64Array): void {
  if (i1 - i0 < 1 || K < 2) return;
  const TI = Math.min(256, Math.max(8, Math.floor(TILE_BYTES / (8 * K)) & ~7));
  const TJ = J_ROWS;
  const groupsMax = TI / 8;
  const accStride = (TJ + 2) * 64; // per group: 8 sums for each row j, the zero row included
  // Memory layout (byte offsets): I tile, J tile + one zero row (the odd pair's partner), sums.
  const L = new MemoryLayout();
  const I = L.take(TI * K * 8);
  const J = L.take((TJ + 1) * K * 8);
  const ACC = L.take(groupsMax * accStride);
  const buffer = L.ensure(k.memory);
  const f64 = new Float64Array(buffer);
  const acc = ACC / 8;
  for (let ib = i0; ib < i1; ib += TI) {
    const ie = Math.min(ib + TI, i1);
    const groups = Math.ceil((ie - ib) / 8);
    for (let g = 0; g < groups; g++) {
      const q = (I + g * K * 64) / 8;
      for (let r = 0; r < 8; r++) {
        const i = ib + 8 * g + r;
        if (i < ie) {
          const oi = i * K;
          for (let l = 0; l < K; l++) f64[q + 8 * l + r] = A[oi + l];
        } else {
          for (let l = 0; l < K; l++) f64[q + 8 * l + r] = 0;
        }
      }
    }
    for (let jb = ib + 1; jb < K; jb += TJ) {
      const nj = Math.min(TJ, K - jb);
      f64.set(A.subarray(jb * K, (jb + nj) * K), J / 8);
      f64.fill(0, J / 8 + nj * K, J / 8 + (nj + 1) * K);
      f64.fill(0, acc, acc + (groups * accStride) / 8);
      // Group g's first row is ib + 8g: its rows j start at local index ib + 8g + 1 − jb.
      k.dist(I, groups, J, K, ib + 1 - jb, nj, ACC, accStride);
      for (let g = 0; g < groups; g++) {
        const ga = acc + (g * accStride) / 8;
        for (let r = 0; r < 8; r++) {
          const i = ib + 8 * g + r;
          if (i >= ie) break;
          const base = K * i - (i * (i + 1)) / 2 - i - 1 + jb;
          for (let jl = Math.max(0, i + 1 - jb); jl < nj; jl++) out[base + jl] = Math.sqrt(f64[ga + 8 * jl + r]);
        }
      }
    }
  }
}

/**
 * Condensed Euclidean distances between the rows of A (K × K), in scipy `pdist` order:
 * `d[condensedIndex(K, i, j)] = ‖A[i,:] − A[j,:]‖`. O(K³): K = 1000 takes about 0.1 s on one
 * core with the WebAssembly kernel (0.3 s in JavaScript); split the rows with
 * {@link splitRowsByPairs} + {@link rowDistancesBlock} to use several.
 */
export function rowDistances(A: Float64Array, K: number): Float64Array {
  const out = new Float64Array(condensedLength(K));
  rowDistancesBlock(A, K, 0, K, out);
  return out;
}
