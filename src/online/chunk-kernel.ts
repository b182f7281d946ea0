/**
 * The per-parameter online arithmetic of one chunk, behind one interface with two
 * implementations: the WebAssembly kernel (float32 checkpoints; the chunk stays in the kernel's
 * memory across calls) and the JavaScript kernels of kernel.ts (float64 checkpoints, or where
 * WebAssembly SIMD is unavailable). Both give bit-identical results.
 */
import { kernelChoice } from '../core/kernel-choice.ts';
import { updateFused, warmupSolve, type ChunkSums, type FitTable, type ModeFit, type SolveStats } from './kernel.ts';
import { WasmChunk } from './wasm/online-kernel.ts';

/** Per piece of the chunk, Σ err² and Σ w² (as reported per tensor). */
export type RangeErrors = { errSq: number; normSq: number }[];

export interface ChunkKernel {
  /** The chunk's running sums: set them (modes included) before {@link solveWarmup} or {@link update}. */
  readonly sums: ChunkSums;
  /** a and b after the last call. */
  readonly a: Float64Array;
  readonly b: Float64Array;
  /** Per-mode count and Σ R² of the last call's last checkpoint (zero when it did not want them). */
  readonly stats: SolveStats;
  /** Room for `rows` checkpoint rows (row-major, `n` values each) to read values into. */
  values(rows: number): Float32Array | Float64Array;
  /** The warm-up solve from the sums: a, b, statistics, and per range the error at row K−1 of {@link values}. */
  solveWarmup(K: number, fit: ModeFit, refsLast: ArrayLike<number>, ranges: [number, number][], wantStats?: boolean): RangeErrors;
  /** Adds rows 0..fits.K−1 of {@link values} in order; per row, the errors per range. */
  update(refShifted: Float64Array, refs: Float64Array, fits: FitTable, ranges: [number, number][], wantStats?: boolean): RangeErrors[];
}

/** The JavaScript kernels (kernel.ts) over plain arrays. */
class JsChunk implements ChunkKernel {
  readonly sums: ChunkSums;
  readonly a: Float64Array;
  readonly b: Float64Array;
  readonly stats: SolveStats;
  private buffer: Float32Array | Float64Array;

  constructor(
    private readonly n: number,
    rows: number,
    M: number,
    modeBytes: 1 | 2,
    float64: boolean,
  ) {
    this.sums = { shift: new Float64Array(n), mode: modeBytes === 1 ? new Uint8Array(n) : new Uint16Array(n), S1: new Float64Array(n), S2: new Float64Array(n), P: new Float64Array(n) };
    this.a = new Float64Array(n);
    this.b = new Float64Array(n);
    this.stats = { modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
    this.buffer = float64 ? new Float64Array(rows * n) : new Float32Array(rows * n);
  }

  values(rows: number): Float32Array | Float64Array {
    return this.buffer.subarray(0, rows * this.n);
  }

  solveWarmup(K: number, fit: ModeFit, refsLast: ArrayLike<number>, ranges: [number, number][], wantStats = true): RangeErrors {
    this.stats.modeCount.fill(0);
    this.stats.r2Sum.fill(0);
    const err = new Float64Array(2);
    return ranges.map(([i0, i1]) => {
      err[0] = 0;
      err[1] = 0;
      warmupSolve(this.sums, this.buffer, (K - 1) * this.n, fit, refsLast, this.a, this.b, i0, i1, err, wantStats ? this.stats : undefined);
      return { errSq: err[0], normSq: err[1] };
    });
  }

  update(refShifted: Float64Array, refs: Float64Array, fits: FitTable, ranges: [number, number][], wantStats = true): RangeErrors[] {
    const K = fits.K;
    this.stats.modeCount.fill(0);
    this.stats.r2Sum.fill(0);
    const rows: RangeErrors[] = Array.from({ length: K }, () => []);
    const errSq = new Float64Array(K);
    const normSq = new Float64Array(K);
    for (const [i0, i1] of ranges) {
      errSq.fill(0);
      normSq.fill(0);
      updateFused(this.sums, this.buffer, 0, this.n, refShifted, refs, fits, this.a, this.b, i0, i1, errSq, normSq, wantStats ? this.stats : undefined);
      for (let j = 0; j < K; j++) rows[j].push({ errSq: errSq[j], normSq: normSq[j] });
    }
    return rows;
  }
}

/**
 * A kernel for a chunk of `n` parameters, calls of up to `rows` checkpoints and M modes: the
 * WebAssembly one for float32 values when available and not switched off (setKernel in
 * core/kernel-choice.ts), else the JavaScript one.
 * At most one WebAssembly chunk per thread is open at a time (they share the kernel's memory).
 */
export function openChunkKernel(n: number, rows: number, M: number, modeBytes: 1 | 2, options: { float64: boolean }): ChunkKernel {
  const wasm = options.float64 || kernelChoice() === 'js' ? null : WasmChunk.open(n, rows, M, modeBytes);
  return wasm ?? new JsChunk(n, rows, M, modeBytes, options.float64);
}
