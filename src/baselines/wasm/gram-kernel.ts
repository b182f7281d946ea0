/**
 * The WebAssembly Gram kernel (gram-kernel.wat, compiled at dev time into gram-kernel-bytes.ts)
 * for {@link accumulateGram}: the block's centred values and the Gram tile sums live in the
 * kernel's memory. Null where WebAssembly SIMD is unavailable (the JavaScript tiles then run).
 */
import { ensureMemory, instantiateKernel, type KernelMemory } from '../../core/wasm/instantiate.ts';
import { GRAM_KERNEL_WASM_BASE64 } from './gram-kernel-bytes.ts';

interface GramKernelExports {
  memory: KernelMemory;
  tiles(z: number, Tp: number, B: number, C: number): void;
}

let kernel: GramKernelExports | null | undefined;
let choice: 'auto' | 'js' = 'auto';

/** 'js' forces the JavaScript tiles on this thread (to compare both in tests); returns the previous choice. */
export function setGramKernel(kernelChoice: 'auto' | 'js'): 'auto' | 'js' {
  const previous = choice;
  choice = kernelChoice;
  return previous;
}

/**
 * Float64 buffers in the kernel's memory: z (Tp × B) and C (Tp × Tp), and `tiles()` adding z·zᵀ
 * (upper triangle) into C. The views stay valid until the next call of this function.
 */
export function gramBuffers(Tp: number, B: number): { z: Float64Array; C: Float64Array; tiles(): void } | null {
  if (choice === 'js') return null;
  if (kernel === undefined) kernel = instantiateKernel<GramKernelExports>(GRAM_KERNEL_WASM_BASE64);
  const k = kernel;
  if (!k) return null;
  const zBytes = Tp * B * 8;
  const buffer = ensureMemory(k.memory, zBytes + Tp * Tp * 8);
  return { z: new Float64Array(buffer, 0, Tp * B), C: new Float64Array(buffer, zBytes, Tp * Tp), tiles: () => k.tiles(0, Tp, B, zBytes) };
}
