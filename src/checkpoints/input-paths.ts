/** The paths a run reads, for the output guard (src/output/input-guard.ts): the folder and every checkpoint's entry and files. */
import type { CheckpointSet } from './checkpoint-set.ts';
import { isRemote } from '../remote/url.ts';

/** Local paths only: a remote checkpoint (a URL, `hf://`) cannot be overwritten by an output. */
export function inputPaths(set: CheckpointSet): string[] {
  return [set.dir, ...set.checkpoints.flatMap((c) => [c.entry, ...c.contents.files])].filter((p) => !isRemote(p) && !p.startsWith('hf://'));
}
