/**
 * Worker thread body. Two kinds of task: a block of rows of the K × K distance matrix
 * (shared memory in, shared memory out), and pass 2 on one chunk of parameters (positioned
 * reads of the chunk's trajectories, assignment and fit, a/b/mode written straight into the
 * pre-sized model file). Only small sums travel back.
 */
import fs from 'node:fs';
import { workerData } from 'node:worker_threads';
import { activeDistanceKernel, rowDistancesBlock } from '../core/correlation.ts';
import { activeFitKernel, createAccumulators, fitAssign, fitAssignFromSource, mergeAccumulators, type FitAccumulators, type ReferenceStats } from '../core/fit.ts';
import { TrajectoryReader, type TrajectoryPlan } from '../trajectory/trajectory-reader.ts';
import { createBaselineAccumulators, type BaselineAccumulators } from '../baselines/accumulators.ts';
import { accumulateGram } from '../baselines/gram.ts';
import { accumulateSmoothing } from '../baselines/smoothing.ts';
import type { Chunk } from './chunks.ts';
import { writeParameterSlots } from './slot-writer.ts';
import { InputError } from '../errors.ts';
import { fileSha256Sync } from '../io/file-sha256.ts';
import { remoteClient } from '../remote/http-range.ts';
import { blockRanges, planIsRemote, prefetch, remoteBytes, type ByteRange } from '../trajectory/remote-bytes.ts';

export interface PoolData {
  plan: TrajectoryPlan;
  /** Read values as float64 when any modelled tensor is F64, else float32 (exact for ≤ 32-bit floats). */
  float64: boolean;
}

export interface DistanceTask {
  kind: 'distances';
  A: Float64Array;
  K: number;
  i0: number;
  i1: number;
  out: Float64Array;
}

/** Where a tensor's outputs go in the model file (absolute byte positions). */
export interface TensorSlots {
  a: number;
  b: number;
  mode: number;
}

/** One CMD model fitted in pass 2 (several share a pass when sweeping M). */
export interface ModelTarget {
  stats: ReferenceStats;
  modelPath: string;
  modeBytes: 1 | 2;
  slots: TensorSlots[];
}

export interface FitTask {
  kind: 'fit';
  chunk: Chunk;
  /** Checkpoint window [from, to) the models are fitted on. */
  from: number;
  to: number;
  models: ModelTarget[];
  /** Baselines accumulated in the same pass (`--baselines`); the Gram matrix only for PCA/DMD. */
  baselines?: { lastK: number; beta: number; gram: boolean };
  /** Leave parameters with NaN/±Inf out of the model (sentinel mode) instead of failing. */
  skipNonFinite?: boolean;
}

export interface ModelFitResult {
  acc: FitAccumulators;
  /** Per piece of the chunk: Σ err² and Σ w² over the window (for per-tensor errors). */
  pieces: { tensor: number; errSq: number; normSq: number }[];
}

export interface NonFinite {
  checkpoint: number;
  tensor: number;
  element: number;
  value: number;
}

export interface FitResult {
  models: ModelFitResult[];
  baselines?: BaselineAccumulators;
  /** Parameters left out by --skip-nonfinite in this chunk. */
  skipped: number;
  nonFinite?: NonFinite;
  bytesRead: number;
  /** Remote checkpoints: bytes this chunk received over HTTP. */
  bytesFetched?: number;
  /** A remote read that failed for good (an InputError does not survive the thread boundary as a class). */
  remoteError?: { file: string; message: string; rule: string };
}

let data = workerData as PoolData;
let reader: TrajectoryReader | undefined;
const modelFds = new Map<string, number>();

function modelFd(p: string): number {
  let fd = modelFds.get(p);
  if (fd === undefined) {
    fd = fs.openSync(p, 'r+');
    modelFds.set(p, fd);
  }
  return fd;
}


function firstNonFinite(values: Float32Array | Float64Array, n: number): { t: number; i: number } | undefined {
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (v - v !== 0) return { t: Math.floor(k / n), i: k % n };
  }
  return undefined;
}

