/**
 * Post-hoc CMD over a checkpoint set, streaming: pass 1 reads only the K sampled
 * trajectories and clusters them; pass 2 streams parameter chunks through worker threads to
 * assign, fit and measure, writing a/b/mode straight into the model file. Never holds N × T.
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { globalIndex, locate } from '../checkpoints/parameter-space.ts';
import { absCorrelation, rowDistances, splitRowsByPairs, condensedLength } from '../core/correlation.ts';
import { drawSamples, sampleShortfallNote } from '../core/sampling.ts';
import { linkageComplete } from '../core/linkage.ts';
import { fclusterMaxclust } from '../core/fcluster.ts';
import { numberModes, pickReferences } from '../core/modes.ts';
import { corrHeatmap, type Heatmap } from '../core/heatmap.ts';
import { createAccumulators, mergeAccumulators, prepareReferences, type FitAccumulators } from '../core/fit.ts';
import { encodeFloats } from '../formats/dtype.ts';
import { CancelledError, InputError, UsageError } from '../errors.ts';
import { TrajectoryReader } from '../trajectory/trajectory-reader.ts';
import { planTrajectory } from '../trajectory/plan-trajectory.ts';
import { prefetchValues } from '../trajectory/remote-bytes.ts';
import { isRemote } from '../remote/url.ts';
import { chunkElements, planChunks, type Chunk } from './chunks.ts';
import { createModelFile, MODEL_FILE, planModelFile, SWEEP_DIR, sweepModelName, syncFile, writeAtPosition } from './model-file.ts';
import { createPool, defaultWorkerCount, runAll, type WorkerPool } from './pool.ts';
import type { FitResult, FitTask, HashTask, ModelTarget, PoolData } from './worker.ts';
import { TOOL_NAME, TOOL_VERSION } from '../version.ts';
import { createBaselineAccumulators, finalizeBaselines, mergeBaselineAccumulators, type BaselineResults } from '../baselines/index.ts';
import { addPieceErrors, relativeError } from './merge-errors.ts';
import { windowValueHashes } from '../trajectory/sampled-values.ts';

export interface ProgressSink {
  start(stage: string, total: number): void;
  advance(n: number): void;
  stop(): void;
}

export interface AnalyzeOptions {
  /** M, the number of modes asked for (fewer may result: scipy maxclust on tied heights). */
  modes: number;
  /** More mode counts fitted in the same pass (a sweep); their models go to `sweep/`. */
  sweepModes?: number[];
  /** K, the number of sampled parameters (the sampling may give fewer: see `samplesRequested`). */
  samples: number;
  /** K as the user asked for it, before any cap (default: `samples`); a shortfall goes to `onNote`. */
  samplesRequested?: number;
  /** Called with one line when the run departs from what was asked (e.g. fewer samples than requested). */
  onNote?: (line: string) => void;
  seed: number;
  /** Use these samples ([tensor, element] pairs, in order) instead of drawing them. */
  samplesFrom?: [string, number][];
  workers?: number;
  /** Elements per pass-2 chunk (default: ~32 MB of float32 trajectories). */
  chunkSize?: number;
  /** Leave parameters with a NaN/±Inf value out of the model (carried as-is) instead of failing. */
  skipNonFinite?: boolean;
  /** Baselines computed in the same pass: which, the last-k average's k and the EMA's β. */
  baselines?: { kinds: BaselineKind[]; lastK: number; beta: number };
  /** Checkpoint positions [from, to) to fit on (default: all). */
  window?: { from: number; to: number };
  signal?: AbortSignal;
  progress?: ProgressSink;
}

export interface ModeSummary {
  mode: number;
  sampledCount: number;
  assignedCount: number;
  reference: { tensor: string; element: number; index: number };
  meanR2: number | null;
}

