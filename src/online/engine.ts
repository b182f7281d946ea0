/**
 * The online CMD run (docs/method.md §12): warm-up on checkpoints 0..F with the post-hoc
 * decomposition and mode assignment (samples, clusters, references and modes are frozen there),
 * then only a and b change, from running sums. `cmd watch` adds checkpoints as they appear,
 * one at a time, with the sums in chunked state files (state.ts) so it can resume;
 * `cmd analyze --online` runs the same per-chunk arithmetic through all checkpoints in one pass
 * without state. Both produce the same bytes.
 */
import { promises as fsp } from 'node:fs';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { locate } from '../checkpoints/parameter-space.ts';
import { modelledTensors } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, InputError } from '../errors.ts';
import { encodeFloats } from '../formats/dtype.ts';
import type { StoredTensor } from '../formats/types.ts';
import { decompose, distancesWantPool, modelMetadata, type ProgressSink } from '../pipeline/analyze.ts';
import { createPool } from '../pipeline/pool.ts';
import type { PoolData } from '../pipeline/worker.ts';
import type { Heatmap } from '../core/heatmap.ts';
import { chunkElements, planChunks, type Chunk } from '../pipeline/chunks.ts';
import { createModelFile, modeDtypeFor, planModelFile, syncFile, writeAtPosition, type ModelLayout } from '../pipeline/model-file.ts';
import { defaultWorkerCount } from '../pipeline/pool.ts';
import type { RunReport } from '../output/report-schema.ts';
import type { ReportResult, ReportSource } from '../output/report.ts';
import { TrajectoryReader } from '../trajectory/trajectory-reader.ts';
import { planTrajectory } from '../trajectory/plan-trajectory.ts';
import { addReferences, createModeSums, modeFit, solveChunk, type ModeFit, type ModeSums } from './kernel.ts';
import { createTaskRunner, type TaskRunner } from './online-pool.ts';
import type { InitTask, ModelOut, SharedData, TaskContext, TaskResult } from './online-tasks.ts';
import type { ReferenceStats } from '../core/fit.ts';
import { readChunk } from './chunk-files.ts';
import { readState, removeStaleFiles, writeCommit, writeMeta, STATE_VERSION, type CheckpointSummary, type OnlineCommit, type OnlineMeta } from './state.ts';
import { addPieceErrors, relativeError } from '../pipeline/merge-errors.ts';

export interface OnlineOptions {
  /** F: checkpoints 0..F are the warm-up. */
  warmup: number;
  modes: number;
  samples: number;
  /** What the report calls samplesRequested (default: `samples`, or the file's count). */
  samplesRequested?: number;
  /** Told when the warm-up departs from what was asked (fewer samples than requested). */
  onNote?: (line: string) => void;
  seed: number;
  samplesFrom?: [string, number][];
  workers?: number;
  /** Parameters per state chunk (default: chunkElements(F + 1), ~32 MB of warm-up values). */
  chunkSize?: number;
  signal?: AbortSignal;
  progress?: ProgressSink;
  /**
   * fsync every state file (default true: `cmd watch` must survive a crash). An offline run
   * keeps its state in the staging folder it deletes at the end, so it skips the flushes.
   */
  durable?: boolean;
}

/** A checkpoint to add: its identity and where its modelled tensors are (parameter-space order). */
export interface NewCheckpoint {
  step: number;
  name: string;
  bytes: number;
  /** What was opened (for error messages). */
  path: string;
  stored: StoredTensor[];
}

/** What the warm-up decided besides the modes (samples.json and sampled-corr.npy come from it). */
export interface WarmUp {
  sampleIndices: Float64Array;
  sampling: 'U_B' | 'U' | 'file';
  heatmap: Heatmap;
  timings: Record<string, number>;
  /** Bytes read by pass 1 (the sampled trajectories). */
  bytesRead: number;
}

/**
 * What the warm-up of an online run fixes before its chunk pass (OnlineEngine.warmUp): plain
 * data, so a sharded run can plan it once (docs/scale-out.md).
 */
