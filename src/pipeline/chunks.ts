/**
 * Splitting the parameter space into chunks for pass 2. Chunk boundaries depend only on
 * the inputs and the chunk size — never on the number of workers — so per-chunk results
 * summed in chunk order give byte-identical outputs for any worker count.
 */
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';

/** A run of elements inside one tensor. */
export interface ChunkPiece {
  tensor: number;
  /** Element offset inside the tensor. */
  start: number;
  count: number;
}

export interface Chunk {
  index: number;
  pieces: ChunkPiece[];
  /** Total elements in the chunk. */
  count: number;
}

/** Elements per chunk so that one chunk's T × n float32 values take about `budgetBytes`. */
export function chunkElements(checkpoints: number, budgetBytes = 32 << 20): number {
  return Math.max(4096, Math.floor(budgetBytes / (4 * checkpoints)));
}

export function planChunks(tensors: readonly ModelledTensor[], chunkSize: number): Chunk[] {
  const chunks: Chunk[] = [];
  let current: Chunk = { index: 0, pieces: [], count: 0 };
  for (let k = 0; k < tensors.length; k++) {
    let start = 0;
    while (start < tensors[k].count) {
      const take = Math.min(tensors[k].count - start, chunkSize - current.count);
      current.pieces.push({ tensor: k, start, count: take });
      current.count += take;
      start += take;
      if (current.count === chunkSize) {
        chunks.push(current);
        current = { index: chunks.length, pieces: [], count: 0 };
      }
    }
  }
  if (current.count > 0) chunks.push(current);
  return chunks;
}
