/** Worker thread body of the online pool: one chunk task at a time (see online-tasks.ts). */
import { runOnlineTask, type OnlineTask, type TaskResult } from './online-tasks.ts';

export default function run(task: OnlineTask): TaskResult {
  return runOnlineTask(task);
}