/** One fitted CMD model: its modes and how well it reconstructs the trajectory. */
export interface ModelSummary {
  modesRequested: number;
  modes: ModeSummary[];
  /** M' × T reference trajectories (float32 values). */
  refs: Float32Array;
  /** Per checkpoint of the window, ‖W_t − Ŵ_t‖ / ‖W_t‖. */
  checkpointErrors: number[];
  tensorErrors: { name: string; parameters: number; relativeError: number }[];
  modelPath: string;
  modelBytes: number;
}

export type BaselineKind = 'avg-last-k' | 'ema' | 'pca' | 'dmd';

export interface AnalysisResult extends ModelSummary {
  /** Parameters left out of the model by --skip-nonfinite (their mode is the sentinel 255 / 65535). */
  skippedNonFinite?: number;
  /** Baseline results (when asked for), from the same pass over the data. */
  baselines?: { kinds: BaselineKind[]; results: BaselineResults };
  /** The extra models of a mode sweep (`--modes 2,5,10,20`), fitted in the same pass. */
  sweep: ModelSummary[];
  sampleIndices: Float64Array;
  sampling: 'U_B' | 'U' | 'file';
  window: { from: number; to: number };
  /** Per checkpoint of the window, the hash of its sampled values ({@link Decomposition.windowValueHashes}). */
  windowValueHashes?: string[];
  /** The sampled |corr| matrix reordered by mode, block-averaged to ≤ 256 × 256. */
  heatmap: Heatmap;
  timings: Record<string, number>;
  bytesRead: number;
  /** Remote checkpoints: bytes received over HTTP by pass 1 and pass 2. */
  bytesFetched?: { pass1: number; pass2: number };
  workers: number;
  /**
   * sha256 of the (primary) model file, being computed on a worker thread while the caller
   * writes the other outputs (the pool closes once it is done). Absent from merged results.
   */
  modelSha256?: Promise<string>;
}

const noProgress: ProgressSink = { start() {}, advance() {}, stop() {} };

function checkAbort(signal?: AbortSignal): void {
  if (signal?.aborted) throw new CancelledError();
}

/** Validates M and K against each other and the data, per the method's limits. */
export function validateSizes(N: number, T: number, K: number, M: number): void {
  if (T < 3) throw new UsageError(`CMD needs at least 3 checkpoints in the window, got ${T}`);
  if (!Number.isInteger(K) || K < 2) throw new UsageError(`--samples must be at least 2, got ${K}`);
  if (K > N) throw new UsageError(`--samples ${K} exceeds the ${N} modelled parameters`);
  if (!Number.isInteger(M) || M < 1 || M > Math.min(K, 65535)) throw new UsageError(`--modes must be between 1 and min(K, 65535) = ${Math.min(K, 65535)}, got ${M}`);
}

function resolveSamples(set: CheckpointSet, options: AnalyzeOptions): { indices: Float64Array; sampling: 'U_B' | 'U' | 'file' } {
  if (options.samplesFrom) {
    const indices = new Float64Array(options.samplesFrom.length);
    const seen = new Set<number>();
    options.samplesFrom.forEach(([tensor, element], j) => {
      const g = globalIndex(set.space, tensor, element);
      if (g === undefined) throw new UsageError(`--samples-from: sample ${j} [${JSON.stringify(tensor)}, ${element}] is not a modelled parameter`);
      if (seen.has(g)) throw new UsageError(`--samples-from: sample ${j} [${JSON.stringify(tensor)}, ${element}] is listed twice`);
      seen.add(g);
      indices[j] = g;
    });
    return { indices, sampling: 'file' };
  }
  const draw = drawSamples({ layerSizes: set.space.tensors.map((t) => t.count), k: options.samples, seed: options.seed });
  return { indices: draw.indices, sampling: draw.scheme };
}

function nonFiniteError(set: CheckpointSet, checkpoint: number, tensorName: string, element: number, value: number): InputError {
  const c = set.checkpoints[checkpoint];
  return new InputError(c.path, `tensor ${tensorName} element ${element} is ${value} (non-finite) at step ${c.step}`, 'non-finite');
}

