/**
 * What a decomposition was computed from, so a later command can tell whether an existing model
 * belongs to the checkpoints and options in front of it (docs/architecture.md, "Reuse and
 * provenance"). Counting samples or comparing names and sizes is not enough: a checkpoint
 * rewritten with other values at the same size, or another samples file of the same length,
 * must not reuse the model. So the key holds, per checkpoint, a hash of the values at the
 * model's sampled parameters, re-read from the file.
 */
import { createHash } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import { modelledTensors, type CheckpointSet, type LoadOptions } from '../checkpoints/checkpoint-set.ts';
import { tensorIndexOf } from '../checkpoints/parameter-space.ts';
import { ElementReader } from '../trajectory/element-reader.ts';
import { sampledValuesHash } from '../trajectory/sampled-values.ts';
import { prefetchValues } from '../trajectory/remote-bytes.ts';
import { planTrajectory } from '../trajectory/plan-trajectory.ts';
import { remoteClient } from '../remote/http-range.ts';
import { isRemote } from '../remote/url.ts';

export interface CheckpointKey {
  name: string;
  bytes: number;
  /** Latest modification time of the checkpoint's files (run-info.json only, never the report). */
  mtimeMs: number;
  /** sha256 of the float64 values of the model's sampled parameters in this checkpoint. */
  sampledValues: string;
}

/** Every input of a decomposition. Equal keys ⇒ the same model would be computed. */
export interface DecompositionKey {
  variant: 'post-hoc' | 'online';
  modesRequested: number;
  /** Requested K and seed (null when a samples file fixes the samples). */
  samplesRequested: number | null;
  seed: number | null;
  /** sha256 of the samples file's pairs, when one was given. */
  samplesFile: string | null;
  warmup: number | null;
  skipNonfinite: boolean;
  /** Which checkpoints and tensors were selected (globs, step range, order, exclusions, format). */
  selection: Record<string, unknown>;
  /** sha256 of the tensor table (flat .npy checkpoints), when one was given. */
  tensorTable: string | null;
  checkpoints: CheckpointKey[];
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export { fileSha256 } from '../io/file-sha256.ts';

/**
 * Per checkpoint of `set`: sha256 of the values at the global indices `sampleIndex`
 * ({@link sampledValuesHash}). `known[i]`, when given, is checkpoint i's hash already computed
 * from the same values (pass 1 of the run that made the model): it is not read again.
 */
export function sampledValueHashes(set: CheckpointSet, sampleIndex: readonly number[], known: readonly (string | undefined)[] = []): string[] {
  const io = new ElementReader();
  const values = new Float64Array(sampleIndex.length);
  const where = sampleIndex.map((g) => {
    const ti = tensorIndexOf(set.space, g);
    return { ti, element: g - set.space.tensors[ti].offset };
  });
  try {
    return set.checkpoints.map((c, i) => {
      if (known[i] !== undefined) return known[i];
      const stored = modelledTensors(set, c);
      where.forEach((w, j) => (values[j] = io.readOne(stored[w.ti], w.element)));
      return sampledValuesHash(values);
    });
  } finally {
    io.close();
  }
}

async function latestMtime(files: readonly string[], fallback: string): Promise<number> {
  let t = 0;
  // A remote file's time is its Last-Modified header as the header read saw it (0 when none).
  for (const f of files.length ? files : [fallback]) t = Math.max(t, isRemote(f) ? (remoteClient().facts(f)?.mtimeMs ?? 0) : (await fsp.stat(f)).mtimeMs);
  return t;
}

export interface KeyRequest {
  variant: 'post-hoc' | 'online';
  modesRequested: number;
  samplesRequested: number | null;
  seed: number | null;
  samplesFrom?: [string, number][];
  warmup: number | null;
  skipNonfinite: boolean;
  load: LoadOptions;
}

/**
 * The key of decomposing `set` with `req`, for a model that sampled `sampleIndex`. `known`: the
 * sampled-value hashes a run computed in its pass 1 (by checkpoint index; see
 * {@link sampledValueHashes}).
 */
export async function decompositionKey(set: CheckpointSet, req: KeyRequest, sampleIndex: readonly number[], known: readonly (string | undefined)[] = []): Promise<DecompositionKey> {
  const missing = set.checkpoints.filter((_, i) => known[i] === undefined).length;
  // Remote checkpoints: pass 1 fetched these values already, unless the key covers more.
  if (missing > 0) await prefetchValues(planTrajectory(set), sampleIndex, 0, set.checkpoints.length);
  const hashes = sampledValueHashes(set, sampleIndex, known);
  const checkpoints: CheckpointKey[] = [];
  for (const [i, c] of set.checkpoints.entries()) {
    checkpoints.push({ name: c.name, bytes: c.bytes, mtimeMs: await latestMtime(c.contents.files ?? [], c.entry), sampledValues: hashes[i] });
  }
  const { tensorTable, ...selection } = req.load;
  return {
    variant: req.variant,
    modesRequested: req.modesRequested,
    samplesRequested: req.samplesFrom ? null : req.samplesRequested,
    seed: req.samplesFrom ? null : req.seed,
    samplesFile: req.samplesFrom ? sha256(JSON.stringify(req.samplesFrom)) : null,
    warmup: req.variant === 'online' ? req.warmup : null,
    skipNonfinite: req.skipNonfinite,
    selection: normalSelection(selection),
    tensorTable: tensorTable ? sha256(JSON.stringify(tensorTable)) : null,
    checkpoints,
  };
}

/** The selection with its defaults spelled out, so the library's `{}` and the CLI's flags agree. */
function normalSelection(sel: Omit<LoadOptions, 'tensorTable'>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(sel)) {
    if (v === undefined || (Array.isArray(v) && v.length === 0)) continue;
    if ((k === 'orderBy' && v === 'name') || (k === 'every' && v === 1) || k === 'minCheckpoints') continue;
    out[k] = v;
  }
  return out;
}

