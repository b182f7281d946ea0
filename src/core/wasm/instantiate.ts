/**
 * What every WebAssembly kernel of the project shares: its module ships as base64 bytes
 * (compiled at dev time by scripts/build-wasm.mjs, so users need no compiler), is instantiated
 * synchronously once per thread, and grows its linear memory on demand.
 */

// The project's TypeScript libs carry no WebAssembly typings: declare the little used here.
declare const WebAssembly: {
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: unknown };
};

/** A kernel's linear memory. */
export interface KernelMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}

function decodeBase64(s: string): Uint8Array {
  const bin = atob(s);
  const bytes = new Uint8Array(bin.length);
  for (let k = 0; k < bin.length; k++) bytes[k] = bin.charCodeAt(k);
  return bytes;
}

/**
 * The exports of the module in `base64`, or null where the engine cannot run it (no
 * WebAssembly, or no SIMD: the module then fails to compile) — callers fall back to JS.
 */
export function instantiateKernel<T>(base64: string): T | null {
  try {
    return new WebAssembly.Instance(new WebAssembly.Module(decodeBase64(base64)), {}).exports as T;
  } catch {
    return null;
  }
}

/** Grows `memory` to at least `bytes` bytes and returns its buffer (growing detaches old views). */
export function ensureMemory(memory: KernelMemory, bytes: number): ArrayBuffer {
  const have = memory.buffer.byteLength;
  if (have < bytes) memory.grow(Math.ceil((bytes - have) / 65536));
  return memory.buffer;
}

/** `bytes` rounded up to the 16-byte width of a v128 lane group. */
export const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/**
 * Where a kernel call's buffers go in the kernel's linear memory: one after another, each on a
 * 16-byte boundary (v128 loads), from byte 0. Every binding lays its memory out with it, so the
 * offsets it passes to the kernel and the size it grows the memory to come from one place.
 */
export class MemoryLayout {
  private top = 0;

  /** Reserves `bytes` and returns the byte offset where they start. */
  take(bytes: number): number {
    const at = this.top;
    this.top += align16(bytes);
    return at;
  }

  /** Reserves `count` buffers of `bytes` each, in order; returns their offsets. */
  takeEach(count: number, bytes: number): number[] {
    return Array.from({ length: count }, () => this.take(bytes));
  }

  /** Bytes the memory needs for everything reserved so far. */
  get bytes(): number {
    return this.top;
  }

  /** Grows `memory` to hold the layout and returns its buffer (growing detaches old views). */
  ensure(memory: KernelMemory): ArrayBuffer {
    return ensureMemory(memory, this.top);
  }
}