/**
 * From this K on, the distances run on the worker pool; below it one thread is faster. (K = 1,000
 * on the run's two fresh workers took as long as on the main thread: their first call runs
 * unoptimized WebAssembly; docs/performance.md.)
 */
const PARALLEL_DISTANCES_MIN_K = 2000;

async function distances(A: Float64Array, K: number, pool: WorkerPool | undefined): Promise<Float64Array> {
  if (!pool || K < PARALLEL_DISTANCES_MIN_K) return rowDistances(A, K);
  // The caller puts A on a SharedArrayBuffer for this case (K = 10,000: 800 MB); copy only if not.
  let shared = A;
  if (!(A.buffer instanceof SharedArrayBuffer)) {
    shared = new Float64Array(new SharedArrayBuffer(A.byteLength));
    shared.set(A);
  }
  const out = new Float64Array(new SharedArrayBuffer(condensedLength(K) * 8));
  const bounds = splitRowsByPairs(K, pool.threads * 4);
  await runAll(pool, bounds.length - 1, (i) => ({ kind: 'distances', A: shared, K, i0: bounds[i], i1: bounds[i + 1], out }));
  return out;
}

function now(): number {
  return performance.now();
}

/** Pass 1 and the clustering: the samples, and the modes for each mode count asked for. */
export interface Decomposition {
  indices: Float64Array;
  sampling: 'U_B' | 'U' | 'file';
  /** Samples kept (fewer than drawn when --skip-nonfinite dropped some). */
  K: number;
  /** One per mode count: `options.modes` first, then the other sweep values. */
  clusterings: Clustering[];
  heatmap: Heatmap;
  bytesRead: number;
  /** Bytes received over HTTP for pass 1 (0 or absent for local checkpoints: plans are local). */
  bytesFetched?: number;
  timings: Record<string, number>;
  /**
   * Per checkpoint of the window, the hash of its values at the kept samples (what the provenance
   * key records, src/trajectory/sampled-values.ts), so the key needs no second read of them.
   * Absent when the decomposition was not read here (a plan's, at merge).
   */
  windowValueHashes?: string[];
  /** Pass 1's values, X[j·T + t] over the window (absent, like the hashes, for a plan's decomposition). */
  sampleValues?: Float64Array;
}

/**
 * Pass 1 (the K sampled trajectories over the window) and the clustering (|corr| → distances →
 * complete linkage → maxclust → references). `pool` runs the distances when K is large.
 */
