/**
 * Loads the WebAssembly SIMD row-distance kernel (distance-kernel.wat, compiled at dev time into
 * distance-kernel-bytes.ts) synchronously, once per thread. Returns null where WebAssembly or its
 * SIMD extension is unavailable, so callers fall back to the JavaScript loops.
 */
import { DISTANCE_KERNEL_WASM_BASE64 } from './distance-kernel-bytes.ts';
import { instantiateKernel, type KernelMemory } from './instantiate.ts';

/** The kernel's linear memory. */
export type DistanceKernelMemory = KernelMemory;

/** The kernel's exports; every address is a byte offset into `memory` (see distance-kernel.wat). */
export interface DistanceKernelExports {
  memory: DistanceKernelMemory;
  /**
   * Adds Σ_l (a_il − a_jl)² to `acc` for the `ng` interleaved groups of 8 rows i at `I` and the
   * `nj` rows j of the row-major tile at `J`; group g takes the rows j ≥ max(0, js0 + 8g), in pairs
   * (a zero row must follow the tile). Group g's sums start at acc + as·g.
   */
  dist(I: number, ng: number, J: number, K: number, js0: number, nj: number, acc: number, as: number): void;
}

let kernel: DistanceKernelExports | null | undefined;

/** The kernel instance of this thread, or null when the engine cannot run it. */
export function loadDistanceKernel(): DistanceKernelExports | null {
  if (kernel === undefined) kernel = instantiateKernel<DistanceKernelExports>(DISTANCE_KERNEL_WASM_BASE64);
  return kernel;
}