/** The content part of a key (no mtimes) as one hash: the report's `provenance.inputs`. */
export function inputsHash(key: DecompositionKey): string {
  return sha256(JSON.stringify({ ...key, checkpoints: key.checkpoints.map(({ mtimeMs: _, ...c }) => c) }));
}

/** Why `have` (recorded) and `want` (now) differ, in words; undefined when they are equal. */
export function keyDifference(have: DecompositionKey, want: DecompositionKey): string | undefined {
  const fields: [keyof DecompositionKey, string][] = [
    ['variant', 'variant'],
    ['modesRequested', 'modes (M)'],
    ['samplesRequested', 'samples (K)'],
    ['seed', 'seed'],
    ['samplesFile', 'samples file content'],
    ['warmup', 'warm-up'],
    ['skipNonfinite', '--skip-nonfinite'],
    ['selection', 'checkpoint/tensor selection'],
    ['tensorTable', 'tensor table'],
  ];
  const show = (v: unknown) => (typeof v === 'string' && v.length === 64 ? `${v.slice(0, 12)}…` : JSON.stringify(v));
  for (const [k, label] of fields) {
    if (JSON.stringify(have[k]) !== JSON.stringify(want[k])) return `${label} differs (${show(have[k])} recorded, ${show(want[k])} now)`;
  }
  if (have.checkpoints.length !== want.checkpoints.length) return `the model covers ${have.checkpoints.length} checkpoints, the folder has ${want.checkpoints.length} selected`;
  for (let i = 0; i < have.checkpoints.length; i++) {
    const h = have.checkpoints[i];
    const w = want.checkpoints[i];
    if (h.name !== w.name) return `checkpoint ${i} is ${w.name}, the model was fitted on ${h.name}`;
    if (h.bytes !== w.bytes) return `checkpoint ${w.name} has ${w.bytes} bytes, ${h.bytes} when the model was fitted`;
    if (h.sampledValues !== w.sampledValues) return `checkpoint ${w.name} holds other values than when the model was fitted`;
    if (h.mtimeMs !== w.mtimeMs) return `checkpoint ${w.name} was modified after the model was fitted`;
  }
  return undefined;
}