export async function decompose(set: CheckpointSet, options: AnalyzeOptions, pool?: WorkerPool): Promise<Decomposition> {
  const progress = options.progress ?? noProgress;
  const timings: Record<string, number> = {};
  const window = options.window ?? { from: 0, to: set.checkpoints.length };
  const T = window.to - window.from;
  const N = set.space.total;
  const resolved = resolveSamples(set, options);
  let indices = resolved.indices;
  const sampling = resolved.sampling;
  let K = indices.length;
  if (sampling !== 'file') {
    const note = sampleShortfallNote(options.samplesRequested ?? options.samples, K, N, sampling);
    if (note) options.onNote?.(note);
  }
  validateSizes(N, T, K, options.modes);
  const reader = new TrajectoryReader(planTrajectory(set));
  try {
    // Pass 1: the K sampled trajectories only (remote checkpoints: fetched first by Range requests).
    let t0 = now();
    const bytesFetched = await prefetchValues(reader.plan, indices, window.from, window.to, options.signal);
    let X = new Float64Array(K * T);
    reader.readParameters(indices, X, window.from, window.to);
    const keep: number[] = [];
    for (let j = 0; j < K; j++) {
      let finite = true;
      for (let t = 0; t < T; t++) {
        const v = X[j * T + t];
        if (!Number.isFinite(v)) {
          if (!options.skipNonFinite) {
            const loc = locate(set.space, indices[j]);
            throw nonFiniteError(set, window.from + t, loc.tensor, loc.element, v);
          }
          finite = false;
        }
      }
      if (finite) keep.push(j);
    }
    if (keep.length < K) {
      // --skip-nonfinite: a sampled parameter with NaN/±Inf is dropped from the sample.
      indices = Float64Array.from(keep, (j) => indices[j]);
      X = Float64Array.from({ length: keep.length * T }, (_, q) => X[keep[Math.floor(q / T)] * T + (q % T)]);
      K = keep.length;
      validateSizes(N, T, K, options.modes);
    }
    const windowHashes = windowValueHashes(X, K, T);
    timings.readSamples = now() - t0;
    checkAbort(options.signal);

    // Cluster: |corr| → distances between its rows → complete linkage → maxclust.
    t0 = now();
    progress.start('cluster', 4);
    const parallel = pool !== undefined && pool.threads > 1 && K >= PARALLEL_DISTANCES_MIN_K;
    const A = absCorrelation(X, K, T, parallel ? new Float64Array(new SharedArrayBuffer(K * K * 8)) : undefined);
    progress.advance(1);
    const D = await distances(A, K, parallel ? pool : undefined);
    progress.advance(1);
    checkAbort(options.signal);
    const Z = linkageComplete(D, K, { overwrite: true });
    const modeCounts = [options.modes, ...(options.sweepModes ?? []).filter((m) => m !== options.modes)];
    for (const m of modeCounts) validateSizes(N, T, K, m);
    const clusterings = modeCounts.map((m) => clusterModes(A, K, T, X, Z, m, indices));
    const heatmap = corrHeatmap(A, K, clusterings[0].sampleModes.members);
    progress.advance(2);
    progress.stop();
    timings.cluster = now() - t0;
    return { indices, sampling, K, clusterings, heatmap, bytesRead: reader.bytesRead, bytesFetched, timings, windowValueHashes: windowHashes, sampleValues: X };
  } finally {
    progress.stop();
    reader.close();
  }
}

/** From this K on, the clustering's distances want worker threads (see {@link decompose}). */
export function distancesWantPool(K: number, threads: number): boolean {
  return threads > 1 && K >= PARALLEL_DISTANCES_MIN_K;
}

/** A model being written: its pass-2 target and the clustering it comes from. */
export type ModelFile = ModelTarget & { clustering: Clustering };

/**
 * Creates the pre-sized model files of a decomposition in `outDir` (the primary, then the sweep's)
 * and writes refs and indices; pass 2 (or `cmd merge`, docs/scale-out.md) fills a, b and mode.
 */
export async function createModelFiles(set: CheckpointSet, outDir: string, options: AnalyzeOptions, d: Pick<Decomposition, 'indices' | 'sampling' | 'K' | 'clusterings'>): Promise<ModelFile[]> {
  const window = options.window ?? { from: 0, to: set.checkpoints.length };
  const T = window.to - window.from;
  const targets: ModelFile[] = [];
  for (const [k, c] of d.clusterings.entries()) {
    const modelPath = k === 0 ? path.join(outDir, MODEL_FILE) : path.join(outDir, SWEEP_DIR, sweepModelName(c.modesRequested));
    if (k === 1) await fsp.mkdir(path.join(outDir, SWEEP_DIR));
    const metadata = modelMetadata(set, { ...options, modes: c.modesRequested }, { M: c.M, K: d.K, sampling: d.sampling, window, refIndex: c.refIndex, indices: d.indices });
    const layout = planModelFile(set.space.tensors, c.M, T, d.K, metadata, options.skipNonFinite);
    await createModelFile(modelPath, layout);
    await writeAtPosition(modelPath, layout.position('refs'), encodeFloats('F32', c.refs));
    await writeAtPosition(modelPath, layout.position('reference_index'), encodeFloats('I64', c.refIndex));
    await writeAtPosition(modelPath, layout.position('sample_index'), encodeFloats('I64', d.indices));
    targets.push({ stats: c.stats, modelPath, modeBytes: layout.modeDtype === 'U8' ? 1 : 2, slots: layout.slots, clustering: c });
  }
  return targets;
}

