/**
 * Per-chunk work of the online run, as plain tasks: runs on a worker thread
 * (online-worker.ts) or inline with one thread. Each task reads its chunk's state files and
 * the chunk's values of the checkpoint(s) it needs by positioned reads, writes the next state
 * generation and, when asked, a, b and mode into a pre-sized model file. Only small sums go back.
 */
import fs from 'node:fs';
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';
import type { StoredTensor } from '../formats/types.ts';
import type { Chunk } from '../pipeline/chunks.ts';
import type { TensorSlots } from '../pipeline/worker.ts';
import { TrajectoryReader } from '../trajectory/trajectory-reader.ts';
import { checkpointError, createChunkSums, fitTable, flatRows, initFused, solveChunk, sumsFinite, updateFused, type ChunkSums, type ModeFit, type SolveStats } from './kernel.ts';
import { readChunk, writeChunkStatic, writeChunkSums } from './state.ts';
import { initWasm, kernelValues, updateWasm } from './wasm/online-kernel.ts';

/** Shared by all tasks of a run. */
export interface TaskContext {
  tensors: ModelledTensor[];
  float64: boolean;
  stateDir: string;
  modeBytes: 1 | 2;
  /** fsync state files (false for offline runs whose state is thrown away). */
  durable?: boolean;
}

/** Where a, b and mode go (absolute byte positions per tensor, from planModelFile). */
export interface ModelOut {
  path: string;
  slots: TensorSlots[];
}

/** Warm-up: sums over checkpoints 0..F from scratch, modes read from the warm-up model. */
export interface InitTask {
  kind: 'init';
  ctx: TaskContext;
  chunk: Chunk;
  /** stored[t][k]: modelled tensor k of warm-up checkpoint t. */
  stored: StoredTensor[][];
  /** The warm-up model file and the byte position of each tensor's mode data in it. */
  modes: { path: string; positions: number[] };
  /** refShifted[t][m] = r_m(t) − c_m and raw refs[t][m], for t = 0..F. */
  refShifted: Float64Array[];
  refs: Float64Array[];
  fit: ModeFit;
  modelOut?: ModelOut;
}

/** One new checkpoint: generation `from` + its values → generation `to`. */
export interface UpdateTask {
  kind: 'update';
  ctx: TaskContext;
  chunk: Chunk;
  stored: StoredTensor[];
  refShifted: Float64Array;
  refs: Float64Array;
  fit: ModeFit;
  from: number;
  to: number;
  modelOut?: ModelOut;
}

/** a, b from committed generation `gen` into a model file, no checkpoint read. */
export interface MaterializeTask {
  kind: 'materialize';
  ctx: TaskContext;
  chunk: Chunk;
  fit: ModeFit;
  gen: number;
  modelOut: ModelOut;
}

/**
 * Several new checkpoints in one task, chunk-major: the state is read once, every checkpoint
 * is added in order with exactly the arithmetic of consecutive `update` tasks, and only the
 * last generation is written. For offline runs, where per-checkpoint durability buys nothing
 * and the state traffic (24 bytes per parameter and checkpoint) would dominate.
 */
export interface UpdateManyTask {
  kind: 'updateMany';
  ctx: TaskContext;
  chunk: Chunk;
  /** stored[j][k]: tensor k of the j-th new checkpoint. */
  stored: StoredTensor[][];
  refShifted: Float64Array[];
  refs: Float64Array[];
  fits: ModeFit[];
  from: number;
  to: number;
  /** Written with the coefficients after the last checkpoint. */
  modelOut?: ModelOut;
  /** Do not write generation `to` (the run ends here and its state is thrown away). */
  skipState?: boolean;
}

export type OnlineTask = InitTask | UpdateTask | MaterializeTask | UpdateManyTask;

export interface TaskResult {
  /** Per piece of the chunk at the checkpoint just added (init: at F; updateMany: the last one). */
  pieces: { tensor: number; errSq: number; normSq: number }[];
  /** updateMany: the pieces of every checkpoint added, in order. */
  steps?: { tensor: number; errSq: number; normSq: number }[][];
  modeCount: number[];
  r2Sum: number[];
  nonFinite?: { checkpoint: number; tensor: number; element: number; value: number };
  bytesRead: number;
}

function globalStart(ctx: TaskContext, chunk: Chunk): number {
  const p = chunk.pieces[0];
  return ctx.tensors[p.tensor].offset + p.start;
}

function readValues(ctx: TaskContext, chunk: Chunk, stored: StoredTensor[][], M: number): { values: Float32Array | Float64Array; bytesRead: number } {
  const n = chunk.count;
  // float32 values go straight into the WebAssembly kernel's memory (no copy before the kernel).
  const values = ctx.float64 ? new Float64Array(stored.length * n) : (kernelValues(stored.length * n, n, stored.length, M) ?? new Float32Array(stored.length * n));
  const reader = new TrajectoryReader({ tensors: ctx.tensors, stored, total: ctx.tensors.reduce((s, t) => s + t.count, 0) });
  try {
    const g0 = globalStart(ctx, chunk);
    reader.readRange(g0, g0 + n, values, 0, stored.length);
    return { values, bytesRead: reader.bytesRead };
  } finally {
    reader.close();
  }
}

