/**
 * A validated, ordered set of checkpoints sharing one parameter space: the input of every
 * command. Every header is read and cross-checked here before any tensor data is touched,
 * so a bad 99th file fails in seconds.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError, UsageError } from '../errors.ts';
import { stripTfjsCounter } from '../formats/tfjs-codec.ts';
import type { CheckpointContents, FormatName, StoredTensor } from '../formats/types.ts';
import { discoverCheckpoints, filterSteps, orderBySteps, stepsFromNames, type CheckpointSource, type DiscoveredFolder, type DiscoverOptions, type IgnoredEntry, type OrderedSource, type StepFilter } from './discover.ts';
import { openCheckpoint, type OpenOptions } from './open-checkpoint.ts';
import { buildParameterSpace, type ParameterSpace, type SpaceOptions } from './parameter-space.ts';
import picomatch from 'picomatch';
import { resolveRemote, type RemoteInput } from '../remote/inputs.ts';
import { remoteClient } from '../remote/http-range.ts';
import { displayUrl, isRemote } from '../remote/url.ts';

export interface CheckpointInfo {
  index: number;
  step: number;
  name: string;
  /** What was opened (file, index.json, model.json or folder). */
  path: string;
  /** How the checkpoint is laid out on disk (a file, a folder of npy files, a tfjs model, …). */
  layout: CheckpointSource['layout'];
  /** The folder entry itself: the file, or the checkpoint's own folder. */
  entry: string;
  /** Total bytes of the checkpoint's files. */
  bytes: number;
  contents: CheckpointContents;
}

export interface CheckpointSet {
  dir: string;
  format: FormatName;
  checkpoints: CheckpointInfo[];
  space: ParameterSpace;
  ignored: IgnoredEntry[];
  /** Things worth telling the user once (e.g. tfjs names matched by position). */
  notes: string[];
}

export interface LoadOptions extends DiscoverOptions, StepFilter, SpaceOptions, OpenOptions {
  orderBy?: 'name' | 'metadata';
  /** Smallest number of checkpoints the caller can work with (CMD needs T ≥ 3). */
  minCheckpoints?: number;
}

const OPEN_CONCURRENCY = 16;

/**
 * `fn` over `items`, at most `limit` at a time. When several fail, the error of the first item
 * in folder order is thrown, so the one-line message does not depend on which read finished first.
 */
