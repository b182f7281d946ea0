/**
 * Loads the WebAssembly SIMD row-distance kernel (distance-kernel.wat, compiled at dev time into
 * distance-kernel-bytes.ts) synchronously, once per thread. Returns null where WebAssembly or its
 * SIMD extension is unavailable, so callers fall back to the JavaScript loops.
 */
import { DISTANCE_KERNEL_WASM_BASE64 } from './distance-kernel-bytes.ts';

// The project's TypeScript libs carry no WebAssembly typings: declare the little used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

/** The kernel's linear memory. */
export interface DistanceKernelMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

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

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  return bytes;
}

/** The kernel instance of this thread, or null when the engine cannot run it. */
export function loadDistanceKernel(): DistanceKernelExports | null {
  if (kernel !== undefined) return kernel;
  try {
    const module = new WebAssembly.Module(decodeBase64(DISTANCE_KERNEL_WASM_BASE64));
    kernel = new WebAssembly.Instance(module, {}).exports as unknown as DistanceKernelExports;
  } catch {
    kernel = null; // no WebAssembly, or no SIMD: the module fails to compile
  }
  return kernel;
}

/** Grows the kernel's memory to at least `bytes` bytes (growing detaches old views of it). */
export function ensureDistanceKernelMemory(k: DistanceKernelExports, bytes: number): ArrayBuffer {
  const have = k.memory.buffer.byteLength;
  if (have < bytes) k.memory.grow(Math.ceil((bytes - have) / 65536));
  return k.memory.buffer;
}
