/** The run layer's one way to open an output folder (docs/architecture.md, "The run layer"). */
import path from 'node:path';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { StagedDir } from '../output/atomic.ts';

/** Absolute paths of everything a run reads: the folder and each checkpoint's files. */
export function inputPaths(set: CheckpointSet, extra: (string | undefined)[] = []): string[] {
  const all = [set.dir, ...set.checkpoints.flatMap((c) => [c.entry, ...c.contents.files]), ...extra.filter((x): x is string => Boolean(x))];
  return [...new Set(all.map((p) => path.resolve(p)))];
}

export function stageOutput(out: string, force: boolean, set: CheckpointSet, extra: (string | undefined)[] = []): Promise<StagedDir> {
  return StagedDir.create(out, force, inputPaths(set, extra));
}
