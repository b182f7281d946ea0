/**
 * The online run's state on disk, so memory stays bounded and a crash never leaves a
 * half-updated model:
 *
 *   <state>/meta.json               written once after warm-up: what never changes
 *   <state>/static-<chunk>.bin      per chunk: c_i = w_i(0) (float64) then the mode (u8/u16)
 *   <state>/sums-<chunk>.t<t>.bin   per chunk and generation t: S1, S2, P (float64 each)
 *   <state>/commit.json             the commit marker: last committed checkpoint t, its per-mode
 *                                   sums, reference values and error sums
 *
 * An update at checkpoint t reads generation t−1 and writes generation t beside it (fsynced),
 * then replaces commit.json atomically (temp file + rename), then deletes generation t−1. A crash
 * anywhere leaves commit.json naming a complete generation; stray files are removed on resume.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CarriedTensor, ModelledTensor } from '../checkpoints/parameter-space.ts';
import { writeFullySync } from '../io/atomic-file.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import { writingToSync } from '../io/disk-errors.ts';
import type { ChunkSums, ModeSums } from './kernel.ts';

export const STATE_VERSION = 1;
export const META_FILE = 'meta.json';
export const COMMIT_FILE = 'commit.json';

/** A checkpoint as the model and report name it. */
export interface CheckpointSummary {
  index: number;
  step: number;
  name: string;
  bytes: number;
}

/** What is fixed at the end of warm-up. */
export interface OnlineMeta {
  version: typeof STATE_VERSION;
  warmup: number;
  N: number;
  M: number;
  K: number;
  chunkSize: number;
  modeBytes: 1 | 2;
  /** Values are read as float64 (some modelled tensor is F64). */
  float64: boolean;
  source: { dir: string; format: string };
  tensors: ModelledTensor[];
  carried: CarriedTensor[];
  /** Global indices of the references (mode order) and of the samples (drawing order). */
  refIndex: number[];
  sampleIndex: number[];
  /** The warm-up model's `__metadata__`; cmd.checkpoints and cmd.params are rewritten per model. */
  metadata: Record<string, string>;
  modesRequested: number;
  samplesRequested: number;
  sampling: 'U_B' | 'U' | 'file';
  seed: number | null;
  modes: { sampledCount: number; reference: { tensor: string; element: number; index: number } }[];
}

/** The commit marker: everything small about the state at checkpoint `t`. */
export interface OnlineCommit {
  version: typeof STATE_VERSION;
  /** Index of the last committed checkpoint; the sums files of generation t are complete. */
  t: number;
  checkpoints: CheckpointSummary[];
  modeSums: ModeSums;
  /** refs[t][m] = r_m(t), for every committed checkpoint (M numbers each: the model file's `refs`). */
  refs: number[][];
  /** Per committed checkpoint: Σ err² and Σ w² of the online model at that checkpoint (0 before warm-up ends). */
  errors: { errSq: number; normSq: number }[];
  /** Per modelled tensor: Σ err² and Σ w² over checkpoints F..t of the online model at each. */
  tensorErrors: { errSq: number; normSq: number }[];
  /** Per mode at t: parameter count and Σ R². */
  modeCount: number[];
  r2Sum: number[];
  bytesRead: number;
}

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
      if (n === 0) throw new Error(`online state file ${file} is shorter than ${position + bytes} bytes`);
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

async function readJson<T>(file: string): Promise<T | undefined> {
  try {
    return JSON.parse(await fsp.readFile(file, 'utf8')) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export async function writeMeta(dir: string, meta: OnlineMeta): Promise<void> {
  await writeFileAtomic(path.join(dir, META_FILE), `${JSON.stringify(meta)}\n`);
}

/** Atomically replaces the commit marker: from here on generation `commit.t` is the state. */
export async function writeCommit(dir: string, commit: OnlineCommit): Promise<void> {
  await writeFileAtomic(path.join(dir, COMMIT_FILE), `${JSON.stringify(commit)}\n`);
}

/** The committed state, or undefined when there is none (no warm-up committed yet). */
export async function readState(dir: string): Promise<{ meta: OnlineMeta; commit: OnlineCommit } | undefined> {
  const meta = await readJson<OnlineMeta>(path.join(dir, META_FILE));
  const commit = await readJson<OnlineCommit>(path.join(dir, COMMIT_FILE));
  if (!meta || !commit) return undefined;
  if (meta.version !== STATE_VERSION || commit.version !== STATE_VERSION) throw new Error(`online state in ${dir} has version ${meta.version}/${commit.version}, expected ${STATE_VERSION}`);
  return { meta, commit };
}

/** Deletes every sums file not of generation `keep`, and leftover temp files (after a crash or a finished update). */
export async function removeStaleFiles(dir: string, keep: number): Promise<void> {
  const suffix = `.t${keep}.bin`;
  for (const name of await fsp.readdir(dir)) {
    const stale = (name.startsWith('sums-') && !name.endsWith(suffix)) || name.endsWith('.tmp');
    if (stale) await fsp.rm(path.join(dir, name), { force: true });
  }
}
