/**
 * The WebAssembly online kernel (online-kernel.wat, compiled at dev time into
 * online-kernel-bytes.ts): {@link updateFused} and {@link initFused} for float32 checkpoints,
 * bit-identical to the JavaScript ones (same float64 operations in the same order) without the
 * bounds checks. Loaded once per thread; null where WebAssembly is unavailable (callers fall
 * back to the JavaScript kernels, with identical results).
 */
import type { ChunkSums, FitTable, ModeFit, SolveStats } from '../kernel.ts';
import { ONLINE_KERNEL_WASM_BASE64 } from './online-kernel-bytes.ts';
import { ensureMemory, instantiateKernel, type KernelMemory } from '../../core/wasm/instantiate.ts';

interface OnlineKernelExports {
  memory: KernelMemory;
  update(...args: number[]): void;
  init(...args: number[]): void;
}

let kernel: OnlineKernelExports | null | undefined;

function load(): OnlineKernelExports | null {
  if (kernel === undefined) kernel = instantiateKernel<OnlineKernelExports>(ONLINE_KERNEL_WASM_BASE64);
  return kernel;
}

/** Bump allocator over the kernel's memory, 16-byte aligned. */
class Arena {
  private top = 0;
  private readonly sizes: number[] = [];
  take(bytes: number): number {
    const at = this.top;
    this.top += Math.ceil(bytes / 16) * 16;
    this.sizes.push(bytes);
    return at;
  }
  ensure(k: OnlineKernelExports): ArrayBuffer {
    return ensureMemory(k.memory, this.top);
  }
}

/**
 * A float32 array of `length` values at the start of the kernel's memory, with room for every
 * other buffer {@link updateWasm} / {@link initWasm} lay out for a chunk of `n` parameters,
 * K ≤ `rows` checkpoints and M modes: reading the checkpoints straight into it spares a copy.
 * The memory never grows during those calls, so the array stays attached. Null without the kernel.
 */
export function kernelValues(length: number, n: number, rows: number, M: number): Float32Array | null {
  const k = load();
  if (!k) return null;
  const bytes = Math.ceil((length * 4) / 16) * 16 + n * 6 * 8 + Math.ceil((n * 2) / 16) * 16 + (rows * M * 8 + 16) * 12 + (rows * 8 + 16) * 4 + (M * 8 + 16) * 12 + 64;
  return new Float32Array(ensureMemory(k.memory, bytes), 0, length);
}

const f64At = (buf: ArrayBuffer, at: number, n: number) => new Float64Array(buf, at, n);

function copyIn(buf: ArrayBuffer, at: number, src: ArrayLike<number> & { BYTES_PER_ELEMENT: number; length: number }, ctor: Float64ArrayConstructor | Float32ArrayConstructor | Uint8ArrayConstructor | Uint16ArrayConstructor): void {
  new ctor(buf, at, src.length).set(src);
}

/**
 * {@link updateFused} over each range of `ranges` ([i0, i1) pairs) of a chunk of `stride`
 * parameters, K = fits.K rows of float32 `w`. errSq[j]/normSq[j] are reset per range and
 * reported through `onRange`. Returns false (doing nothing) when the kernel is unavailable.
 */