export interface OnlinePass {
  meta: OnlineMeta;
  /** Checkpoints 0..F, and all of them (with the later ones of an offline run). */
  checkpoints: CheckpointSummary[];
  allCheckpoints: CheckpointSummary[];
  /** refs[t][m] for t = 0..F, and their sums; endSums after the later checkpoints. */
  refs: Float64Array[];
  sums: ModeSums;
  endSums: ModeSums;
  /** The warm-up references' statistics, for the mode assignment. */
  assign: ReferenceStats;
  /** The later checkpoints' references and fits (offline runs). */
  later?: NonNullable<InitTask['rest']>;
  warm: WarmUp;
}

function nonFiniteError(file: string, tensor: string, element: number, value: number, step: number): InputError {
  return new InputError(file, `tensor ${tensor} element ${element} is ${value} (non-finite) at step ${step}`, 'non-finite');
}

export class OnlineEngine {
  readonly stateDir: string;
  readonly meta: OnlineMeta;
  private state: OnlineCommit;
  private readonly runner: TaskRunner;
  private readonly chunks: Chunk[];
  private readonly signal?: AbortSignal;

  private constructor(stateDir: string, meta: OnlineMeta, commit: OnlineCommit, runner: TaskRunner, signal?: AbortSignal) {
    this.stateDir = stateDir;
    this.meta = meta;
    this.state = commit;
    this.runner = runner;
    this.chunks = planChunks(meta.tensors, meta.chunkSize);
    this.signal = signal;
  }

  /** The committed state (read-only view). */
  get commit(): OnlineCommit {
    return this.state;
  }

  /** Worker threads the chunk tasks run on. */
  get threads(): number {
    return this.runner.threads;
  }

  get checkpoints(): CheckpointSummary[] {
    return this.state.checkpoints;
  }

  /** See {@link OnlineOptions.durable}. */
  durable = true;
  /** Set by a `start` that went through to the end without writing state: nothing may follow. */
  private ended = false;

  private get ctx(): TaskContext {
    return { tensors: this.meta.tensors, float64: this.meta.float64, stateDir: this.stateDir, modeBytes: this.meta.modeBytes, durable: this.durable };
  }

  /**
   * Warm-up on checkpoints 0..F of `set`: samples, clusters and references as post-hoc CMD on
   * those checkpoints, then one chunked pass that assigns every parameter's mode and builds the
   * running sums, committed as generation F in `stateDir` (which must be empty).
   *
   * `modelOut` gets the online model at F; `beforeCommit` runs before the commit (to write side
   * files that must exist whenever a committed state does). With `continueWith`, the same pass
   * goes on through those checkpoints (F+1, F+2, … in order) and no state is written at all:
   * the engine then holds the result at the last one, `modelOut` gets the model there, and
   * nothing can be added after it. The numbers are those of adding them one at a time.
   */
  static async start(
    stateDir: string,
    set: CheckpointSet,
    options: OnlineOptions,
    extra: { modelOut?: string; beforeCommit?: (warm: WarmUp) => Promise<void>; continueWith?: NewCheckpoint[] } = {},
  ): Promise<{ engine: OnlineEngine; warm: WarmUp }> {
    const F = options.warmup;
    const threads = Math.max(1, options.workers ?? defaultWorkerCount());
    const rest = extra.continueWith;
    // The chunk tasks' workers get every checkpoint's tensor locations once, and start up while
    // the samples are read and clustered.
    const runner = createTaskRunner(threads, options.signal, sharedCheckpoints(set, F, rest));
    let s: OnlinePass;
    try {
      s = await OnlineEngine.warmUp(set, options, threads, rest);
    } catch (e) {
      await runner.destroy();
      throw e;
    }
    const engine = new OnlineEngine(stateDir, s.meta, emptyCommitOf(s), runner, options.signal);
    engine.durable = options.durable ?? true;
    try {
      if (!rest) {
        await fsp.mkdir(stateDir, { recursive: true });
        await writeMeta(stateDir, s.meta);
      }
      const model = extra.modelOut ? await engine.prepareModel(extra.modelOut, s.allCheckpoints) : undefined;
      const position = (p: number) => (p <= F ? set.checkpoints[p] : rest![p - F - 1]);
      const results = await engine.passChunks(s, 0, engine.chunks.length, model?.out, position, options.progress);
      const commit = engine.commitOf(s, results);
      if (model) await engine.finishModel(model.layout, extra.modelOut!, commit.refs);
      if (rest) {
        engine.ended = true;
        engine.state = commit;
        return { engine, warm: s.warm };
      }
      await extra.beforeCommit?.(s.warm);
      if (options.signal?.aborted) throw new CancelledError();
      await writeCommit(stateDir, commit);
      engine.state = commit;
      return { engine, warm: s.warm };
    } catch (e) {
      await runner.destroy();
      throw e;
    }
  }