/** Per-thread buffers, kept across tasks: allocating (and zeroing) 32 MB per chunk costs a third of a read. */
let scratch: { values: Float32Array | Float64Array; a: Float32Array; b: Float32Array; mode8: Uint8Array; mode16: Uint16Array } | undefined;
function scratchFor(values: number, params: number) {
  if (!scratch || scratch.values.length < values || scratch.a.length < params) {
    const v = Math.max(values, scratch?.values.length ?? 0);
    const p = Math.max(params, scratch?.a.length ?? 0);
    scratch = { values: data.float64 ? new Float64Array(v) : new Float32Array(v), a: new Float32Array(p), b: new Float32Array(p), mode8: new Uint8Array(p), mode16: new Uint16Array(p) };
  }
  return scratch;
}

function runFit(task: FitTask): FitResult {
  reader ??= new TrajectoryReader(data.plan);
  const before = reader.bytesRead;
  const { from, to, chunk } = task;
  const T = to - from;
  const models: ModelFitResult[] = task.models.map((m) => ({ acc: createAccumulators(m.stats.M, T), pieces: [] }));
  const maxPiece = Math.max(...chunk.pieces.map((p) => p.count));
  const { values, a, b, mode8, mode16 } = scratchFor(T * maxPiece, maxPiece);
  const baselines = task.baselines ? createBaselineAccumulators(T, task.baselines) : undefined;
  let skipped = 0;
  for (const piece of chunk.pieces) {
    const n = piece.count;
    const g0 = data.plan.tensors[piece.tensor].offset + piece.start;
    // One float32 model and nothing else wanting the whole chunk: the kernel reads its panels
    // straight from the checkpoints (same values, same sums). Non-finite sums send the piece
    // through the general path below, which reads it again and finds the culprit.
    if (task.models.length === 1 && !baselines && values instanceof Float32Array) {
      const target = task.models[0];
      const acc = createAccumulators(target.stats.M, T);
      const mode = target.modeBytes === 1 ? mode8.subarray(0, n) : mode16.subarray(0, n);
      const source = (p0: number, pw: number, into: Float32Array, at: number, stride: number) => reader!.readRange(g0 + p0, g0 + p0 + pw, into, from, to, at, stride);
      if (fitAssignFromSource(source, n, target.stats, { mode, a: a.subarray(0, n), b: b.subarray(0, n) }, acc) && acc.normSq.every(Number.isFinite)) {
        writeParameterSlots(modelFd(target.modelPath), target.modelPath, target.slots[piece.tensor], piece.start, n, a, b, mode, target.modeBytes);
        models[0].pieces.push({ tensor: piece.tensor, errSq: sumOf(acc.errSq), normSq: sumOf(acc.normSq) });
        mergeAccumulators(models[0].acc, acc);
        continue;
      }
    }
    const v = values.subarray(0, T * n);
    reader.readRange(g0, g0 + n, v, from, to);
    let nonFinite: NonFinite | undefined;
    // With --skip-nonfinite, parameters with a NaN/±Inf anywhere are zeroed, fitted like the
    // rest (a constant 0: error 0, mode 0), then marked with the sentinel mode and a = b = 0.
    let skip: Uint8Array | undefined;
    for (let attempt = 0; attempt < 2; attempt++) {
      let restart = false;
      for (const [k, target] of task.models.entries()) {
        const acc = createAccumulators(target.stats.M, T);
        const mode = target.modeBytes === 1 ? mode8.subarray(0, n) : mode16.subarray(0, n);
        fitAssign(v, n, target.stats, { mode, a: a.subarray(0, n), b: b.subarray(0, n) }, acc);
        // Σ w(t)² is non-finite exactly when some value is NaN or ±Inf (or overflows): only then
        // look for the culprit, instead of scanning every value up front.
        if (k === 0 && !skip && !acc.normSq.every(Number.isFinite)) {
          const bad = firstNonFinite(v, n);
          if (bad && !task.skipNonFinite) {
            nonFinite = { checkpoint: from + bad.t, tensor: piece.tensor, element: piece.start + bad.i, value: v[bad.t * n + bad.i] };
            break;
          }
          if (bad) {
            skip = zeroNonFinite(v, n, T);
            restart = true;
            break;
          }
        }
        if (skip) {
          const sentinel = target.modeBytes === 1 ? 0xff : 0xffff;
          for (let i = 0; i < n; i++) {
            if (!skip[i]) continue;
            acc.modeCount[mode[i]] -= 1;
            mode[i] = sentinel;
            a[i] = 0;
            b[i] = 0;
            if (k === 0) skipped++;
          }
        }
        const fd = modelFd(target.modelPath);
        const slot = target.slots[piece.tensor];
        writeParameterSlots(fd, target.modelPath, slot, piece.start, n, a, b, mode, target.modeBytes);
        models[k].pieces.push({ tensor: piece.tensor, errSq: sumOf(acc.errSq), normSq: sumOf(acc.normSq) });
        mergeAccumulators(models[k].acc, acc);
      }
      if (!restart) break;
    }
    if (nonFinite) return { models, nonFinite, skipped, bytesRead: reader.bytesRead - before };
    if (baselines) {
      if (task.baselines!.gram) accumulateGram(v, n, T, baselines.gram);
      accumulateSmoothing(v, n, T, baselines.smoothing);
    }
  }
  return { models, baselines, skipped, bytesRead: reader.bytesRead - before };
}

