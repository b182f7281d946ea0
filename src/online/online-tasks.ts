/**
 * Per-chunk work of the online run, as plain tasks: runs on a worker thread
 * (online-worker.ts) or inline with one thread. A task reads the chunk's values of the
 * checkpoints it needs by positioned reads, and its state files when it continues a committed
 * state; it writes the next state generation (unless it runs to the end without state) and,
 * when asked, a, b and mode into a pre-sized model file. Only small sums go back.
 */
import fs from 'node:fs';
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';
import type { StoredTensor } from '../formats/types.ts';
import type { Chunk } from '../pipeline/chunks.ts';
import { activeFitKernel, assignModes, assignModesFromSource, type ReferenceStats } from '../core/fit.ts';
import type { TensorSlots } from '../pipeline/worker.ts';
import { TrajectoryReader } from '../trajectory/trajectory-reader.ts';
import { openChunkKernel, type ChunkKernel, type RangeErrors } from './chunk-kernel.ts';
import { fitTable, flatRows, solveChunk, sumsFinite, type ChunkSums, type ModeFit, type SolveStats } from './kernel.ts';
import { readChunk, writeChunkStatic, writeChunkSums } from './chunk-files.ts';
import { writeParameterSlots } from '../pipeline/slot-writer.ts';

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

/**
 * Warm-up on one chunk: every parameter's mode as post-hoc CMD assigns it over checkpoints 0..F
 * (`fitAssign` with the warm-up references), then the running sums of 0..F, a(F), b(F) and the
 * error at F. Writes the chunk's state at generation F, unless `rest` is given: an offline run
 * then goes on through the later checkpoints in the same task and writes no state at all (the
 * values of 0..F are read once, and nothing is written and read back).
 */
