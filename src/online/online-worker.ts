/** Worker thread body of the online pool: one chunk task at a time (see online-tasks.ts). */
import { workerData } from 'node:worker_threads';
import { runOnlineTask, type OnlineTask, type SharedData, type TaskResult } from './online-tasks.ts';

export default function run(task: OnlineTask): TaskResult {
  return runOnlineTask(task, workerData as SharedData | undefined);
}
