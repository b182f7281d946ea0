/**
 * Worker thread body. Two kinds of task: a block of rows of the K × K distance matrix
 * (shared memory in, shared memory out), and pass 2 on one chunk of parameters (positioned
 * reads of the chunk's trajectories, assignment and fit, a/b/mode written straight into the
 * pre-sized model file). Only small sums travel back.
 */
import fs from 'node:fs';
import { workerData } from 'node:worker_threads';
import { rowDistancesBlock } from '../core/correlation.ts';
import { createAccumulators, fitAssign, fitFixedModes, mergeAccumulators, type FitAccumulators, type ReferenceStats } from '../core/fit.ts';
import { TrajectoryReader, type TrajectoryPlan } from '../trajectory/trajectory-reader.ts';
import type { Chunk } from './chunks.ts';

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

export interface FitTask {
  kind: 'fit';
  chunk: Chunk;
  stats: ReferenceStats;
  /** Checkpoint window [from, to) the model is fitted on (all by default). */
  from: number;
  to: number;
  modelPath: string;
  modeBytes: 1 | 2;
  slots: TensorSlots[];
  /** Fixed modes per parameter (online variant); omitted for post-hoc assignment. */
  fixedModes?: { path: string; offset: number };
}

export interface NonFinite {
  checkpoint: number;
  tensor: number;
  element: number;
  value: number;
}

export interface FitResult {
  acc: FitAccumulators;
  /** Per piece of the chunk: Σ err² and Σ w² over the window (for per-tensor errors). */
  pieces: { tensor: number; errSq: number; normSq: number }[];
  nonFinite?: NonFinite;
  bytesRead: number;
}

const data = workerData as PoolData;
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

function writeAt(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

function firstNonFinite(values: Float32Array | Float64Array, n: number): { t: number; i: number } | undefined {
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (v - v !== 0) return { t: Math.floor(k / n), i: k % n };
  }
  return undefined;
}

function runFit(task: FitTask): FitResult {
  reader ??= new TrajectoryReader(data.plan);
  const before = reader.bytesRead;
  const { stats, from, to, chunk } = task;
  const T = to - from;
  const M = stats.M;
  const total = createAccumulators(M, T);
  const pieces: FitResult['pieces'] = [];
  const fd = modelFd(task.modelPath);
  const maxPiece = Math.max(...chunk.pieces.map((p) => p.count));
  const values = data.float64 ? new Float64Array(T * maxPiece) : new Float32Array(T * maxPiece);
  const a = new Float32Array(maxPiece);
  const b = new Float32Array(maxPiece);
  const mode = task.modeBytes === 1 ? new Uint8Array(maxPiece) : new Uint16Array(maxPiece);
  for (const piece of chunk.pieces) {
    const n = piece.count;
    const g0 = data.plan.tensors[piece.tensor].offset + piece.start;
    const v = values.subarray(0, T * n);
    reader.readRange(g0, g0 + n, v, from, to);
    const bad = firstNonFinite(v, n);
    if (bad) {
      return {
        acc: total,
        pieces,
        nonFinite: { checkpoint: from + bad.t, tensor: piece.tensor, element: piece.start + bad.i, value: v[bad.t * n + bad.i] },
        bytesRead: reader.bytesRead - before,
      };
    }
    const acc = createAccumulators(M, T);
    const out = { mode: mode.subarray(0, n), a: a.subarray(0, n), b: b.subarray(0, n) };
    if (task.fixedModes) {
      const fixed = new Uint8Array(n * task.modeBytes);
      fs.readSync(modelFd(task.fixedModes.path), fixed, 0, fixed.byteLength, task.fixedModes.offset + (g0 * task.modeBytes));
      const modes = task.modeBytes === 1 ? fixed : new Uint16Array(fixed.buffer, 0, n);
      fitFixedModes(v, n, stats, modes, 0, out, acc);
    } else {
      fitAssign(v, n, stats, out, acc);
    }
    const slot = task.slots[piece.tensor];
    writeAt(fd, new Uint8Array(a.buffer, 0, n * 4), slot.a + piece.start * 4);
    writeAt(fd, new Uint8Array(b.buffer, 0, n * 4), slot.b + piece.start * 4);
    writeAt(fd, new Uint8Array(mode.buffer, 0, n * task.modeBytes), slot.mode + piece.start * task.modeBytes);
    let e = 0;
    let w = 0;
    for (let t = 0; t < T; t++) {
      e += acc.errSq[t];
      w += acc.normSq[t];
    }
    pieces.push({ tensor: piece.tensor, errSq: e, normSq: w });
    mergeAccumulators(total, acc);
  }
  return { acc: total, pieces, bytesRead: reader.bytesRead - before };
}

export default function run(task: DistanceTask | FitTask): FitResult | null {
  if (task.kind === 'distances') {
    rowDistancesBlock(task.A, task.K, task.i0, task.i1, task.out);
    return null;
  }
  return runFit(task);
}
