/**
 * The WebAssembly online kernel (online-kernel.wat, compiled at dev time into
 * online-kernel-bytes.ts): {@link updateFused} and {@link warmupSolve} for float32 checkpoints,
 * bit-identical to the JavaScript ones (same float64 operations in the same order, two
 * parameters per SIMD vector). Loaded once per thread; null where WebAssembly is unavailable (callers fall
 * back to the JavaScript kernels, with identical results).
 */
import type { ChunkKernel, RangeErrors } from '../chunk-kernel.ts';
import type { ChunkSums, FitTable, ModeFit, SolveStats } from '../kernel.ts';
import { ONLINE_KERNEL_WASM_BASE64 } from './online-kernel-bytes.ts';
import { instantiateKernel, MemoryLayout, type KernelMemory } from '../../core/wasm/instantiate.ts';

interface OnlineKernelExports {
  memory: KernelMemory;
  update(...args: number[]): void;
  initSolve(...args: number[]): void;
}

let kernel: OnlineKernelExports | null | undefined;

function load(): OnlineKernelExports | null {
  if (kernel === undefined) kernel = instantiateKernel<OnlineKernelExports>(ONLINE_KERNEL_WASM_BASE64);
  return kernel;
}

/** Bytes of one per-(checkpoint, mode) record and of one per-checkpoint record (see online-kernel.wat). */
const RECORD = 64;
const JREC = 48;

/**
 * Where everything goes in the kernel's memory for a chunk of `n` parameters, up to `rows`
 * checkpoints and M modes: the values first (so they can be read straight into place), then
 * what the calls of a {@link WasmChunk} use.
 */
function layout(valueBytes: number, n: number, rows: number, M: number) {
  const L = new MemoryLayout();
  const w = L.take(valueBytes);
  const mode = L.take(n * 2);
  const [shift, S1, S2, P, a, b] = L.takeEach(6, n * 8);
  const rec = L.take(rows * M * RECORD);
  const jrec = L.take(rows * JREC);
  const anyConst = L.take(M);
  const mc = L.take(M * 8);
  const r2s = L.take(M * 8);
  const err = L.take(16);
  return { w, mode, shift, S1, S2, P, a, b, rec, jrec, anyConst, mc, r2s, err, layout: L };
}

const f64At = (buf: ArrayBuffer, at: number, n: number) => new Float64Array(buf, at, n);

interface FitConstantsLike {
  R1: ArrayLike<number>;
  invVarR: ArrayLike<number>;
  constant: ArrayLike<number>;
  mean: ArrayLike<number>;
  shift: ArrayLike<number>;
  varR: ArrayLike<number>;
}

/** Per-(j, m) records: the constants of checkpoint j's fit for mode m, and r_m(j) shifted and raw. */
function writeRecords(buf: ArrayBuffer, at: number, K: number, M: number, fit: FitConstantsLike, rs: Float64Array | undefined, rf: ArrayLike<number>): void {
  const rec = f64At(buf, at, (K * M * RECORD) / 8);
  for (let j = 0; j < K; j++) {
    for (let m = 0; m < M; m++) {
      const o = ((j * M + m) * RECORD) / 8;
      const k = j * M + m;
      rec[o] = rs ? rs[k] : 0;
      rec[o + 1] = fit.R1[k];
      rec[o + 2] = fit.invVarR[k];
      rec[o + 3] = rf[k];
      rec[o + 4] = fit.constant[k] ? 1 : 0;
      rec[o + 5] = fit.mean[k];
      rec[o + 6] = fit.shift[k];
      rec[o + 7] = fit.varR[k];
    }
  }
}

/**
 * One chunk of `n` parameters held in the kernel's memory for a sequence of calls (a warm-up,
 * then batches of up to `rows` checkpoints): the sums stay in place between calls, and the
 * values are read straight into {@link values}. Every array here is a view into that memory,
 * which does not grow while the chunk is open (one chunk per thread at a time).
 */
export class WasmChunk implements ChunkKernel {
  private readonly k: OnlineKernelExports;
  private readonly L: ReturnType<typeof layout>;
  private readonly buf: ArrayBuffer;
  readonly sums: ChunkSums;
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly stats: SolveStats;