  /**
   * The warm-up of {@link start} without its chunk pass: samples, clusters and references on
   * 0..F, and for an offline run (`rest`) the reference sums and fits of every later checkpoint.
   * Everything here is small (K × (F + 1) values read); a sharded run (docs/scale-out.md) plans
   * it once and each shard task runs {@link passChunks} on its chunks.
   */
  static async warmUp(set: CheckpointSet, options: OnlineOptions, threads: number, rest?: NewCheckpoint[]): Promise<OnlinePass> {
    const F = options.warmup;
    const window = { from: 0, to: F + 1 };
    const decomposeOptions = { modes: options.modes, samples: options.samples, samplesRequested: options.samplesRequested, onNote: options.onNote, seed: options.seed, samplesFrom: options.samplesFrom, window, signal: options.signal, progress: options.progress };
    const plan = planTrajectory(set);
    plan.stored = plan.stored.slice(0, F + 1);
    // The distances of a large sample run on pipeline workers; below that one thread is faster.
    const K0 = options.samplesFrom ? options.samplesFrom.length : options.samples;
    const pool = distancesWantPool(K0, threads) ? createPool({ plan, float64: false } satisfies PoolData, threads, options.signal) : undefined;
    let decomposition;
    try {
      decomposition = await decompose(set, decomposeOptions, pool);
    } finally {
      await pool?.destroy();
    }
    const { indices, sampling, K, clusterings, heatmap, timings } = decomposition;
    const clustering = clusterings[0];
    const M = clustering.M;
    const refIndex = clustering.refIndex;
    // The references' values over 0..F at full precision (pass 1 read them as float64).
    const refs: Float64Array[] = Array.from({ length: F + 1 }, (_, t) => Float64Array.from({ length: M }, (_, m) => clustering.refs[m * (F + 1) + t]));
    let sums = createModeSums(refs[0]);
    for (const r of refs) sums = addReferences(sums, r);

    const modes = Array.from({ length: M }, (_, m) => {
      const loc = locate(set.space, refIndex[m]);
      return { sampledCount: clustering.sampleModes.members[m].length, reference: { tensor: loc.tensor, element: loc.element, index: refIndex[m] } };
    });
    const warm: WarmUp = { sampleIndices: indices, sampling, heatmap, timings, bytesRead: decomposition.bytesRead };
    const meta: OnlineMeta = {
      version: STATE_VERSION,
      warmup: F,
      N: set.space.total,
      M,
      K,
      chunkSize: options.chunkSize ?? chunkElements(F + 1),
      modeBytes: modeDtypeFor(M) === 'U8' ? 1 : 2,
      float64: set.space.tensors.some((t) => t.dtype === 'F64'),
      source: { dir: set.dir, format: set.format },
      tensors: set.space.tensors,
      carried: set.space.carried,
      refIndex,
      sampleIndex: Array.from(indices),
      metadata: modelMetadata(set, decomposeOptions, { M, K, sampling, window, refIndex, indices }),
      modesRequested: options.modes,
      samplesRequested: options.samplesRequested ?? (options.samplesFrom ? options.samplesFrom.length : options.samples),
      sampling,
      seed: options.samplesFrom ? null : options.seed,
      modes,
    };
    const checkpoints = set.checkpoints.slice(0, F + 1).map((c) => ({ index: c.index, step: c.step, name: c.name, bytes: c.bytes }));
    // Everything about the checkpoints after F that the chunk tasks need (offline runs only).
    let later: OnlinePass['later'];
    let endSums = sums;
    if (rest) {
      later = { refShifted: [], refs: [], fits: [], batch: F + 1 };
      for (const c of rest) {
        const r = referenceValuesOf(meta, c);
        endSums = addReferences(endSums, r);
        later.fits.push(modeFit(endSums));
        later.refShifted.push(r.map((v, m) => v - endSums.shift[m]));
        later.refs.push(r);
      }
    }
    const allCheckpoints = [...checkpoints, ...(rest ?? []).map((c, j) => ({ index: F + 1 + j, step: c.step, name: c.name, bytes: c.bytes }))];
    return { meta, checkpoints, allCheckpoints, refs, sums, endSums, assign: clustering.stats, later, warm };
  }