/** First non-finite value, as (checkpoint position, tensor, element). */
function findNonFinite(values: Float32Array | Float64Array, chunk: Chunk): TaskResult['nonFinite'] {
  const n = chunk.count;
  for (let k = 0; k < values.length; k++) {
    const v = values[k];
    if (v - v === 0) continue;
    let i = k % n;
    for (const p of chunk.pieces) {
      if (i < p.count) return { checkpoint: Math.floor(k / n), tensor: p.tensor, element: p.start + i, value: v };
      i -= p.count;
    }
  }
  return undefined;
}

function writeAt(fd: number, bytes: Uint8Array, position: number): void {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

function writeModel(out: ModelOut, chunk: Chunk, a: Float64Array, b: Float64Array, sums: ChunkSums, modeBytes: 1 | 2): void {
  const fd = fs.openSync(out.path, 'r+');
  try {
    let i0 = 0;
    for (const p of chunk.pieces) {
      const slot = out.slots[p.tensor];
      const fa = Float32Array.from(a.subarray(i0, i0 + p.count));
      const fb = Float32Array.from(b.subarray(i0, i0 + p.count));
      const m = sums.mode.subarray(i0, i0 + p.count);
      writeAt(fd, new Uint8Array(fa.buffer), slot.a + p.start * 4);
      writeAt(fd, new Uint8Array(fb.buffer), slot.b + p.start * 4);
      writeAt(fd, new Uint8Array(m.buffer, m.byteOffset, p.count * modeBytes), slot.mode + p.start * modeBytes);
      i0 += p.count;
    }
  } finally {
    fs.closeSync(fd);
  }
}

function readModes(task: InitTask): Uint8Array | Uint16Array {
  const { chunk, ctx } = task;
  const mb = ctx.modeBytes;
  const bytes = new Uint8Array(chunk.count * mb);
  const fd = fs.openSync(task.modes.path, 'r');
  try {
    let i0 = 0;
    for (const p of chunk.pieces) {
      const len = p.count * mb;
      let done = 0;
      while (done < len) {
        const r = fs.readSync(fd, bytes, i0 * mb + done, len - done, task.modes.positions[p.tensor] + p.start * mb + done);
        if (r === 0) throw new Error(`warm-up model ${task.modes.path} ended early`);
        done += r;
      }
      i0 += p.count;
    }
  } finally {
    fs.closeSync(fd);
  }
  return mb === 1 ? bytes : new Uint16Array(bytes.buffer, 0, chunk.count);
}

/** Solves the chunk, measures the error at values row `row`, writes the model if asked. */
function finish(task: InitTask | UpdateTask | MaterializeTask | (UpdateManyTask & { fit: ModeFit }), sums: ChunkSums, values: Float32Array | Float64Array | undefined, row: number, refs: Float64Array | undefined, bytesRead: number): TaskResult {
  const { chunk, ctx, fit } = task;
  const n = chunk.count;
  const M = fit.R1.length;
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const stats: SolveStats = { modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
  solveChunk(sums, fit, a, b, stats);
  const pieces: TaskResult['pieces'] = [];
  if (values && refs) {
    let i0 = 0;
    for (const p of chunk.pieces) {
      const e = checkpointError(values, row * n, a, b, sums.mode, refs, i0, i0 + p.count);
      pieces.push({ tensor: p.tensor, ...e });
      i0 += p.count;
    }
  }
  if (task.modelOut) writeModel(task.modelOut, chunk, a, b, sums, ctx.modeBytes);
  return { pieces, modeCount: Array.from(stats.modeCount), r2Sum: Array.from(stats.r2Sum), bytesRead };
}

function runInit(task: InitTask): TaskResult {
  const { ctx, chunk } = task;
  const n = chunk.count;
  const { values, bytesRead } = readValues(ctx, chunk, task.stored, task.fit.R1.length);
  const sums = createChunkSums(values.subarray(0, n), readModes(task));
  const K = task.stored.length;
  const F = K - 1;
  const M = task.fit.R1.length;
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const stats: SolveStats = { modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
  const refShifted = flatRows(task.refShifted, M);
  const pieces: TaskResult['pieces'] = [];
  const err = new Float64Array(2);
  // One fused pass per piece (kernel.ts initFused): the sums of checkpoints 0..F stay in
  // registers; every bit is that of accumulating one checkpoint at a time, then solving.
  const ranges = pieceRanges(chunk);
  const wasm = values instanceof Float32Array && initWasm(sums, values, n, K, refShifted, task.fit, task.refs[F], a, b, ranges, stats, (r, errSq, normSq) => pieces.push({ tensor: chunk.pieces[r].tensor, errSq, normSq }));
  if (!wasm) {
    for (const [r, [i0, i1]] of ranges.entries()) {
      err[0] = 0;
      err[1] = 0;
      initFused(sums, values, 0, n, K, refShifted, task.fit, task.refs[F], a, b, i0, i1, err, stats);
      pieces.push({ tensor: chunk.pieces[r].tensor, errSq: err[0], normSq: err[1] });
    }
  }
  if (!sumsFinite(sums)) {
    const bad = findNonFinite(values, chunk);
    if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
  }
  writeChunkStatic(ctx.stateDir, chunk.index, sums, ctx.durable);
  writeChunkSums(ctx.stateDir, chunk.index, F, sums, ctx.durable);
  if (task.modelOut) writeModel(task.modelOut, chunk, a, b, sums, ctx.modeBytes);
  return { pieces, modeCount: Array.from(stats.modeCount), r2Sum: Array.from(stats.r2Sum), bytesRead };
}

function runUpdate(task: UpdateTask): TaskResult {
  const { ctx, chunk } = task;
  const sums = readChunk(ctx.stateDir, chunk.index, task.from, chunk.count, ctx.modeBytes);
  const { values, bytesRead } = readValues(ctx, chunk, [task.stored], task.fit.R1.length);
  const bad = findNonFinite(values, chunk);
  if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
  // The same fused kernel as updateMany with one checkpoint: `cmd watch` and `analyze
  // --online` share every floating-point operation.
  const r = updateChunk(chunk, sums, values, [task.refShifted], [task.refs], [task.fit]);
  writeChunkSums(ctx.stateDir, chunk.index, task.to, sums, ctx.durable);
  if (task.modelOut) writeModel(task.modelOut, chunk, r.a, r.b, sums, ctx.modeBytes);
  return { pieces: r.steps[0], modeCount: r.modeCount, r2Sum: r.r2Sum, bytesRead };
}

/** [i0, i1) of each piece of the chunk, in order. */
function pieceRanges(chunk: Chunk): [number, number][] {
  let i0 = 0;
  return chunk.pieces.map((p) => [i0, (i0 += p.count)]);
}

/** Adds K checkpoints (values rows 0..K−1) to the chunk's sums with the fused kernel. */
function updateChunk(chunk: Chunk, sums: ChunkSums, values: Float32Array | Float64Array, refShifted: Float64Array[], refs: Float64Array[], fits: ModeFit[]) {
  const n = chunk.count;
  const K = fits.length;
  const M = fits[0].R1.length;
  const table = fitTable(fits);
  const rs = flatRows(refShifted, M);
  const rr = flatRows(refs, M);
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const stats: SolveStats = { modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
  // errSq[j], normSq[j] of each piece: the fused kernel walks the parameters in order, so every
  // sum receives its terms in the same order as one `update` task per checkpoint would add them.
  const steps: TaskResult['pieces'][] = Array.from({ length: K }, () => []);
  const errSq = new Float64Array(K);
  const normSq = new Float64Array(K);
  const ranges = pieceRanges(chunk);
  const record = (r: number, errSq: Float64Array, normSq: Float64Array) => {
    for (let j = 0; j < K; j++) steps[j].push({ tensor: chunk.pieces[r].tensor, errSq: errSq[j], normSq: normSq[j] });
  };
  const wasm = values instanceof Float32Array && updateWasm(sums, values, n, rs, rr, table, a, b, ranges, stats, record);
  if (!wasm) {
    for (const [r, [i0, i1]] of ranges.entries()) {
      errSq.fill(0);
      normSq.fill(0);
      updateFused(sums, values, 0, n, rs, rr, table, a, b, i0, i1, errSq, normSq, stats);
      record(r, errSq, normSq);
    }
  }
  return { a, b, steps, modeCount: Array.from(stats.modeCount), r2Sum: Array.from(stats.r2Sum) };
}

function runUpdateMany(task: UpdateManyTask): TaskResult {
  const { ctx, chunk } = task;
  const n = chunk.count;
  const sums = readChunk(ctx.stateDir, chunk.index, task.from, n, ctx.modeBytes);
  const { values, bytesRead } = readValues(ctx, chunk, task.stored, task.fits[0].R1.length);
  const r = updateChunk(chunk, sums, values, task.refShifted, task.refs, task.fits);
  if (!sumsFinite(sums)) {
    const bad = findNonFinite(values, chunk);
    if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
  }
  if (!task.skipState) writeChunkSums(ctx.stateDir, chunk.index, task.to, sums, ctx.durable);
  if (task.modelOut) writeModel(task.modelOut, chunk, r.a, r.b, sums, ctx.modeBytes);
  return { pieces: r.steps[r.steps.length - 1], steps: r.steps, modeCount: r.modeCount, r2Sum: r.r2Sum, bytesRead };
}

function runMaterialize(task: MaterializeTask): TaskResult {
  const sums = readChunk(task.ctx.stateDir, task.chunk.index, task.gen, task.chunk.count, task.ctx.modeBytes);
  return finish(task, sums, undefined, 0, undefined, 0);
}

/** Runs one task (the worker's entry point, also called inline). */
export function runOnlineTask(task: OnlineTask): TaskResult {
  switch (task.kind) {
    case 'init':
      return runInit(task);
    case 'update':
      return runUpdate(task);
    case 'materialize':
      return runMaterialize(task);
    case 'updateMany':
      return runUpdateMany(task);
  }
}
