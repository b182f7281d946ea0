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
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import type { CarriedTensor, ModelledTensor } from '../checkpoints/parameter-space.ts';
import { InputError } from '../errors.ts';
import { DTYPES, type DType } from '../formats/dtype.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import type { ModeSums } from './kernel.ts';

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

const int = z.number().int().nonnegative();
const finite = z.number().refine(Number.isFinite, 'must be a finite number');
const dtype = z.string().refine((d) => d in DTYPES, 'must be a dtype') as unknown as z.ZodType<DType>;
const MetaSchema = z.object({
  version: z.literal(STATE_VERSION),
  warmup: int,
  N: int,
  M: z.number().int().positive(),
  K: z.number().int().positive(),
  chunkSize: z.number().int().positive(),
  modeBytes: z.union([z.literal(1), z.literal(2)]),
  float64: z.boolean(),
  source: z.object({ dir: z.string(), format: z.string() }),
  tensors: z.array(z.object({ name: z.string(), shape: z.array(int), dtype, offset: int, count: int })),
  carried: z.array(z.object({ name: z.string(), shape: z.array(int), dtype, reason: z.enum(['scalar', 'integer', 'bool', 'excluded', 'empty']) })),
  refIndex: z.array(int),
  sampleIndex: z.array(int),
  metadata: z.record(z.string(), z.string()),
  modesRequested: z.number().int().positive(),
  samplesRequested: int,
  sampling: z.enum(['U_B', 'U', 'file']),
  seed: z.number().int().nullable(),
  modes: z.array(z.object({ sampledCount: int, reference: z.object({ tensor: z.string(), element: int, index: int }) })),
});
const ErrSums = z.object({ errSq: finite, normSq: finite });
const CommitSchema = z.object({
  version: z.literal(STATE_VERSION),
  t: int,
  checkpoints: z.array(z.object({ index: int, step: z.number().int(), name: z.string(), bytes: int })),
  modeSums: z.object({ n: int, shift: z.array(finite), R1: z.array(finite), R2: z.array(finite) }),
  refs: z.array(z.array(finite)),
  errors: z.array(ErrSums),
  tensorErrors: z.array(ErrSums),
  modeCount: z.array(int),
  r2Sum: z.array(z.number()),
  bytesRead: int,
});

/** Parses and validates a state JSON file; undefined when it does not exist, an InputError naming it when it is bad. */
async function readJson<T>(file: string, schema: z.ZodType<T>): Promise<T | undefined> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new InputError(file, `cannot read the online state (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'bad-state');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new InputError(file, `online state file is not JSON (${(e as Error).message}); start over with --force`, 'bad-state');
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new InputError(file, `is not a valid online state file: ${issue.message} at ${issue.path.join('.') || '(root)'}; start over with --force`, 'bad-state');
  }
  return parsed.data;
}

/** The sizes the two files must agree on (a state edited or mixed from two runs is refused). */
function checkConsistent(dir: string, meta: OnlineMeta, commit: OnlineCommit): void {
  const bad = (file: string, why: string) => new InputError(path.join(dir, file), `online state is inconsistent: ${why}; start over with --force`, 'bad-state');
  const last = meta.tensors[meta.tensors.length - 1];
  if ((last ? last.offset + last.count : 0) !== meta.N) throw bad(META_FILE, `tensors cover ${last ? last.offset + last.count : 0} parameters, N is ${meta.N}`);
  if (meta.refIndex.length !== meta.M || meta.modes.length !== meta.M) throw bad(META_FILE, `${meta.refIndex.length} references for M = ${meta.M}`);
  if (meta.refIndex.some((g) => g >= meta.N) || meta.sampleIndex.some((g) => g >= meta.N)) throw bad(META_FILE, 'an index lies outside the parameters');
  if (commit.checkpoints.length !== commit.t + 1 || commit.refs.length !== commit.t + 1 || commit.errors.length !== commit.t + 1) throw bad(COMMIT_FILE, `t = ${commit.t} but ${commit.checkpoints.length} checkpoints, ${commit.refs.length} reference rows, ${commit.errors.length} errors`);
  if (commit.t < meta.warmup) throw bad(COMMIT_FILE, `t = ${commit.t} is before the warm-up end ${meta.warmup}`);
  if (commit.refs.some((r) => r.length !== meta.M) || commit.modeCount.length !== meta.M || commit.r2Sum.length !== meta.M || commit.modeSums.shift.length !== meta.M) throw bad(COMMIT_FILE, `per-mode arrays do not have M = ${meta.M} entries`);
  if (commit.tensorErrors.length !== meta.tensors.length) throw bad(COMMIT_FILE, `${commit.tensorErrors.length} tensor error sums for ${meta.tensors.length} tensors`);
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
  const meta = await readJson<OnlineMeta>(path.join(dir, META_FILE), MetaSchema as unknown as z.ZodType<OnlineMeta>);
  const commit = await readJson<OnlineCommit>(path.join(dir, COMMIT_FILE), CommitSchema as unknown as z.ZodType<OnlineCommit>);
  if (!meta || !commit) return undefined;
  checkConsistent(dir, meta, commit);
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