  /**
   * The warm-up chunk pass over chunks [c0, c1): every parameter's mode and sums, and with
   * `later` the checkpoints after F; results in chunk order. `position(p)` names the
   * checkpoint at position p in errors.
   */
  async passChunks(s: OnlinePass, c0: number, c1: number, modelOut: ModelOut | undefined, position: (p: number) => { path: string; step: number }, progress?: ProgressSink, onChunk?: () => void): Promise<TaskResult[]> {
    const fit = modeFit(s.sums);
    progress?.start(s.later ? 'online' : 'warm-up', this.chunks.slice(c0, c1).reduce((n, c) => n + c.count, 0));
    const results = await this.runner.runAll(
      c1 - c0,
      (i) => ({ kind: 'init', ctx: this.ctx, chunk: this.chunks[c0 + i], assign: s.assign, refs: s.refs, fit, modelOut, rest: s.later }),
      (i, r) => {
        this.throwNonFinite(r, position);
        progress?.advance(this.chunks[c0 + i].count);
        onChunk?.();
      },
    );
    progress?.stop();
    return results;
  }

  /** The state after the chunk pass: `results` of every chunk, in chunk order. */
  commitOf(s: OnlinePass, results: TaskResult[]): OnlineCommit {
    const F = s.meta.warmup;
    const emptyCommit = emptyCommitOf(s);
    const atF = this.merge(results);
    const errors = [...s.checkpoints.slice(0, F).map(() => ({ errSq: 0, normSq: 0 })), atF.total];
    let tensorErrors = atF.perTensor;
    let last = atF;
    // Per later checkpoint, in order: what {@link apply} adds for each.
    for (let j = 0; j < (s.later?.fits.length ?? 0); j++) {
      last = this.merge(results.map((r) => ({ ...r, pieces: r.steps![j] })));
      errors.push(last.total);
      tensorErrors = tensorErrors.map((e, k) => ({ errSq: e.errSq + last.perTensor[k].errSq, normSq: e.normSq + last.perTensor[k].normSq }));
    }
    return {
      ...emptyCommit,
      t: s.allCheckpoints.length - 1,
      checkpoints: s.allCheckpoints,
      modeSums: s.endSums,
      refs: [...emptyCommit.refs, ...(s.later?.refs ?? []).map((r) => Array.from(r))],
      errors,
      tensorErrors,
      modeCount: last.modeCount,
      r2Sum: last.r2Sum,
      bytesRead: atF.bytesRead + s.warm.bytesRead,
    };
  }

  /**
   * An engine over a planned offline pass (docs/scale-out.md), for a shard task's chunk pass
   * ({@link passChunks}) or the merge ({@link finishPass}); it keeps no state on disk.
   */
  static fromPass(set: CheckpointSet, s: OnlinePass, threads: number, signal?: AbortSignal): OnlineEngine {
    const runner = createTaskRunner(Math.max(1, threads), signal, sharedCheckpoints(set, s.meta.warmup, set.checkpoints.slice(s.meta.warmup + 1).map((c) => ({ stored: modelledTensors(set, c) }))));
    const engine = new OnlineEngine('', s.meta, emptyCommitOf(s), runner, signal);
    engine.durable = false;
    engine.ended = true;
    return engine;
  }

