/**
 * Where online chunk tasks run: the pipeline's worker pool (src/pipeline/pool.ts) running the
 * online worker module, or inline on the
 * calling thread when one thread is asked for (no worker start-up cost, same results: tasks
 * are independent and merged in chunk order either way).
 */
import { CancelledError } from '../errors.ts';
import { createPool, runAll, workerModule } from '../pipeline/pool.ts';
import type { OnlineTask, SharedData, TaskResult } from './online-tasks.ts';

export interface TaskRunner {
  readonly threads: number;
  /** Runs every task, at most 2 × threads in flight; results in task order. */
  runAll(count: number, makeTask: (i: number) => OnlineTask, onDone?: (i: number, r: TaskResult) => void): Promise<TaskResult[]>;
  destroy(): Promise<void>;
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
  // The pipeline's pool and task loop, with the online worker module.
  const pool = createPool(shared, threads, signal, workerModule(import.meta.url, 'online-worker'));
  return {
    threads,
    async runAll(count, makeTask, onDone) {
      const results = await runAll<TaskResult>(pool, count, makeTask, onDone);
      check();
      return results;
    },
    destroy: () => pool.destroy(),
  };
}