/** Pass 2's chunks: they depend on the tensors, T and the chunk size only (src/pipeline/chunks.ts). */
export function passTwoChunks(set: CheckpointSet, options: AnalyzeOptions) {
  const window = options.window ?? { from: 0, to: set.checkpoints.length };
  return planChunks(set.space.tensors, options.chunkSize ?? chunkElements(window.to - window.from));
}

/** What the workers accumulate for the baselines, or undefined without --baselines. */
export function baselineTaskOf(options: AnalyzeOptions): FitTask['baselines'] {
  const kinds = options.baselines?.kinds ?? [];
  return kinds.length ? { lastK: options.baselines!.lastK, beta: options.baselines!.beta, gram: kinds.includes('pca') || kinds.includes('dmd') } : undefined;
}

/**
 * Fits chunks `[c0, c1)` on the pool, writing a, b and mode through `models`' slots; returns
 * their results in chunk order. `onChunk` runs after each chunk in completion order.
 */
export async function fitChunks(
  pool: WorkerPool,
  set: CheckpointSet,
  options: AnalyzeOptions,
  chunks: readonly Chunk[],
  range: { c0: number; c1: number },
  models: readonly ModelTarget[],
  onChunk?: (i: number) => void,
): Promise<FitResult[]> {
  const window = options.window ?? { from: 0, to: set.checkpoints.length };
  const baselineTask = baselineTaskOf(options);
  const taskModels: ModelTarget[] = models.map(({ stats, modelPath, modeBytes, slots }) => ({ stats, modelPath, modeBytes, slots }));
  return runAll<FitResult>(
    pool,
    range.c1 - range.c0,
    (i) => ({ kind: 'fit', chunk: chunks[range.c0 + i], from: window.from, to: window.to, models: taskModels, baselines: baselineTask, skipNonFinite: options.skipNonFinite }) satisfies FitTask,
    (i, r) => {
      if (r.remoteError) throw new InputError(r.remoteError.file, r.remoteError.message, r.remoteError.rule);
      if (r.nonFinite) {
        const nf = r.nonFinite;
        throw nonFiniteError(set, nf.checkpoint, set.space.tensors[nf.tensor].name, nf.element, nf.value);
      }
      options.progress?.advance(chunks[range.c0 + i].count);
      onChunk?.(range.c0 + i);
    },
  );
}

/**
 * Pass 2's totals, folded chunk by chunk in chunk order: the one merge of per-chunk results,
 * used by the in-process run and by `cmd merge` over shard files, so both add the same numbers
 * in the same order (docs/scale-out.md).
 */
export class ChunkTotals {
  private readonly models: { acc: FitAccumulators; perTensor: { errSq: number; normSq: number }[] }[];
  private readonly baselines?: ReturnType<typeof createBaselineAccumulators>;
  bytesRead = 0;
  /** Bytes pass 2 fetched over HTTP (remote inputs only). */
  bytesFetched = 0;
  skipped = 0;
  chunks = 0;

  constructor(set: CheckpointSet, clusterings: readonly Clustering[], T: number, baselineTask: FitTask['baselines']) {
    this.models = clusterings.map((c) => ({ acc: createAccumulators(c.M, T), perTensor: set.space.tensors.map(() => ({ errSq: 0, normSq: 0 })) }));
    if (baselineTask) this.baselines = createBaselineAccumulators(T, baselineTask);
  }

  /** Adds the next chunk's result (chunks must come in order). */
  add(r: FitResult): void {
    this.bytesRead += r.bytesRead;
    this.bytesFetched += r.bytesFetched ?? 0;
    this.skipped += r.skipped;
    this.chunks++;
    r.models.forEach((m, k) => {
      mergeAccumulators(this.models[k].acc, m.acc);
      addPieceErrors(this.models[k].perTensor, m.pieces);
    });
    if (this.baselines) mergeBaselineAccumulators(this.baselines, r.baselines!);
  }

