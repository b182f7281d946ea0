/**
 * Loads the WebAssembly SIMD pass-2 kernel (fit-kernel.wat, compiled at dev time into
 * fit-kernel-bytes.ts) synchronously, once per thread. Returns null where WebAssembly or its SIMD
 * extension is unavailable, so callers fall back to the JavaScript kernel.
 */
import { FIT_KERNEL_WASM_BASE64 } from './fit-kernel-bytes.ts';
import { instantiateKernel, type KernelMemory } from './instantiate.ts';

export type { KernelMemory };

/** The kernel's exports; every address is a byte offset into `memory` (see fit-kernel.wat). */
export interface FitKernelExports {
  memory: KernelMemory;
  load_f32(src: number, rs: number, T: number, ng: number, Z: number, zs: number, mean: number, s1: number, s2: number, nv: number, u: number): void;
  load_f64(src: number, rs: number, T: number, ng: number, Z: number, zs: number, mean: number, s1: number, s2: number, nv: number, u: number): void;
  shifted(n: number, T: number, mo: number, st: number, us: number, s1: number, s2: number, sel: number, first: number, f32: number, oshift: number, oS1: number, oS2: number, oP: number, omode: number, mw: number): void;
  cross2(Z: number, zs: number, T: number, R: number, rs: number, ng: number, P: number, ps: number): void;
  cross1(Z: number, zs: number, T: number, R: number, rs: number, ng: number, P: number): void;
  crossSel(Z: number, zs: number, T: number, R: number, rs: number, nq: number, mo: number, out: number): void;
  load_f32y(src: number, rs: number, T: number, ng: number, Z: number, zs: number, mean: number, s1: number, s2: number, nv: number, u: number, Y: number, ys: number): void;
  cross32(Y: number, ys: number, T: number, R: number, rs: number, ng: number, P: number, ps: number): void;
  /** Returns the number of valid parameters whose mode the float32 pass could not settle. */
  argmax32(nq: number, T: number, M: number, P: number, ps: number, s1: number, s2: number, k: number, K: number, eta: number, mo: number): number;
  argmax(nq: number, T: number, M: number, P: number, ps: number, s1: number, s2: number, st: number, mo: number, sel: number): void;
  fit(npairs: number, T: number, s1: number, s2: number, mean: number, st: number, mo: number, sel: number, fa: number, d: number, oa: number, ob: number, or2: number): void;
  emit(n: number, mo: number, oa: number, ob: number, or2: number, cnt: number, fa32: number, fb32: number, m8: number): void;
  errors(Z: number, zs: number, T: number, R: number, rs: number, ng: number, a: number, d: number, mo: number, ev: number): void;
}

let kernel: FitKernelExports | null | undefined;

/** The kernel instance of this thread, or null when the engine cannot run it. */
export function loadFitKernel(): FitKernelExports | null {
  if (kernel === undefined) kernel = instantiateKernel<FitKernelExports>(FIT_KERNEL_WASM_BASE64);
  return kernel;
}
