/**
 * The plan of a sharded run (docs/scale-out.md): pass 1 and the clustering, done once, plus
 * everything a shard task needs to fit its chunks and `cmd merge` needs to write analyze's
 * outputs — the checkpoint list with the hashes of their sampled values, every option that
 * affects the result, the tool version, the kernel, the chunks and their assignment to shards.
 * Its content hash ties shard files to it.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { LoadOptions } from '../checkpoints/checkpoint-set.ts';
import type { Heatmap } from '../core/heatmap.ts';
import type { SampleModes } from '../core/modes.ts';
import { prepareReferences } from '../core/fit.ts';
import { InputError } from '../errors.ts';
import type { AnalyzeOptions, Clustering, Decomposition } from '../pipeline/analyze.ts';
import { TOOL_NAME, TOOL_VERSION } from '../version.ts';
import { decodeExact, encodeExact } from './codec.ts';
import type { OnlinePass } from '../online/engine.ts';

export const PLAN_DIR = 'plan';
export const PLAN_FILE = 'plan.json';
export const SHARDS_DIR = 'shards';
const PLAN_FORMAT = 'cmd-plan/2';

/** The pipeline options a plan fixes (no threads, signal or progress: those are per process). */
export type PlannedOptions = Omit<AnalyzeOptions, 'workers' | 'signal' | 'progress' | 'onNote'> & { chunkSize: number };

/**
 * The run layer's decomposition key (src/run/provenance.ts), kept opaque here but for the
 * checkpoint list: the plan sits below the run layer and does not import from it.
 */
export interface PlannedKey {
  checkpoints: { name: string; bytes: number; mtimeMs: number; sampledValues: string }[];
  [field: string]: unknown;
}

export interface PlanBody {
  format: typeof PLAN_FORMAT;
  tool: string;
  /** The kernels the plan was made with: sums over parameters agree only to rounding across kinds. */
  kernel: 'wasm' | 'js';
  /** The checkpoint folder (absolute) and how its checkpoints were selected. */
  dir: string;
  load: LoadOptions;
  options: PlannedOptions;
  /** What report.json states about how the samples were asked for. */
  report: { seed: number | null; samplesRequested: number };
  /** Names, sizes, mtimes and sampled-value hashes of the checkpoints (src/run/provenance.ts). */
  key: PlannedKey;
  chunks: number;
  /** Shard s fits chunks [ranges[s][0], ranges[s][1]), global parameters [parameters[s][0], parameters[s][1]). */
  shards: { n: number; ranges: [number, number][]; parameters: [number, number][] };
  /**
   * `sampleChecks[s][t]`: sha256 of checkpoint t's values at the sampled parameters inside shard
   * s's parameter range (src/run/provenance.ts sampledValueHashes of that subset). A shard task
   * re-reads only those (docs/scale-out.md, "Checkpoints changed after planning").
   */
  sampleChecks: string[][];
  decomposition: {
    indices: Float64Array;
    sampling: Decomposition['sampling'];
    K: number;
    clusterings: { modesRequested: number; M: number; sampleModes: SampleModes; refIndex: number[]; refs: Float64Array }[];
    heatmap: Heatmap;
    bytesRead: number;
  };
  /**
   * An `--online` plan: the warm-up decomposition and the reference sums and fits of every
   * later checkpoint (src/online/engine.ts OnlinePass); its shards run the online chunk tasks.
   * `decomposition.clusterings` is then empty.
   */
  online?: OnlinePass;
}

export interface Plan {
  body: PlanBody;
  /** sha256 of the plan file's bytes. */
  hash: string;
  /** The run's output folder (the plan lives in its `plan/`). */
  out: string;
}

/**
 * The global parameter range [g0, g1) of each shard's chunks. Chunks cover the parameter space
 * in order (src/pipeline/chunks.ts), so a contiguous chunk range is one interval.
 */
export function shardParameters(chunkCounts: readonly number[], ranges: readonly [number, number][]): [number, number][] {
  const starts = [0];
  for (const c of chunkCounts) starts.push(starts[starts.length - 1] + c);
  return ranges.map(([c0, c1]) => [starts[c0], starts[c1]]);
}

/** The sampled global indices inside [g0, g1), in sample order. */
export function samplesWithin(indices: ArrayLike<number>, [g0, g1]: [number, number]): number[] {
  const mine: number[] = [];
  for (let j = 0; j < indices.length; j++) if (indices[j] >= g0 && indices[j] < g1) mine.push(indices[j]);
  return mine;
}

/** Contiguous, balanced ranges: shard s gets chunks ⌊s·C/n⌋ … ⌊(s+1)·C/n⌋ − 1 (empty when C < n). */
export function assignChunks(chunks: number, n: number): [number, number][] {
  return Array.from({ length: n }, (_, s) => [Math.floor((s * chunks) / n), Math.floor(((s + 1) * chunks) / n)] as [number, number]);
}

export function planDecomposition(d: Omit<Decomposition, 'timings'>): PlanBody['decomposition'] {
  return {
    indices: d.indices,
    sampling: d.sampling,
    K: d.K,
    clusterings: d.clusterings.map((c) => ({ modesRequested: c.modesRequested, M: c.M, sampleModes: c.sampleModes, refIndex: c.refIndex, refs: c.refs })),
    heatmap: d.heatmap,
    bytesRead: d.bytesRead,
  };
}

/** The decomposition back from a plan: the reference statistics are recomputed from the exact refs. */
export function decompositionOf(body: PlanBody): Decomposition {
  const d = body.decomposition;
  const T = body.options.window ? body.options.window.to - body.options.window.from : body.key.checkpoints.length;
  const clusterings: Clustering[] = d.clusterings.map((c) => ({ ...c, stats: prepareReferences(c.refs, c.M, T) }));
  return { indices: d.indices, sampling: d.sampling, K: d.K, clusterings, heatmap: d.heatmap, bytesRead: d.bytesRead, timings: {} };
}

export function planText(body: PlanBody): string {
  return encodeExact(body);
}

export function planHash(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function newPlanBody(fields: Omit<PlanBody, 'format' | 'tool'>): PlanBody {
  return { format: PLAN_FORMAT, tool: `${TOOL_NAME} ${TOOL_VERSION}`, ...fields };
}

/** Reads `<out>/plan/plan.json`; a missing or foreign file is an InputError naming it. */
export async function readPlan(out: string): Promise<Plan> {
  const file = path.join(out, PLAN_DIR, PLAN_FILE);
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new InputError(file, `cannot read the plan (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); make one with cmd analyze <dir> -o ${out} --plan-only --shards n`, 'no-plan');
  }
  let body: PlanBody;
  try {
    body = decodeExact<PlanBody>(text);
  } catch (e) {
    throw new InputError(file, `is not a cmd plan (${(e as Error).message})`, 'bad-plan');
  }
  if ((body?.format as string) === 'cmd-plan/1') throw new InputError(file, 'was made by an older cmd (format cmd-plan/1): make the plan again', 'plan-version');
  if (body?.format !== PLAN_FORMAT) throw new InputError(file, `is not a cmd plan (format ${JSON.stringify(body?.format)})`, 'bad-plan');
  const tool = `${TOOL_NAME} ${TOOL_VERSION}`;
  if (body.tool !== tool) throw new InputError(file, `was made by ${body.tool}, this is ${tool}: make the plan again`, 'plan-version');
  return { body, hash: planHash(text), out };
}