  /** The pre-sized model file over every checkpoint of the pass, with its a, b, mode slots. */
  async preparePassModel(s: OnlinePass, file: string): Promise<ModelOut> {
    return (await this.prepareModel(file, s.allCheckpoints)).out;
  }

  /** The merge of a sharded pass: the state from every chunk's results, refs and indices into the model file. */
  async finishPass(s: OnlinePass, results: TaskResult[], modelFile: string): Promise<void> {
    const commit = this.commitOf(s, results);
    await this.finishModel(this.layoutFor(s.allCheckpoints), modelFile, commit.refs);
    this.state = commit;
  }

  /** The engine over a committed state in `stateDir` (stray files of an interrupted update removed), or undefined. */
  static async resume(stateDir: string, options: { workers?: number; signal?: AbortSignal } = {}): Promise<OnlineEngine | undefined> {
    const found = await readState(stateDir);
    if (!found) return undefined;
    await removeStaleFiles(stateDir, found.commit.t);
    const runner = createTaskRunner(Math.max(1, options.workers ?? defaultWorkerCount()), options.signal);
    return new OnlineEngine(stateDir, found.meta, found.commit, runner, options.signal);
  }

  private throwNonFinite(r: TaskResult, checkpoint: (k: number) => { path: string; step: number }): void {
    const nf = r.nonFinite;
    if (!nf) return;
    const c = checkpoint(nf.checkpoint);
    throw nonFiniteError(c.path, this.meta.tensors[nf.tensor].name, nf.element, nf.value, c.step);
  }

  private merge(results: TaskResult[]) {
    const M = this.meta.M;
    const total = { errSq: 0, normSq: 0 };
    const perTensor = this.meta.tensors.map(() => ({ errSq: 0, normSq: 0 }));
    const modeCount = new Array<number>(M).fill(0);
    const r2Sum = new Array<number>(M).fill(0);
    let bytesRead = 0;
    for (const r of results) {
      addPieceErrors(perTensor, r.pieces, total);
      r.modeCount.forEach((c, m) => (modeCount[m] += c));
      r.r2Sum.forEach((c, m) => (r2Sum[m] += c));
      bytesRead += r.bytesRead;
    }
    return { total, perTensor, modeCount, r2Sum, bytesRead };
  }

  /** The model file's `__metadata__` for the online model over `checkpoints`. */
  private metadataFor(checkpoints: CheckpointSummary[]): Record<string, string> {
    const md = { ...this.meta.metadata };
    md['cmd.checkpoints'] = JSON.stringify(checkpoints);
    const params = JSON.parse(this.meta.metadata['cmd.params']) as Record<string, unknown>;
    md['cmd.params'] = JSON.stringify({ ...params, variant: 'online', window: { from: 0, to: checkpoints.length }, warmup: this.meta.warmup });
    return md;
  }

  private layoutFor(checkpoints: CheckpointSummary[]): ModelLayout {
    return planModelFile(this.meta.tensors, this.meta.M, checkpoints.length, this.meta.K, this.metadataFor(checkpoints));
  }

  /** Creates the pre-sized model file (replacing `file`); chunk tasks fill a, b and mode. */
  private async prepareModel(file: string, checkpoints: CheckpointSummary[]): Promise<{ layout: ModelLayout; out: ModelOut }> {
    const layout = this.layoutFor(checkpoints);
    await fsp.rm(file, { force: true });
    await createModelFile(file, layout);
    return { layout, out: { path: file, slots: layout.slots } };
  }

