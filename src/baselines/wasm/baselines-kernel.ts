/**
 * The WebAssembly baselines kernel (baselines-kernel.wat, compiled at dev time into
 * baselines-kernel-bytes.ts): the Gram blocks' centring and tiles, and the smoothing sums, for
 * float32 chunks. Results agree with the JavaScript kernels to rounding (sums over parameters
 * are grouped in two lanes). Null where WebAssembly SIMD is unavailable.
 */
import { kernelChoice } from '../../core/kernel-choice.ts';
import { instantiateKernel, MemoryLayout, type KernelMemory } from '../../core/wasm/instantiate.ts';
import { BASELINES_KERNEL_WASM_BASE64 } from './baselines-kernel-bytes.ts';

export interface BaselinesKernel {
  memory: KernelMemory;
  tiles(z: number, Tp: number, B: number, C: number): void;
  centre(v: number, np: number, T: number, i0: number, bn: number, z: number, B: number, w0: number, m0: number, full: number, sums: number): void;
  smooth(v: number, np: number, T: number, i0: number, bn: number, k: number, alpha: number, first: number, shift: number, ema: number, sums: number): void;
}

let kernel: BaselinesKernel | null | undefined;
/** The kernel for a float32 chunk, or null (float64 values, no SIMD, or JS chosen with setKernel). */
export function baselinesKernel(values: ArrayLike<number>): BaselinesKernel | null {
  if (kernelChoice() === 'js' || !(values instanceof Float32Array)) return null;
  if (kernel === undefined) kernel = instantiateKernel<BaselinesKernel>(BASELINES_KERNEL_WASM_BASE64);
  return kernel;
}

/**
 * The start of a kernel call's memory layout: the chunk (`values[t·n + i]`) with rows padded to
 * an even length np (the pad column is 0 and adds nothing). Take the call's other buffers from
 * `layout`, then copy the chunk in with {@link loadChunk}.
 */
export function chunkLayout(n: number, T: number): { np: number; layout: MemoryLayout } {
  const np = n + (n & 1);
  const layout = new MemoryLayout();
  layout.take(T * np * 4);
  return { np, layout };
}

/** Grows the kernel's memory to `layout` and copies the chunk to its start; returns the memory buffer. */
export function loadChunk(k: BaselinesKernel, values: Float32Array, n: number, T: number, chunk: { np: number; layout: MemoryLayout }): ArrayBuffer {
  const { np, layout } = chunk;
  const buffer = layout.ensure(k.memory);
  const rows = new Float32Array(buffer, 0, T * np);
  for (let t = 0; t < T; t++) {
    rows.set(values.subarray(t * n, (t + 1) * n), t * np);
    if (np > n) rows[t * np + n] = 0;
  }
  return buffer;
}