/** Σ over checkpoints in order (a piece's error and norm sums). */
function sumOf(x: Float64Array): number {
  let s = 0;
  for (let t = 0; t < x.length; t++) s += x[t];
  return s;
}

/** Marks the parameters (columns) with a non-finite value at any checkpoint and zeroes them. */
function zeroNonFinite(values: Float32Array | Float64Array, n: number, T: number): Uint8Array {
  const bad = new Uint8Array(n);
  for (let t = 0; t < T; t++) {
    const o = t * n;
    for (let i = 0; i < n; i++) if (!Number.isFinite(values[o + i])) bad[i] = 1;
  }
  for (let t = 0; t < T; t++) {
    const o = t * n;
    for (let i = 0; i < n; i++) if (bad[i]) values[o + i] = 0;
  }
  return bad;
}

/** sha256 of a written file (the model), so the main thread can build the report meanwhile. */
export interface HashTask {
  kind: 'sha256';
  file: string;
}

/** Asks a worker which kernels it runs (the switch in core/kernel-choice.ts reaches it through its environment). */
export interface KernelsTask {
  kind: 'kernels';
}

/** Pass-2 ranges of one checkpoint merge across gaps up to this many bytes (tensors stored apart by the chunk order). */
const CHUNK_GAP_BYTES = 1 << 16;

/**
 * A chunk of remote checkpoints: its spans are fetched as large ranges into this thread's cache,
 * read as usual, then dropped (docs/scale-out.md, "Checkpoints over HTTP and the Hugging Face Hub").
 */
async function runRemoteFit(task: FitTask): Promise<FitResult> {
  const client = remoteClient();
  if (!expected) {
    client.expect(data.plan.remote ?? []);
    expected = true;
  }
  const before = client.fetchedBytes;
  try {
    const ranges: ByteRange[] = [];
    for (const piece of task.chunk.pieces) {
      const g0 = data.plan.tensors[piece.tensor].offset + piece.start;
      blockRanges(data.plan, g0, g0 + piece.count, task.from, task.to, ranges);
    }
    await prefetch(ranges, CHUNK_GAP_BYTES, client);
    return { ...runFit(task), bytesFetched: client.fetchedBytes - before };
  } catch (e) {
    if (e instanceof InputError) return { models: [], skipped: 0, bytesRead: 0, bytesFetched: client.fetchedBytes - before, remoteError: { file: e.file, message: e.message.slice(e.file.length + 2), rule: e.rule } };
    throw e;
  } finally {
    remoteBytes.clear();
  }
}

let remote: boolean | undefined;
let expected = false;

export default function run(task: DistanceTask | FitTask | KernelsTask | HashTask): FitResult | Promise<FitResult> | { fit: string; distances: string } | string | null {
  if (task.kind === 'kernels') return { fit: activeFitKernel(), distances: activeDistanceKernel() };
  if (task.kind === 'sha256') return fileSha256Sync(task.file);
  if (task.kind === 'distances') {
    rowDistancesBlock(task.A, task.K, task.i0, task.i1, task.out);
    return null;
  }
  remote ??= planIsRemote(data.plan);
  return remote ? runRemoteFit(task) : runFit(task);
}

/**
 * This module's tasks on the calling thread (src/pipeline/pool.ts inlinePool): a one-thread
 * shard task then starts no worker, which would load the modules and compile the kernels a
 * second time (docs/scale-out.md, "Benchmark"). `close` releases the files the tasks opened.
 */
export function inlineTasks(d: PoolData): { run: typeof run; close: () => void } {
  data = d;
  return {
    run,
    close() {
      reader?.close();
      reader = undefined;
      for (const fd of modelFds.values()) fs.closeSync(fd);
      modelFds.clear();
    },
  };
}