  /** The analysis result once every chunk is in; `d` is the decomposition the models come from. */
  async finish(set: CheckpointSet, options: AnalyzeOptions, d: Decomposition, targets: readonly ModelFile[], workers: number, timings: Record<string, number>): Promise<AnalysisResult> {
    const window = options.window ?? { from: 0, to: set.checkpoints.length };
    const summaries: ModelSummary[] = [];
    for (const [k, target] of targets.entries()) summaries.push(await summarizeModel(set, target.clustering, target.modelPath, this.models[k]));
    const primary = summaries[0];
    let baselines: AnalysisResult['baselines'];
    if (this.baselines) {
      const kinds = options.baselines!.kinds;
      baselines = { kinds, results: finalizeBaselines(this.baselines, { modes: primary.modes.length, cmdBytes: primary.modelBytes }) };
    }
    return {
      ...primary,
      skippedNonFinite: this.skipped,
      baselines,
      sweep: summaries.slice(1),
      sampleIndices: d.indices,
      sampling: d.sampling,
      window,
      windowValueHashes: d.windowValueHashes,
      heatmap: d.heatmap,
      timings,
      bytesRead: d.bytesRead + this.bytesRead,
      bytesFetched: set.checkpoints.some((c) => c.contents.files.some(isRemote)) ? { pass1: d.bytesFetched ?? 0, pass2: this.bytesFetched } : undefined,
      workers,
    };
  }
}

/**
 * Runs post-hoc CMD and writes `cmd-model.safetensors` into `outDir` (a staging folder: the
 * caller makes it appear atomically). Returns the numbers the report is made of.
 */
export async function analyzeCheckpoints(set: CheckpointSet, outDir: string, options: AnalyzeOptions): Promise<AnalysisResult> {
  const progress = options.progress ?? noProgress;
  const window = options.window ?? { from: 0, to: set.checkpoints.length };
  const T = window.to - window.from;
  const N = set.space.total;
  const plan = planTrajectory(set);
  const float64 = set.space.tensors.some((t) => t.dtype === 'F64');
  const threads = Math.max(1, options.workers ?? defaultWorkerCount());
  const pool = createPool({ plan, float64 } satisfies PoolData, threads, options.signal);
  let modelSha256: Promise<string> | undefined;
  try {
    const d = await decompose(set, options, pool);
    // Model files, pre-sized; pass 2 fills a, b and mode by position.
    const targets = await createModelFiles(set, outDir, options, d);

    // Pass 2: every parameter, chunk by chunk, on the pool, all models at once. Results merge in chunk order.
    const t0 = now();
    const chunks = passTwoChunks(set, options);
    progress.start('fit', N);
    const results = await fitChunks(pool, set, { ...options, progress }, chunks, { c0: 0, c1: chunks.length }, targets);
    progress.stop();
    const timings = { ...d.timings, fit: now() - t0 };
    // The model is complete: a worker hashes it while this thread syncs it, sums up, and the
    // caller writes the report (docs/performance.md, "Outputs").
    modelSha256 = pool.run<string>({ kind: 'sha256', file: targets[0].modelPath } satisfies HashTask);
    for (const t of targets) await syncFile(t.modelPath);
    const totals = new ChunkTotals(set, d.clusterings, T, baselineTaskOf(options));
    for (const r of results) totals.add(r);
    return { ...(await totals.finish(set, options, d, targets, threads, timings)), modelSha256 };
  } finally {
    progress.stop();
    if (modelSha256) {
      // Closed once the hash is done, without holding up the caller; a failed hash is the
      // caller's to see (it awaits modelSha256).
      void modelSha256.then(pool.destroy, pool.destroy).catch(() => undefined);
    } else await pool.destroy();
  }
}

