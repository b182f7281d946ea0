/**
 * The worker pool. Workers rebuild a trajectory reader from plain data, do their own
 * positioned reads, and write results into shared memory or the output file, so only
 * small messages cross threads.
 */
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Piscina as PiscinaClass } from 'piscina';
import { workerEnv } from '../core/kernel-choice.ts';
import { CancelledError } from '../errors.ts';

/** piscina, loaded with the first pool: a one-thread shard task fits inline and never needs it (src/run/scale-out.ts). */
let piscina: typeof PiscinaClass | undefined;
function Piscina(): typeof PiscinaClass {
  return (piscina ??= (createRequire(import.meta.url)('piscina') as { Piscina: typeof PiscinaClass }).Piscina);
}

export function defaultWorkerCount(): number {
  return Math.max(1, os.availableParallelism());
}

/**
 * A worker module next to the calling module: `name` without extension. Run from source (tests,
 * tsx) the worker is a .ts file that Node needs tsx to load.
 */
export function workerModule(base: string, name: string): { filename: string; execArgv: string[] } {
  const fromSource = base.endsWith('.ts');
  return { filename: new URL(`./${name}.${fromSource ? 'ts' : 'js'}`, base).href, execArgv: fromSource ? ['--import', 'tsx'] : [] };
}

export interface WorkerPool {
  run<R>(task: unknown): Promise<R>;
  destroy(): Promise<void>;
  readonly threads: number;
}

/**
 * The pool of worker threads every pass uses: post-hoc's fit/distance workers by default, or
 * another worker module (the online tasks, src/online/online-worker.ts) given as `worker`.
 */
export function createPool(workerData: unknown, threads: number, signal?: AbortSignal, worker = workerModule(import.meta.url, 'worker')): WorkerPool {
  const { filename, execArgv } = worker;
  // env: the workers run the kernels chosen here (core/kernel-choice.ts).
  const pool = new (Piscina())({ filename, workerData, env: workerEnv(), minThreads: threads, maxThreads: threads, execArgv, idleTimeout: 60_000 });
  return {
    threads,
    async run<R>(task: unknown): Promise<R> {
      if (signal?.aborted) throw new CancelledError();
      try {
        return (await pool.run(task, { signal })) as R;
      } catch (e) {
        if (signal?.aborted) throw new CancelledError();
        throw e;
      }
    },
    destroy: () => pool.destroy(),
  };
}

/**
 * A pool without threads: each task runs on this thread after a turn of the event loop, so a
 * SIGINT between tasks still lands; once destroyed it refuses tasks, as a worker pool does.
 */
export function inlinePool(tasks: { run: (task: never) => unknown; close: () => void }, signal?: AbortSignal): WorkerPool {
  let closed = false;
  return {
    threads: 1,
    async run<R>(task: unknown): Promise<R> {
      await new Promise((resolve) => setImmediate(resolve));
      if (signal?.aborted) throw new CancelledError();
      if (closed) throw new Error('inline pool destroyed');
      return (await tasks.run(task as never)) as R;
    },
    async destroy() {
      if (!closed) tasks.close();
      closed = true;
    },
  };
}

/** Runs `count` tasks over the pool, at most `2 × threads` in flight, results in index order. */
export async function runAll<R>(pool: WorkerPool, count: number, makeTask: (i: number) => unknown, onDone?: (i: number, r: R) => void): Promise<R[]> {
  const results = new Array<R>(count);
  let next = 0;
  const lane = async () => {
    while (next < count) {
      const i = next++;
      results[i] = await pool.run<R>(makeTask(i));
      onDone?.(i, results[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, pool.threads * 2) }, lane));
  return results;
}
