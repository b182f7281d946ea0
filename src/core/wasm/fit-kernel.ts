/**
 * Loads the WebAssembly SIMD pass-2 kernel (fit-kernel.wat, compiled at dev time into
 * fit-kernel-bytes.ts) synchronously, once per thread. Returns null where WebAssembly or its SIMD
 * extension is unavailable, so callers fall back to the JavaScript kernel.
 */
import { FIT_KERNEL_WASM_BASE64 } from './fit-kernel-bytes.ts';

// The project's TypeScript libs carry no WebAssembly typings: declare the little used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

/** The kernel's linear memory. */
export interface KernelMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

/** The kernel's exports; every address is a byte offset into `memory` (see fit-kernel.wat). */
export interface FitKernelExports {
  memory: KernelMemory;
  load_f32(src: number, rs: number, T: number, ng: number, Z: number, zs: number, mean: number, s1: number, s2: number, nv: number): void;
  load_f64(src: number, rs: number, T: number, ng: number, Z: number, zs: number, mean: number, s1: number, s2: number, nv: number): void;
  cross2(Z: number, zs: number, T: number, R: number, rs: number, ng: number, P: number, ps: number): void;
  cross1(Z: number, zs: number, T: number, R: number, rs: number, ng: number, P: number): void;
  crossSel(Z: number, zs: number, T: number, R: number, rs: number, nq: number, mo: number, out: number): void;
  argmax(nq: number, T: number, M: number, P: number, ps: number, s1: number, s2: number, st: number, mo: number, sel: number): void;
  fit(npairs: number, T: number, s1: number, s2: number, mean: number, st: number, mo: number, sel: number, fa: number, d: number, oa: number, ob: number, or2: number): void;
  errors(Z: number, zs: number, T: number, R: number, rs: number, ng: number, a: number, d: number, mo: number, ev: number): void;
}

let kernel: FitKernelExports | null | undefined;

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  return bytes;
}

/** The kernel instance of this thread, or null when the engine cannot run it. */
export function loadFitKernel(): FitKernelExports | null {
  if (kernel !== undefined) return kernel;
  try {
    const module = new WebAssembly.Module(decodeBase64(FIT_KERNEL_WASM_BASE64));
    kernel = new WebAssembly.Instance(module, {}).exports as unknown as FitKernelExports;
  } catch {
    kernel = null; // no WebAssembly, or no SIMD: the module fails to compile
  }
  return kernel;
}

/** Grows the kernel's memory to at least `bytes` bytes (growing detaches old views of it). */
export function ensureKernelMemory(k: FitKernelExports, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (have < bytes) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}
