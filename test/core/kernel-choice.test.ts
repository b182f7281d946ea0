/** The one kernel switch (src/core/kernel-choice.ts) holds on this thread and in the pools' worker threads. */
import { afterEach, describe, expect, it } from 'vitest';
import { activeDistanceKernel } from '../../src/core/correlation.ts';
import { activeFitKernel } from '../../src/core/fit.ts';
import { activeKernel, kernelChoice, parseKernelEnv, setKernel, workerEnv } from '../../src/core/kernel-choice.ts';
import { UsageError } from '../../src/errors.ts';
import { createPool } from '../../src/pipeline/pool.ts';

afterEach(() => {
  setKernel('auto');
});

async function workerKernels(): Promise<unknown> {
  const pool = createPool({}, 1);
  try {
    return await pool.run({ kind: 'kernels' });
  } finally {
    await pool.destroy();
  }
}

describe('setKernel', () => {
  it('switches every kernel of this thread', () => {
    expect(setKernel('js')).toBe('js');
    expect([kernelChoice(), activeKernel(), activeFitKernel(), activeDistanceKernel()]).toEqual(['js', 'js', 'js', 'js']);
    expect(setKernel('wasm')).toBe('wasm');
    expect([kernelChoice(), activeFitKernel(), activeDistanceKernel()]).toEqual(['auto', 'wasm', 'wasm']);
  });

  it('reaches the worker threads of a pool created after it', async () => {
    setKernel('js');
    expect(workerEnv().CMD_KERNEL).toBe('js');
    expect(await workerKernels()).toEqual({ fit: 'js', distances: 'js' });
    setKernel('auto');
    expect(await workerKernels()).toEqual({ fit: 'wasm', distances: 'wasm' });
  });

  it('reads CMD_KERNEL: auto, wasm or empty mean WebAssembly where possible, js forces JavaScript, anything else is a usage error', () => {
    expect([undefined, '', 'auto', 'wasm', 'js'].map(parseKernelEnv)).toEqual(['auto', 'auto', 'auto', 'auto', 'js']);
    expect(() => parseKernelEnv('JS ')).toThrow(UsageError);
    expect(() => parseKernelEnv('simd')).toThrow(/CMD_KERNEL must be auto, wasm or js, got 'simd'/);
  });
});
