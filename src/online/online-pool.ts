/**
 * Where online chunk tasks run: the pipeline's worker pool (src/pipeline/pool.ts) running the
 * online worker module, or inline on the
 * calling thread when one thread is asked for (no worker start-up cost, same results: tasks
 * are independent and merged in chunk order either way).
 */
import { CancelledError } from '../errors.ts';
import { createPool, inlinePool, runAll, workerModule, type WorkerPool } from '../pipeline/pool.ts';
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
  // One thread: the same task loop over an inline pool (src/pipeline/pool.ts inlinePool), its
  // task code loaded on first use (with worker threads only the workers need it).
  let pool: WorkerPool | undefined = threads > 1 ? createPool(shared, threads, signal, workerModule(import.meta.url, 'online-worker')) : undefined;
  return {
    threads: Math.max(1, threads),
    async runAll(count, makeTask, onDone) {
      if (!pool) {
        const { runOnlineTask } = await import('./online-tasks.ts');
        pool = inlinePool({ run: (task: OnlineTask) => runOnlineTask(task, shared), close() {} }, signal);
      }
      const results = await runAll<TaskResult>(pool, count, makeTask, onDone);
      if (signal?.aborted) throw new CancelledError();
      return results;
    },
    destroy: async () => pool?.destroy(),
  };
}
