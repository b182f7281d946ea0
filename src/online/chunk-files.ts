/**
 * The per-chunk files of the online state (layout in state.ts): what the online worker threads
 * read and write. Apart from state.ts's JSON schemas so a worker does not load zod.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeFullySync } from '../io/atomic-file.ts';
import { InputError } from '../errors.ts';
import { writingToSync } from '../io/disk-errors.ts';
import type { ChunkSums } from './kernel.ts';

export function staticFile(dir: string, chunk: number): string {
  return path.join(dir, `static-${chunk}.bin`);
}

export function sumsFile(dir: string, chunk: number, t: number): string {
  return path.join(dir, `sums-${chunk}.t${t}.bin`);
}

/** Writes `parts` back to back into `file` (fsynced unless `durable` is false). */
export function writeAllSync(file: string, parts: ArrayBufferView[], durable = true): void {
  writingToSync(file, () => writeAllSyncUnchecked(file, parts, durable));
}

function writeAllSyncUnchecked(file: string, parts: ArrayBufferView[], durable: boolean): void {
  const fd = fs.openSync(file, 'w');
  try {
    let position = 0;
    for (const p of parts) {
      const bytes = new Uint8Array(p.buffer, p.byteOffset, p.byteLength);
      writeFullySync(fd, bytes, position);
      position += bytes.byteLength;
    }
    if (durable) fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/** Reads exactly `bytes` bytes of `file` from `position` (a state file shorter than that is corrupt). */
export function readAllSync(file: string, bytes: number, position = 0): ArrayBuffer {
  const buffer = new ArrayBuffer(bytes);
  const view = new Uint8Array(buffer);
  const fd = fs.openSync(file, 'r');
  try {
    let done = 0;
    while (done < bytes) {
      const n = fs.readSync(fd, view, done, bytes - done, position + done);
      if (n === 0) throw new InputError(file, `online state file is shorter than ${position + bytes} bytes (corrupt; start over with --force)`, 'bad-state');
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return buffer;
}

/** Writes a chunk's static part (shift and mode). */
export function writeChunkStatic(dir: string, chunk: number, sums: ChunkSums, durable = true): void {
  writeAllSync(staticFile(dir, chunk), [sums.shift, sums.mode], durable);
}

/** Writes a chunk's sums of generation `t`, fsynced. */
export function writeChunkSums(dir: string, chunk: number, t: number, sums: ChunkSums, durable = true): void {
  writeAllSync(sumsFile(dir, chunk, t), [sums.S1, sums.S2, sums.P], durable);
}

/** Reads a chunk of `n` parameters: its static part and its sums of generation `t`. */
export function readChunk(dir: string, chunk: number, t: number, n: number, modeBytes: 1 | 2): ChunkSums {
  const st = readAllSync(staticFile(dir, chunk), n * (8 + modeBytes));
  const sums = readAllSync(sumsFile(dir, chunk, t), n * 24);
  return {
    shift: new Float64Array(st, 0, n),
    mode: modeBytes === 1 ? new Uint8Array(st, 8 * n, n) : new Uint16Array(st, 8 * n, n),
    S1: new Float64Array(sums, 0, n),
    S2: new Float64Array(sums, 8 * n, n),
    P: new Float64Array(sums, 16 * n, n),
  };
}