export interface Clustering {
  modesRequested: number;
  M: number;
  sampleModes: ReturnType<typeof numberModes>;
  refIndex: number[];
  refs: Float64Array;
  stats: ReturnType<typeof prepareReferences>;
}

/** Cuts the tree into at most `modes` clusters and picks their references (docs/method.md §5, §7). */
function clusterModes(A: Float64Array, K: number, T: number, X: Float64Array, Z: Float64Array, modes: number, indices: Float64Array): Clustering {
  const sampleModes = numberModes(fclusterMaxclust(Z, K, modes));
  const chosen = pickReferences(A, K, sampleModes.members);
  const M = sampleModes.count;
  const refIndex = Array.from(chosen.samplePosition, (p) => indices[p]);
  const refs = new Float64Array(M * T);
  for (let m = 0; m < M; m++) refs.set(X.subarray(chosen.samplePosition[m] * T, (chosen.samplePosition[m] + 1) * T), m * T);
  return { modesRequested: modes, M, sampleModes, refIndex, refs, stats: prepareReferences(refs, M, T) };
}

/** One model's summary from its totals (folded in chunk order by {@link ChunkTotals}). */
async function summarizeModel(set: CheckpointSet, c: Clustering, modelPath: string, totals: { acc: FitAccumulators; perTensor: { errSq: number; normSq: number }[] }): Promise<ModelSummary> {
  const { acc: total, perTensor } = totals;
  const modes: ModeSummary[] = Array.from({ length: c.M }, (_, m) => {
    const loc = locate(set.space, c.refIndex[m]);
    const count = total.modeCount[m];
    return {
      mode: m,
      sampledCount: c.sampleModes.members[m].length,
      assignedCount: count,
      reference: { tensor: loc.tensor, element: loc.element, index: c.refIndex[m] },
      meanR2: count > 0 ? total.r2Sum[m] / count : null,
    };
  });
  return {
    modesRequested: c.modesRequested,
    modes,
    refs: Float32Array.from(c.refs),
    checkpointErrors: Array.from(total.errSq, (e, t) => relativeError(e, total.normSq[t])),
    tensorErrors: set.space.tensors.map((t, k) => ({ name: t.name, parameters: t.count, relativeError: relativeError(perTensor[k].errSq, perTensor[k].normSq) })),
    modelPath,
    modelBytes: (await fsp.stat(modelPath)).size,
  };
}

export function modelMetadata(
  set: CheckpointSet,
  options: AnalyzeOptions,
  run: { M: number; K: number; sampling: string; window: { from: number; to: number }; refIndex: number[]; indices: Float64Array },
): Record<string, string> {
  const checkpoints = set.checkpoints.slice(run.window.from, run.window.to).map((c) => ({ index: c.index, step: c.step, name: c.name, bytes: c.bytes }));
  return {
    format: 'cmd-model',
    'cmd.version': `${TOOL_NAME} ${TOOL_VERSION}`,
    'cmd.source': JSON.stringify({ dir: set.dir, format: set.format }),
    'cmd.checkpoints': JSON.stringify(checkpoints),
    'cmd.tensors': JSON.stringify(set.space.tensors.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, offset: t.offset }))),
    'cmd.carried': JSON.stringify(set.space.carried.map((t) => ({ name: t.name, shape: t.shape, dtype: t.dtype, reason: t.reason }))),
    'cmd.params': JSON.stringify({
      variant: 'post-hoc',
      modesRequested: options.modes,
      modes: run.M,
      samplesRequested: options.samplesFrom ? run.K : options.samples,
      samples: run.K,
      sampling: run.sampling,
      seed: options.samplesFrom ? null : options.seed,
      window: run.window,
      ...(options.skipNonFinite ? { skipNonFinite: true } : {}),
    }),
    'cmd.references': JSON.stringify(run.refIndex.map((g) => {
      const l = locate(set.space, g);
      return [l.tensor, l.element];
    })),
  };
}
