/**
 * Scratch space of a run that writes an output folder goes beside that folder (with its
 * staging folder), not into the system temp folder — after the output has been checked not to
 * lie inside the input folder, since checkpoints are read (and npz members inflated) before
 * the full guard of StagedDir.create can run. docs/formats.md, "Scratch space".
 */
import { placeScratchBeside } from '../formats/scratch.ts';
import { refuseInputOverlap } from './input-guard.ts';

export async function placeScratchForRun(out: string, inputDir: string | undefined): Promise<void> {
  placeScratchBeside(await refuseInputOverlap(out, inputDir === undefined ? [] : [inputDir]));
}