  private constructor(k: OnlineKernelExports, private readonly n: number, private readonly rows: number, private readonly M: number, modeBytes: 1 | 2) {
    this.k = k;
    this.L = layout(rows * n * 4, n, rows, M);
    this.buf = this.L.layout.ensure(k.memory);
    const { buf, L } = this;
    this.sums = {
      shift: f64At(buf, L.shift, n),
      mode: modeBytes === 1 ? new Uint8Array(buf, L.mode, n) : new Uint16Array(buf, L.mode, n),
      S1: f64At(buf, L.S1, n),
      S2: f64At(buf, L.S2, n),
      P: f64At(buf, L.P, n),
    };
    this.a = f64At(buf, L.a, n);
    this.b = f64At(buf, L.b, n);
    this.stats = { modeCount: f64At(buf, L.mc, M), r2Sum: f64At(buf, L.r2s, M) };
  }

  /** Null where WebAssembly (with SIMD) is unavailable. */
  static open(n: number, rows: number, M: number, modeBytes: 1 | 2): WasmChunk | null {
    const k = load();
    return k ? new WasmChunk(k, n, rows, M, modeBytes) : null;
  }

  /** Room for `rows` checkpoint rows of the chunk's float32 values. */
  values(rows: number): Float32Array {
    if (rows > this.rows) throw new RangeError(`online kernel: ${rows} rows, opened for ${this.rows}`);
    return new Float32Array(this.buf, this.L.w, rows * this.n);
  }

  /**
   * {@link warmupSolve} over each range: a, b and (with `wantStats`) the statistics from the sums
   * in place (all set), and per range the error at values row K−1.
   */
  solveWarmup(K: number, fit: ModeFit, refsLast: ArrayLike<number>, ranges: [number, number][], wantStats = true): RangeErrors {
    const { k, L, buf, n, M } = this;
    const mb = this.sums.mode.BYTES_PER_ELEMENT;
    writeRecords(buf, L.rec, 1, M, fit, undefined, refsLast);
    this.stats.modeCount.fill(0);
    this.stats.r2Sum.fill(0);
    const err = f64At(buf, L.err, 2);
    return ranges.map(([i0, i1]) => {
      err[0] = 0;
      err[1] = 0;
      k.initSolve(L.w, n, K, i0, i1, L.mode, mb, L.shift, L.S1, L.S2, L.P, L.rec, fit.n, fit.invN, L.a, L.b, L.err, L.mc, L.r2s, wantStats ? 1 : 0);
      return { errSq: err[0], normSq: err[1] };
    });
  }

  /**
   * {@link updateFused} over each range for the K = fits.K rows at {@link values}: updates the
   * sums, leaves a, b and (with `wantStats`) the statistics of the last row; per row, the
   * errors per range.
   */
  update(refShifted: Float64Array, refs: Float64Array, fits: FitTable, ranges: [number, number][], wantStats = true): RangeErrors[] {
    const { k, L, buf, n, M } = this;
    const K = fits.K;
    if (K > this.rows) throw new RangeError(`online kernel: ${K} rows, opened for ${this.rows}`);
    writeRecords(buf, L.rec, K, M, fits, refShifted, refs);
    const jrec = f64At(buf, L.jrec, (K * JREC) / 8);
    const anyConst = new Uint8Array(buf, L.anyConst, M);
    anyConst.fill(0);
    for (let j = 0; j < K; j++) {
      jrec[6 * j] = fits.n[j];
      jrec[6 * j + 1] = fits.invN[j];
      for (let m = 0; m < M; m++) if (fits.constant[j * M + m]) anyConst[m] = 1;
    }
    this.stats.modeCount.fill(0);
    this.stats.r2Sum.fill(0);
    const rows: RangeErrors[] = Array.from({ length: K }, () => []);
    const mb = this.sums.mode.BYTES_PER_ELEMENT;
    for (const [i0, i1] of ranges) {
      for (let j = 0; j < K; j++) jrec.fill(0, 6 * j + 2, 6 * j + 6);
      k.update(L.w, n, K, M, i0, i1, L.mode, mb, L.shift, L.S1, L.S2, L.P, L.rec, L.jrec, L.anyConst, L.a, L.b, L.mc, L.r2s, wantStats ? 1 : 0);
      // The two lanes (even- and odd-numbered parameters of the range), added as updateFused adds them.
      for (let j = 0; j < K; j++) rows[j].push({ errSq: jrec[6 * j + 2] + jrec[6 * j + 3], normSq: jrec[6 * j + 4] + jrec[6 * j + 5] });
    }
    return rows;
  }
}
