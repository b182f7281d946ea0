/** The run layer's one way to open an output folder (docs/architecture.md, "The run layer"). */
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { inputPaths } from '../checkpoints/input-paths.ts';
import { StagedDir } from '../output/atomic.ts';
import { refuseInputOverlap } from '../output/input-guard.ts';

/** Everything a run reads: the checkpoint folder, each checkpoint's files and the side inputs given. */
export function runInputs(set: CheckpointSet, extra: (string | undefined)[] = []): string[] {
  return [...new Set([...inputPaths(set), ...extra.filter((x): x is string => Boolean(x))])];
}

/**
 * Stages `out` (refused when it overlaps an input, locked for the run) and refuses an `html`
 * report path that overlaps an input before anything is written. A model file given with
 * `--model` is not among the inputs: it is copied into the staging folder before the swap, so
 * `--model <out>/sweep/…` into the same `-o` is allowed.
 */
export async function stageOutput(out: string, force: boolean, set: CheckpointSet, extra: (string | undefined)[] = [], html?: string): Promise<StagedDir> {
  const inputs = runInputs(set, extra);
  if (html) await refuseInputOverlap(html, inputs, '--html');
  return StagedDir.create(out, force, inputs);
}
