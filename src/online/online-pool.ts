/**
 * Where online chunk tasks run: a piscina pool of online-worker threads, or inline on the
 * calling thread when one thread is asked for (no worker start-up cost, same results: tasks
 * are independent and merged in chunk order either way).
 */
import { Piscina } from 'piscina';
import { workerEnv } from '../core/kernel-choice.ts';
import { CancelledError } from '../errors.ts';
import type { OnlineTask, SharedData, TaskResult } from './online-tasks.ts';

export interface TaskRunner {
  readonly threads: number;
  /** Runs every task, at most 2 × threads in flight; results in task order. */
  runAll(count: number, makeTask: (i: number) => OnlineTask, onDone?: (i: number, r: TaskResult) => void): Promise<TaskResult[]>;
  destroy(): Promise<void>;
}

function workerFile(): { filename: string; execArgv: string[] } {
  const fromSource = import.meta.url.endsWith('.ts');
  const filename = new URL(fromSource ? './online-worker.ts' : './online-worker.js', import.meta.url).href;
  return { filename, execArgv: fromSource ? ['--import', 'tsx'] : [] };
}

/**
 * `shared` goes to every worker once (piscina's workerData) instead of with every task: the
 * checkpoints' tensor locations, which would otherwise be cloned for each chunk.
 */
export function createTaskRunner(threads: number, signal?: AbortSignal, shared?: SharedData): TaskRunner {
  const check = () => {
    if (signal?.aborted) throw new CancelledError();
  };
  if (threads <= 1) {
    return {
      threads: 1,
      async runAll(count, makeTask, onDone) {
        // Loaded here: with worker threads only the workers need the task code.
        const { runOnlineTask } = await import('./online-tasks.ts');
        const results: TaskResult[] = [];
        for (let i = 0; i < count; i++) {
          check();
          results.push(runOnlineTask(makeTask(i), shared));
          onDone?.(i, results[i]);
          // Let a signal handler run between chunks.
          await new Promise<void>((resolve) => setImmediate(resolve));
        }
        check();
        return results;
      },
      async destroy() {},
    };
  }
  const { filename, execArgv } = workerFile();
  // env: the workers run the kernels chosen here (core/kernel-choice.ts).
  const pool = new Piscina({ filename, workerData: shared, env: workerEnv(), minThreads: threads, maxThreads: threads, execArgv, idleTimeout: 60_000 });
  return {
    threads,
    async runAll(count, makeTask, onDone) {
      const results = new Array<TaskResult>(count);
      let next = 0;
      const lane = async () => {
        while (next < count) {
          const i = next++;
          check();
          try {
            results[i] = (await pool.run(makeTask(i), { signal })) as TaskResult;
          } catch (e) {
            check();
            throw e;
          }
          onDone?.(i, results[i]);
        }
      };
      await Promise.all(Array.from({ length: Math.min(count, threads * 2) }, lane));
      check();
      return results;
    },
    destroy: () => pool.destroy(),
  };
}