export interface InitTask {
  kind: 'init';
  ctx: TaskContext;
  chunk: Chunk;
  /** stored[t][k]: modelled tensor k of warm-up checkpoint t (default: positions 0..F of the shared data). */
  stored?: StoredTensor[][];
  /** The warm-up references over 0..F, for the mode assignment. */
  assign: ReferenceStats;
  /** Raw refs[t][m] for t = 0..F, and the fit at F. */
  refs: Float64Array[];
  fit: ModeFit;
  /** Written with the coefficients at the end of the task (at F, or after the last of `rest`). */
  modelOut?: ModelOut;
  /** The checkpoints after F, added in order, `batch` at a time, with the arithmetic of one `update` task each. */
  rest?: { stored?: StoredTensor[][]; refShifted: Float64Array[]; refs: Float64Array[]; fits: ModeFit[]; batch: number };
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

export type OnlineTask = InitTask | UpdateTask | MaterializeTask;

/** Sent to each worker once: stored[p][k] = modelled tensor k of the checkpoint at position p. */
export interface SharedData {
  stored: StoredTensor[][];
}

/** A task's checkpoints: its own list, or positions [from, to) of the shared data. */
function storedFor(own: StoredTensor[][] | undefined, shared: SharedData | undefined, from: number, to: number): StoredTensor[][] {
  if (own) return own;
  if (!shared) throw new Error('online task: no checkpoints given and no shared data');
  return shared.stored.slice(from, to);
}

export interface TaskResult {
  /** Per piece of the chunk at the checkpoint just added (init: at F). */
  pieces: { tensor: number; errSq: number; normSq: number }[];
  /** init with `rest`: the pieces of every later checkpoint, in order. */
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

function openReader(ctx: TaskContext, stored: StoredTensor[][]): TrajectoryReader {
  return new TrajectoryReader({ tensors: ctx.tensors, stored, total: ctx.tensors.reduce((s, t) => s + t.count, 0) });
}

/** Reads the chunk's values of `stored` (one row per checkpoint) into `values`; returns the bytes read. */
function readValues(ctx: TaskContext, chunk: Chunk, stored: StoredTensor[][], values: Float32Array | Float64Array): number {
  const n = chunk.count;
  const reader = openReader(ctx, stored);
  try {
    const g0 = globalStart(ctx, chunk);
    reader.readRange(g0, g0 + n, values, 0, stored.length);
    return reader.bytesRead;
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


/** Per-thread float32 staging for model writes, kept across tasks (fresh 3 MB buffers per chunk make work for the GC). */
let f32Scratch = new Float32Array(0);

function writeModel(out: ModelOut, chunk: Chunk, a: Float64Array, b: Float64Array, sums: ChunkSums, modeBytes: 1 | 2): void {
  if (f32Scratch.length < 2 * chunk.count) f32Scratch = new Float32Array(2 * chunk.count);
  const fd = fs.openSync(out.path, 'r+');
  try {
    let i0 = 0;
    for (const p of chunk.pieces) {
      const slot = out.slots[p.tensor];
      const fa = f32Scratch.subarray(0, p.count);
      const fb = f32Scratch.subarray(p.count, 2 * p.count);
      fa.set(a.subarray(i0, i0 + p.count));
      fb.set(b.subarray(i0, i0 + p.count));
      const m = sums.mode.subarray(i0, i0 + p.count);
      writeParameterSlots(fd, out.path, slot, p.start, p.count, fa, fb, m, modeBytes);
      i0 += p.count;
    }
  } finally {
    fs.closeSync(fd);
  }
}

/** [i0, i1) of each piece of the chunk, in order. */
function pieceRanges(chunk: Chunk): [number, number][] {
  let i0 = 0;
  return chunk.pieces.map((p) => [i0, (i0 += p.count)]);
}

/** Per-range errors as the pieces of the chunk they belong to. */
function asPieces(chunk: Chunk, errors: RangeErrors): TaskResult['pieces'] {
  return errors.map((e, r) => ({ tensor: chunk.pieces[r].tensor, errSq: e.errSq, normSq: e.normSq }));
}

function finalStats(kernel: ChunkKernel): Pick<TaskResult, 'modeCount' | 'r2Sum'> {
  return { modeCount: Array.from(kernel.stats.modeCount), r2Sum: Array.from(kernel.stats.r2Sum) };
}

function runInit(task: InitTask, shared?: SharedData): TaskResult {
  const { ctx, chunk } = task;
  const n = chunk.count;
  const M = task.fit.R1.length;
  const K = task.refs.length;
  const F = K - 1;
  const rest = task.rest;
  const stored = storedFor(task.stored, shared, 0, K);
  const restStored = rest ? storedFor(rest.stored, shared, K, K + rest.fits.length) : [];
  // Each parameter's mode as post-hoc CMD assigns it over 0..F, and from the same pass the
  // running sums over 0..F; the online a, b come from the sums. Where the WebAssembly kernels
  // run, the warm-up is read panel by panel straight into the fit kernel (as post-hoc's pass 2,
  // docs/performance.md) and only checkpoint F, for its error, into the chunk; else the chunk's
  // 0..F rows are read and handed over. Same values either way, so the same bits.
  const warm = readWarmup(ctx, chunk, stored, task.assign, (rows) => openChunkKernel(n, Math.max(rows, rest?.batch ?? 0), M, ctx.modeBytes, { float64: ctx.float64 }));
  const { kernel, values } = warm;
  let bytesRead = warm.bytesRead;
  // The per-mode statistics are reported for the last checkpoint only.
  const pieces = asPieces(chunk, kernel.solveWarmup(warm.lastRow + 1, task.fit, task.refs[F], pieceRanges(chunk), !rest?.fits.length));
  if (!rest) {
    if (!sumsFinite(kernel.sums)) {
      const bad = values ? findNonFinite(values, chunk) : firstNonFinite(ctx, chunk, stored, K);
      if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
    }
    writeChunkStatic(ctx.stateDir, chunk.index, kernel.sums, ctx.durable);
    writeChunkSums(ctx.stateDir, chunk.index, F, kernel.sums, ctx.durable);
    if (task.modelOut) writeModel(task.modelOut, chunk, kernel.a, kernel.b, kernel.sums, ctx.modeBytes);
    return { pieces, ...finalStats(kernel), bytesRead };
  }
  const steps: TaskResult['pieces'][] = [];
  for (let j0 = 0; j0 < restStored.length; j0 += rest.batch) {
    const j1 = Math.min(restStored.length, j0 + rest.batch);
    const batch = kernel.values(j1 - j0);
    bytesRead += readValues(ctx, chunk, restStored.slice(j0, j1), batch);
    const rows = kernel.update(flatRows(rest.refShifted.slice(j0, j1), M), flatRows(rest.refs.slice(j0, j1), M), fitTable(rest.fits.slice(j0, j1)), pieceRanges(chunk), j1 === restStored.length);
    for (const row of rows) steps.push(asPieces(chunk, row));
  }
  // A NaN or ±Inf anywhere makes S2 non-finite for good: one check at the end, and only then
  // look for the first culprit.
  if (!sumsFinite(kernel.sums)) {
    const bad = firstNonFinite(ctx, chunk, [...stored, ...restStored], rest.batch);
    if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
  }
  if (task.modelOut) writeModel(task.modelOut, chunk, kernel.a, kernel.b, kernel.sums, ctx.modeBytes);
  return { pieces, steps, ...finalStats(kernel), bytesRead };
}

/**
 * The warm-up's modes and shifted sums into a chunk kernel opened by `open(rows)`: with the
 * WebAssembly kernels, panels read straight into the fit kernel and only the last warm-up row into
 * the chunk (`lastRow` 0, `values` undefined); else every warm-up row into the chunk, then
 * {@link assignModes} (`lastRow` K − 1, `values` those rows).
 */
function readWarmup(ctx: TaskContext, chunk: Chunk, stored: StoredTensor[][], assign: ReferenceStats, open: (rows: number) => ChunkKernel): { kernel: ChunkKernel; values?: Float32Array | Float64Array; lastRow: number; bytesRead: number } {
  const n = chunk.count;
  const K = stored.length;
  if (!ctx.float64 && activeFitKernel() === 'wasm') {
    const kernel = open(1);
    const reader = openReader(ctx, stored);
    try {
      const g0 = globalStart(ctx, chunk);
      const source = (p0: number, pw: number, into: Float32Array, at: number, stride: number) => reader.readRange(g0 + p0, g0 + p0 + pw, into, 0, K, at, stride);
      if (!assignModesFromSource(source, n, assign, kernel.sums.mode, kernel.sums)) throw new Error('internal: the WebAssembly fit kernel declined the warm-up');
      reader.readRange(g0, g0 + n, kernel.values(1), K - 1, K);
      return { kernel, lastRow: 0, bytesRead: reader.bytesRead };
    } finally {
      reader.close();
    }
  }
  const kernel = open(K);
  const values = kernel.values(K);
  const bytesRead = readValues(ctx, chunk, stored, values);
  assignModes(values, n, assign, kernel.sums.mode, kernel.sums);
  return { kernel, values, lastRow: K - 1, bytesRead };
}

/** The chunk's first non-finite value over `stored` (checkpoint positions from 0), read again `batch` checkpoints at a time. */
function firstNonFinite(ctx: TaskContext, chunk: Chunk, stored: StoredTensor[][], batch: number): TaskResult['nonFinite'] {
  const n = chunk.count;
  const buffer = ctx.float64 ? new Float64Array(batch * n) : new Float32Array(batch * n);
  for (let j0 = 0; j0 < stored.length; j0 += batch) {
    const j1 = Math.min(stored.length, j0 + batch);
    const values = buffer.subarray(0, (j1 - j0) * n);
    readValues(ctx, chunk, stored.slice(j0, j1), values);
    const bad = findNonFinite(values, chunk);
    if (bad) return { ...bad, checkpoint: j0 + bad.checkpoint };
  }
  return undefined;
}

function runUpdate(task: UpdateTask): TaskResult {
  const { ctx, chunk } = task;
  const n = chunk.count;
  const M = task.fit.R1.length;
  const kernel = openChunkKernel(n, 1, M, ctx.modeBytes, { float64: ctx.float64 });
  const state = readChunk(ctx.stateDir, chunk.index, task.from, n, ctx.modeBytes);
  for (const k of ['shift', 'mode', 'S1', 'S2', 'P'] as const) kernel.sums[k].set(state[k]);
  const values = kernel.values(1);
  const bytesRead = readValues(ctx, chunk, [task.stored], values);
  const bad = findNonFinite(values, chunk);
  if (bad) return { pieces: [], modeCount: [], r2Sum: [], nonFinite: bad, bytesRead };
  // The same kernel as an init task's later checkpoints: `cmd watch` and `analyze --online`
  // share every floating-point operation.
  const [row] = kernel.update(task.refShifted, task.refs, fitTable([task.fit]), pieceRanges(chunk));
  writeChunkSums(ctx.stateDir, chunk.index, task.to, kernel.sums, ctx.durable);
  if (task.modelOut) writeModel(task.modelOut, chunk, kernel.a, kernel.b, kernel.sums, ctx.modeBytes);
  return { pieces: asPieces(chunk, row), ...finalStats(kernel), bytesRead };
}

function runMaterialize(task: MaterializeTask): TaskResult {
  const { ctx, chunk, fit } = task;
  const n = chunk.count;
  const M = fit.R1.length;
  const sums = readChunk(ctx.stateDir, chunk.index, task.gen, n, ctx.modeBytes);
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const stats: SolveStats = { modeCount: new Float64Array(M), r2Sum: new Float64Array(M) };
  solveChunk(sums, fit, a, b, stats);
  writeModel(task.modelOut, chunk, a, b, sums, ctx.modeBytes);
  return { pieces: [], modeCount: Array.from(stats.modeCount), r2Sum: Array.from(stats.r2Sum), bytesRead: 0 };
}

/** Runs one task (the worker's entry point, also called inline). */
export function runOnlineTask(task: OnlineTask, shared?: SharedData): TaskResult {
  switch (task.kind) {
    case 'init':
      return runInit(task, shared);
    case 'update':
      return runUpdate(task);
    case 'materialize':
      return runMaterialize(task);
  }
}