export function updateWasm(
  sums: ChunkSums,
  w: Float32Array,
  stride: number,
  refShifted: Float64Array,
  refs: Float64Array,
  fits: FitTable,
  a: Float64Array,
  b: Float64Array,
  ranges: [number, number][],
  stats: SolveStats,
  onRange: (r: number, errSq: Float64Array, normSq: Float64Array) => void,
): boolean {
  const k = load();
  if (!k) return false;
  const { K, M } = fits;
  const n = stride;
  const mb = sums.mode.BYTES_PER_ELEMENT;
  const ar = new Arena();
  const pw = ar.take(w.length * 4);
  const pmode = ar.take(n * mb);
  const [pshift, pS1, pS2, pP, pa, pb] = [0, 1, 2, 3, 4, 5].map(() => ar.take(n * 8));
  const ptn = ar.take(K * 8);
  const [ptsh, ptR1, ptvar, ptmean, ptconst, prs, prf] = [0, 1, 2, 3, 4, 5, 6].map(() => ar.take(K * M * 8));
  const ptinvN = ar.take(K * 8);
  const ptinv = ar.take(K * M * 8);
  const peS = ar.take(K * 8);
  const pnS = ar.take(K * 8);
  const pmc = ar.take(M * 8);
  const pr2 = ar.take(M * 8);
  const buf = ar.ensure(k);
  if (w.buffer !== buf || w.byteOffset !== pw) new Float32Array(buf, pw, w.length).set(w);
  copyIn(buf, pmode, sums.mode, mb === 1 ? Uint8Array : Uint16Array);
  f64At(buf, pshift, n).set(sums.shift);
  f64At(buf, pS1, n).set(sums.S1);
  f64At(buf, pS2, n).set(sums.S2);
  f64At(buf, pP, n).set(sums.P);
  f64At(buf, ptn, K).set(fits.n);
  f64At(buf, ptinvN, K).set(fits.invN);
  f64At(buf, ptinv, K * M).set(fits.invVarR);
  f64At(buf, ptsh, K * M).set(fits.shift);
  f64At(buf, ptR1, K * M).set(fits.R1);
  f64At(buf, ptvar, K * M).set(fits.varR);
  f64At(buf, ptmean, K * M).set(fits.mean);
  f64At(buf, ptconst, K * M).set(fits.constant);
  f64At(buf, prs, K * M).set(refShifted);
  f64At(buf, prf, K * M).set(refs);
  f64At(buf, pmc, M).set(stats.modeCount);
  f64At(buf, pr2, M).set(stats.r2Sum);
  const eS = f64At(buf, peS, K);
  const nS = f64At(buf, pnS, K);
  ranges.forEach(([i0, i1], r) => {
    eS.fill(0);
    nS.fill(0);
    k.update(pw, stride, K, M, i0, i1, pmode, mb, pshift, pS1, pS2, pP, ptn, ptsh, ptR1, ptvar, ptmean, ptconst, prs, prf, pa, pb, peS, pnS, ptinvN, ptinv, 1, pmc, pr2);
    onRange(r, eS, nS);
  });
  sums.S1.set(f64At(buf, pS1, n));
  sums.S2.set(f64At(buf, pS2, n));
  sums.P.set(f64At(buf, pP, n));
  a.set(f64At(buf, pa, n));
  b.set(f64At(buf, pb, n));
  stats.modeCount.set(f64At(buf, pmc, M));
  stats.r2Sum.set(f64At(buf, pr2, M));
  return true;
}

/**
 * {@link initFused} over each range of `ranges`; `err` (errSq, normSq) is reset per range and
 * reported through `onRange`. Returns false (doing nothing) when the kernel is unavailable.
 */
export function initWasm(
  sums: ChunkSums,
  w: Float32Array,
  stride: number,
  K: number,
  refShifted: Float64Array,
  fit: ModeFit,
  refsLast: ArrayLike<number>,
  a: Float64Array,
  b: Float64Array,
  ranges: [number, number][],
  stats: SolveStats,
  onRange: (r: number, errSq: number, normSq: number) => void,
): boolean {
  const k = load();
  if (!k) return false;
  const M = fit.R1.length;
  const n = stride;
  const mb = sums.mode.BYTES_PER_ELEMENT;
  const ar = new Arena();
  const pw = ar.take(w.length * 4);
  const pmode = ar.take(n * mb);
  const [pshift, pS1, pS2, pP, pa, pb] = [0, 1, 2, 3, 4, 5].map(() => ar.take(n * 8));
  const [ptsh, ptR1, ptvar, ptmean, ptconst, prf, pmc, pr2] = [0, 1, 2, 3, 4, 5, 6, 7].map(() => ar.take(M * 8));
  const prs = ar.take(K * M * 8);
  const perr = ar.take(16);
  const pinv = ar.take(M * 8);
  const buf = ar.ensure(k);
  if (w.buffer !== buf || w.byteOffset !== pw) new Float32Array(buf, pw, w.length).set(w);
  copyIn(buf, pmode, sums.mode, mb === 1 ? Uint8Array : Uint16Array);
  f64At(buf, ptsh, M).set(fit.shift);
  f64At(buf, ptR1, M).set(fit.R1);
  f64At(buf, ptvar, M).set(fit.varR);
  f64At(buf, pinv, M).set(fit.invVarR);
  f64At(buf, ptmean, M).set(fit.mean);
  f64At(buf, ptconst, M).set(fit.constant);
  f64At(buf, prf, M).set(refsLast);
  f64At(buf, pmc, M).set(stats.modeCount);
  f64At(buf, pr2, M).set(stats.r2Sum);
  f64At(buf, prs, K * M).set(refShifted);
  const err = f64At(buf, perr, 2);
  ranges.forEach(([i0, i1], r) => {
    err[0] = 0;
    err[1] = 0;
    k.init(pw, stride, K, M, i0, i1, pmode, mb, pshift, pS1, pS2, pP, fit.n, fit.invN, pinv, ptsh, ptR1, ptvar, ptmean, ptconst, prs, prf, pa, pb, perr, pmc, pr2);
    onRange(r, err[0], err[1]);
  });
  sums.shift.set(f64At(buf, pshift, n));
  sums.S1.set(f64At(buf, pS1, n));
  sums.S2.set(f64At(buf, pS2, n));
  sums.P.set(f64At(buf, pP, n));
  a.set(f64At(buf, pa, n));
  b.set(f64At(buf, pb, n));
  stats.modeCount.set(f64At(buf, pmc, M));
  stats.r2Sum.set(f64At(buf, pr2, M));
  return true;
}