async function mapLimit<T, R>(items: T[], limit: number, fn: (item: T, i: number) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  const failed: { i: number; error: unknown }[] = [];
  let next = 0;
  const run = async () => {
    while (next < items.length && failed.length === 0) {
      const i = next++;
      try {
        out[i] = await fn(items[i], i);
      } catch (error) {
        failed.push({ i, error });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
  if (failed.length) throw failed.reduce((a, b) => (b.i < a.i ? b : a)).error;
  return out;
}

async function totalBytes(files: string[]): Promise<number> {
  let sum = 0;
  for (const f of files) sum += isRemote(f) ? (remoteClient().facts(f)?.size ?? 0) : (await fsp.stat(f)).size;
  return sum;
}

/** Remote checkpoints as discovery would have found them (one format: safetensors). */
async function discoverRemote(input: RemoteInput, options: DiscoverOptions): Promise<DiscoveredFolder> {
  const resolved = await resolveRemote(input);
  if (options.format && options.format !== 'safetensors') throw new UsageError(`--format ${options.format}: remote checkpoints are safetensors`);
  const include = options.include?.length ? picomatch(options.include, { dot: false }) : undefined;
  const exclude = options.exclude?.length ? picomatch(options.exclude, { dot: false }) : undefined;
  const sources: CheckpointSource[] = [];
  const ignored: IgnoredEntry[] = [];
  for (const c of resolved.checkpoints) {
    if (include && !include(c.name)) ignored.push({ name: c.name, reason: 'not matched by --include' });
    else if (exclude && exclude(c.name)) ignored.push({ name: c.name, reason: 'matched by --exclude' });
    else sources.push({ name: c.name, format: 'safetensors', path: c.url, layout: c.layout });
  }
  if (sources.length === 0) throw new InputError(resolved.label, 'no checkpoints left after --include/--exclude', 'empty-folder');
  return { dir: resolved.label, format: 'safetensors', sources, ignored };
}

const metadataStepKeys = ['global_step', 'step', 'epoch'];

async function stepFromMetadata(source: OrderedSource, contents: CheckpointContents): Promise<number | undefined> {
  if (source.trainerState) {
    try {
      const state = JSON.parse(await fsp.readFile(source.trainerState, 'utf8')) as { global_step?: unknown };
      if (typeof state.global_step === 'number') return state.global_step;
    } catch {
      throw new InputError(source.trainerState, 'is not valid JSON', 'bad-json');
    }
  }
  for (const key of metadataStepKeys) {
    const v = contents.metadata[key];
    if (v !== undefined && /^\s*\d+(\.\d+)?\s*$/.test(v)) return Number(v);
  }
  return undefined;
}

function describeShape(t: { shape: number[]; dtype: string }): string {
  return `[${t.shape.join(', ')}] ${t.dtype}`;
}

/**
 * Every checkpoint must carry the same tensors with the same shapes and dtypes as the
 * first. tfjs names that differ only by per-process layer counters are matched by position
 * when position, shape and dtype agree.
 */
function alignTensors(checkpoints: CheckpointInfo[], notes: string[]): void {
  const first = checkpoints[0];
  const ref = new Map(first.contents.tensors.map((t) => [t.name, t]));
  for (const c of checkpoints.slice(1)) {
    const names = new Set(c.contents.tensors.map((t) => t.name));
    const sameNames = names.size === ref.size && [...names].every((n) => ref.has(n));
    if (!sameNames && c.contents.format === 'tfjs' && c.contents.tensors.length === first.contents.tensors.length) {
      const byPosition = c.contents.tensors.every((t, i) => {
        const r = first.contents.tensors[i];
        return stripTfjsCounter(t.name) === stripTfjsCounter(r.name) && t.dtype === r.dtype && t.shape.join() === r.shape.join();
      });
      if (byPosition) {
        c.contents.tensors = c.contents.tensors.map((t, i) => ({ ...t, name: first.contents.tensors[i].name }));
        const note = 'tfjs weight names differ between checkpoints only by layer counters; matched them by position';
        if (!notes.includes(note)) notes.push(note);
        continue;
      }
    }
    for (const t of c.contents.tensors) {
      const r = ref.get(t.name);
      if (!r) throw new InputError(c.path, `tensor ${t.name} is not in the first checkpoint (${first.name})`, 'extra-tensor');
      if (r.dtype !== t.dtype || r.shape.join() !== t.shape.join()) {
        throw new InputError(c.path, `tensor ${t.name} is ${describeShape(t)} but ${describeShape(r)} in ${first.name}`, 'shape-mismatch');
      }
    }
    for (const name of ref.keys()) {
      if (!names.has(name)) throw new InputError(c.path, `tensor ${name} is missing (present in ${first.name})`, 'missing-tensor');
    }
  }
}

/**
 * Discovers, orders, filters and opens the checkpoints of `input` (a folder, or remote
 * checkpoints read by HTTP Range requests), and builds their parameter space.
 */
export async function loadCheckpointSet(input: string | RemoteInput, options: LoadOptions = {}): Promise<CheckpointSet> {
  const { orderBy = 'name', minCheckpoints = 3 } = options;
  const found = typeof input === 'string' ? await discoverCheckpoints(input, options) : await discoverRemote(input, options);
  const dir = typeof input === 'string' ? input : found.dir;
  let ordered: OrderedSource[];
  let contents: CheckpointContents[];
  if (orderBy === 'name') {
    ordered = filterSteps(stepsFromNames(found.sources, found.dir, options.stepPattern), options);
    contents = await mapLimit(ordered, OPEN_CONCURRENCY, (s) => openCheckpoint(s, options));
  } else {
    const all = found.sources.map((s) => ({ ...s, step: 0 }));
    const opened = await mapLimit(all, OPEN_CONCURRENCY, (s) => openCheckpoint(s, options));
    for (let i = 0; i < all.length; i++) {
      const step = await stepFromMetadata(all[i], opened[i]);
      if (step === undefined) throw new InputError(all[i].path, 'has no step/epoch in its metadata or trainer_state.json (--order-by metadata)', 'no-step');
      all[i].step = step;
    }
    const byName = new Map(all.map((s, i) => [s.name, opened[i]]));
    ordered = filterSteps(orderBySteps(all, found.dir), options);
    contents = ordered.map((s) => byName.get(s.name) as CheckpointContents);
  }
  if (ordered.length < minCheckpoints) {
    throw new InputError(dir, `${ordered.length} checkpoint${ordered.length === 1 ? '' : 's'} selected; CMD needs at least ${minCheckpoints}`, 'too-few-checkpoints');
  }
  const checkpoints: CheckpointInfo[] = await Promise.all(
    ordered.map(async (s, i) => ({ index: i, step: s.step, name: s.name, path: s.path, layout: s.layout, entry: isRemote(s.path) ? displayUrl(s.path) : path.join(found.dir, s.name), bytes: await totalBytes(contents[i].files), contents: contents[i] })),
  );
  const notes: string[] = [];
  alignTensors(checkpoints, notes);
  const space = buildParameterSpace(checkpoints[0].contents.tensors, options);
  if (space.total === 0) throw new InputError(dir, 'no floating-point tensor with ≥ 1 dimension to model', 'nothing-to-model');
  return { dir: found.dir, format: found.format, checkpoints, space, ignored: found.ignored, notes };
}

/** The modelled tensors of one checkpoint, in parameter-space order. */
export function modelledTensors(set: CheckpointSet, checkpoint: CheckpointInfo): StoredTensor[] {
  const byName = new Map(checkpoint.contents.tensors.map((t) => [t.name, t]));
  return set.space.tensors.map((t) => {
    const s = byName.get(t.name);
    if (!s) throw new UsageError(`internal: tensor ${t.name} missing in ${checkpoint.name}`);
    return s;
  });
}

export function checkpointLabel(c: Pick<CheckpointInfo, 'index' | 'step' | 'name'>): { index: number; step: number; name: string } {
  return { index: c.index, step: c.step, name: path.basename(c.name) };
}
