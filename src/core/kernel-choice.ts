/**
 * The one switch between the WebAssembly SIMD kernels and their JavaScript equivalents, for
 * every kernel of the project: row distances, the pass-2 fit, the baselines and the online
 * chunks (docs/architecture.md, "WebAssembly kernels"). It holds on this thread and reaches the
 * worker threads the pools start: they inherit it through their environment (`workerEnv`),
 * where `CMD_KERNEL` also lets a user or a benchmark choose without code.
 */
import { UsageError } from '../errors.ts';
import { loadFitKernel } from './wasm/fit-kernel.ts';

/** 'auto': WebAssembly SIMD where the engine runs it, else JavaScript; 'js': JavaScript always. */
export type KernelChoice = 'auto' | 'js';

/** The environment variable that carries the choice into worker threads (and from a shell). */
export const KERNEL_ENV = 'CMD_KERNEL';

/** The choice a CMD_KERNEL value asks for; anything but auto, wasm, js or empty is a usage error. */
export function parseKernelEnv(value: string | undefined): KernelChoice {
  if (value === undefined || value === '' || value === 'auto' || value === 'wasm') return 'auto';
  if (value === 'js') return 'js';
  throw new UsageError(`${KERNEL_ENV} must be auto, wasm or js, got '${value}'`);
}

let choice: KernelChoice | undefined;

/** The choice in force on this thread (read from CMD_KERNEL until setKernel is called). */
export function kernelChoice(): KernelChoice {
  choice ??= parseKernelEnv(process.env[KERNEL_ENV]);
  return choice;
}

/**
 * Chooses the kernels for this thread and the worker pools created after the call ('wasm' is
 * 'auto'). Both kinds give bit-identical modes, a, b and R²; sums over parameters agree to
 * rounding. Returns the kind now in use, so `setKernel(setKernel('js'))` restores.
 */
export function setKernel(kernel: KernelChoice | 'wasm'): 'wasm' | 'js' {
  choice = kernel === 'wasm' ? 'auto' : kernel;
  return activeKernel();
}

/** The kind of kernel that runs on this thread: 'js' when chosen or when the engine lacks WebAssembly SIMD. */
export function activeKernel(): 'wasm' | 'js' {
  return kernelChoice() === 'auto' && loadFitKernel() ? 'wasm' : 'js';
}

/** The environment for a worker pool's threads: this process's, with the kernel choice in force. */
export function workerEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
  env[KERNEL_ENV] = kernelChoice();
  return env;
}