  /** Writes refs (M × T, mode-major), reference_index and sample_index, and syncs the file. */
  private async finishModel(layout: ModelLayout, file: string, refs: number[][]): Promise<void> {
    const M = this.meta.M;
    const T = refs.length;
    const flat = new Float64Array(M * T);
    for (let t = 0; t < T; t++) for (let m = 0; m < M; m++) flat[m * T + t] = refs[t][m];
    await writeAtPosition(file, layout.position('refs'), encodeFloats('F32', flat));
    await writeAtPosition(file, layout.position('reference_index'), encodeFloats('I64', this.meta.refIndex));
    await writeAtPosition(file, layout.position('sample_index'), encodeFloats('I64', this.meta.sampleIndex));
    await syncFile(file);
  }

  /** Bytes of the model file over `T` checkpoints. */
  modelBytes(T = this.state.t + 1): number {
    return this.layoutFor(this.state.checkpoints.slice(0, T)).plan.totalBytes;
  }

  /** The M references' values in a new checkpoint; a non-finite one is an error naming it. */
  referenceValues(c: NewCheckpoint): Float64Array {
    return referenceValuesOf(this.meta, c);
  }

  /**
   * Adds the next checkpoint: reads its values chunk by chunk, updates the sums into a new
   * generation, commits. Writes the online model at this checkpoint to `modelOut` when given.
   * Interrupted (signal) or failing before the commit, the state stays at the previous checkpoint.
   */
  async apply(c: NewCheckpoint, modelOut?: string): Promise<void> {
    this.requireState();
    const prev = this.state;
    const t = prev.t + 1;
    const r = this.referenceValues(c);
    const sums: ModeSums = addReferences(prev.modeSums, r);
    const fit: ModeFit = modeFit(sums);
    const refShifted = r.map((v, m) => v - sums.shift[m]);
    const checkpoints = [...prev.checkpoints, { index: t, step: c.step, name: c.name, bytes: c.bytes }];
    const refs = [...prev.refs, Array.from(r)];
    const model = modelOut ? await this.prepareModel(modelOut, checkpoints) : undefined;
    const results = await this.runner.runAll(
      this.chunks.length,
      (i) => ({ kind: 'update', ctx: this.ctx, chunk: this.chunks[i], stored: c.stored, refShifted, refs: r, fit, from: prev.t, to: t, modelOut: model?.out }),
      (_, res) => this.throwNonFinite(res, () => c),
    );
    const { total, perTensor, modeCount, r2Sum, bytesRead } = this.merge(results);
    const commit: OnlineCommit = {
      version: STATE_VERSION,
      t,
      checkpoints,
      modeSums: sums,
      refs,
      errors: [...prev.errors, total],
      tensorErrors: prev.tensorErrors.map((e, k) => ({ errSq: e.errSq + perTensor[k].errSq, normSq: e.normSq + perTensor[k].normSq })),
      modeCount,
      r2Sum,
      bytesRead: prev.bytesRead + bytesRead,
    };
    if (model) await this.finishModel(model.layout, modelOut!, refs);
    if (this.signal?.aborted) throw new CancelledError();
    await writeCommit(this.stateDir, commit);
    this.state = commit;
    await removeStaleFiles(this.stateDir, t);
  }

  private requireState(): void {
    if (this.ended) throw new Error('online engine: this run went to its last checkpoint without keeping a state');
  }

  /** Writes the committed online model to `file` from the state alone (no checkpoint is read). */
  async writeModel(file: string): Promise<void> {
    this.requireState();
    const commit = this.state;
    const model = await this.prepareModel(file, commit.checkpoints);
    const fit = modeFit(commit.modeSums);
    await this.runner.runAll(this.chunks.length, (i) => ({ kind: 'materialize', ctx: this.ctx, chunk: this.chunks[i], fit, gen: commit.t, modelOut: model.out }));
    await this.finishModel(model.layout, file, commit.refs);
  }

