/** The paths a run reads, for the output guard (src/output/input-guard.ts): the folder and every checkpoint's entry and files. */
import type { CheckpointSet } from './checkpoint-set.ts';

export function inputPaths(set: CheckpointSet): string[] {
  return [set.dir, ...set.checkpoints.flatMap((c) => [c.entry, ...c.contents.files])];
}