  /** Online a, b (float64) of every parameter at the committed checkpoint, from the state files. */
  coefficients(): { a: Float64Array; b: Float64Array; mode: Uint16Array } {
    this.requireState();
    const N = this.meta.N;
    const a = new Float64Array(N);
    const b = new Float64Array(N);
    const mode = new Uint16Array(N);
    const fit = modeFit(this.state.modeSums);
    let offset = 0;
    for (const chunk of this.chunks) {
      const sums = readChunk(this.stateDir, chunk.index, this.state.t, chunk.count, this.meta.modeBytes);
      solveChunk(sums, fit, a.subarray(offset, offset + chunk.count), b.subarray(offset, offset + chunk.count));
      mode.set(sums.mode, offset);
      offset += chunk.count;
    }
    return { a, b, mode };
  }

  /**
   * report.json of the committed state: per checkpoint the online model's error (0 before F).
   * Async only to load the report code (zod) when first needed, off the start-up path.
   */
  async buildReport(): Promise<RunReport> {
    const { buildReport } = await import('../output/report.ts');
    const { meta, state } = this;
    const T = state.t + 1;
    const set: ReportSource = {
      dir: meta.source.dir,
      format: meta.source.format,
      checkpoints: state.checkpoints,
      space: { tensors: meta.tensors, carried: meta.carried, total: meta.N },
    };
    const result: ReportResult = {
      modesRequested: meta.modesRequested,
      modes: meta.modes.map((m, i) => ({
        mode: i,
        sampledCount: m.sampledCount,
        assignedCount: state.modeCount[i],
        reference: m.reference,
        meanR2: state.modeCount[i] > 0 ? state.r2Sum[i] / state.modeCount[i] : null,
      })),
      sampleIndices: Float64Array.from(meta.sampleIndex),
      sampling: meta.sampling,
      checkpointErrors: state.errors.map((e) => relativeError(e.errSq, e.normSq)),
      tensorErrors: meta.tensors.map((t, k) => ({ name: t.name, parameters: t.count, relativeError: relativeError(state.tensorErrors[k].errSq, state.tensorErrors[k].normSq) })),
      modelPath: '',
      modelBytes: this.modelBytes(T),
      sweep: [],
      window: { from: 0, to: T },
    };
    return buildReport({ set, result, seed: meta.seed, samplesRequested: meta.samplesRequested, variant: 'online', warmup: meta.warmup });
  }

  async close(): Promise<void> {
    await this.runner.destroy();
  }
}

/** The M references' values in a new checkpoint; a non-finite one is an error naming it. */
function referenceValuesOf(meta: OnlineMeta, c: Pick<NewCheckpoint, 'stored' | 'path' | 'step'>): Float64Array {
  const { M, refIndex } = meta;
  const reader = new TrajectoryReader({ tensors: meta.tensors, stored: [c.stored], total: meta.N });
  const r = new Float64Array(M);
  try {
    reader.readParameters(refIndex, r, 0, 1);
  } finally {
    reader.close();
  }
  for (let m = 0; m < M; m++) {
    if (!Number.isFinite(r[m])) {
      const loc = locate({ tensors: meta.tensors, carried: [], total: meta.N }, refIndex[m]);
      throw nonFiniteError(c.path, loc.tensor, loc.element, r[m], c.step);
    }
  }
  return r;
}

/**
 * What the chunk tasks' workers get once: the tensor locations of checkpoints 0..F and, for an
 * offline run, of the later ones.
 */
function sharedCheckpoints(set: CheckpointSet, F: number, rest?: { stored: StoredTensor[] }[]): SharedData {
  const plan = planTrajectory(set);
  return { stored: [...plan.stored.slice(0, F + 1), ...(rest ?? []).map((c) => c.stored)] };
}

/** The state before the chunk pass: the warm-up's reference sums, no errors yet. */
function emptyCommitOf(s: OnlinePass): OnlineCommit {
  return {
    version: STATE_VERSION,
    t: -1,
    checkpoints: s.checkpoints,
    modeSums: s.sums,
    refs: s.refs.map((r) => Array.from(r)),
    errors: [],
    tensorErrors: [],
    modeCount: [],
    r2Sum: [],
    bytesRead: 0,
  };
}
