/**
 * Finding the checkpoints in a folder: which entries are checkpoints of which format,
 * which are training by-products to ignore, and in which order the checkpoints come.
 * Nothing here reads tensor data; at most small JSON files are parsed.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import picomatch from 'picomatch';
import { InputError, UsageError } from '../errors.ts';
import type { FormatName } from '../formats/types.ts';
import { compileStepPattern, naturalCompare, STEP_PATTERN_HINT, stepFromName } from './naming.ts';
import { isTorchZipListing, sniffTorchFile, zipEntryNames } from '../formats/torch-zip.ts';

/** One checkpoint as found on disk, before its headers are read. */
export interface CheckpointSource {
  /** Entry name inside the folder (a file or a sub-folder). */
  name: string;
  format: FormatName;
  /** What the format reader opens: a file, an index.json, a model.json or an npy folder. */
  path: string;
  layout: 'file' | 'sharded' | 'npy-dir' | 'flat-npy' | 'tfjs-model' | 'tfjs-manifest';
  /** trainer_state.json of a Hugging Face `checkpoint-N/` folder, when present. */
  trainerState?: string;
}

export interface IgnoredEntry {
  name: string;
  reason: string;
}

export interface DiscoveredFolder {
  dir: string;
  format: FormatName;
  sources: CheckpointSource[];
  ignored: IgnoredEntry[];
}

export interface DiscoverOptions {
  format?: FormatName;
  include?: string[];
  exclude?: string[];
  /** `--step-pattern`: a regular expression whose first capture group is the step. */
  stepPattern?: string;
}

/** Training by-products that sit next to checkpoints (HF Trainer, Lightning, tokenizers). */
const auxiliaryPatterns: [RegExp, string][] = [
  [/^(optimizer|scheduler|scaler)(_\d+)?\.(pt|pth|bin)$/, 'optimizer/scheduler state'],
  [/^rng_state.*\.pth?$/, 'random-number-generator state'],
  [/^training_args\.bin$/, 'training arguments'],
  [/^(trainer_state|config|generation_config|preprocessor_config|adapter_config)\.json$/, 'configuration'],
  [/^(tokenizer.*|special_tokens_map\.json|vocab.*|merges\.txt|spiece\.model|added_tokens\.json)$/, 'tokenizer file'],
  [/(^readme|\.md$|\.txt$|\.log$|\.yaml$|\.yml$|\.csv$)/i, 'documentation or log'],
];

const picklePattern = /\.(pt|pth|ckpt|bin|pkl)$/;

export const PICKLE_HINT =
  "cmd reads torch.save zip archives (PyTorch ≥ 1.6) without running them, but these are not such archives; convert each to safetensors first, e.g. python3 -c \"import sys,torch; from safetensors.torch import save_file; [save_file({k: v.contiguous() for k, v in torch.load(p, map_location='cpu').items()}, p.rsplit('.', 1)[0] + '.safetensors') for p in sys.argv[1:]]\" DIR/*.pt (see docs/formats.md)";

/**
 * A PyTorch checkpoint file, recognised by content (a zip holding `<archive>/data.pkl`, or the
 * legacy format's magic number, which the reader then refuses with a clear line), never by
 * extension: tfjs shards are `.bin` too. Lightning's `last.ckpt` duplicates the newest
 * `epoch=N-step=M.ckpt` and has no step in its name, so it is listed as ignored.
 */
async function torchFileClass(dir: string, name: string): Promise<Classified | undefined> {
  const full = path.join(dir, name);
  const sniff = await sniffTorchFile(full);
  if (sniff === 'other') return undefined;
  if (sniff === 'zip') {
    const names = await zipEntryNames(full);
    // A damaged zip with a PyTorch extension goes to the reader, which says what is wrong.
    if (names ? !isTorchZipListing(names) : !picklePattern.test(name)) return undefined;
  }
  if (/^last(-v\d+)?\.ckpt$/.test(name)) return { kind: 'ignored', entry: { name, reason: "Lightning's copy of the latest checkpoint (no step in its name)" } };
  return { kind: 'source', source: { name, format: 'torch', path: full, layout: 'file' } };
}

/** A Hugging Face `checkpoint-N/` folder saved with `pytorch_model.bin` (sharded or not). */
async function torchFolderSource(full: string, name: string, files: string[], trainerState: string | undefined): Promise<CheckpointSource | undefined> {
  if (files.includes('pytorch_model.bin.index.json')) {
    return { name, format: 'torch', path: path.join(full, 'pytorch_model.bin.index.json'), layout: 'sharded', trainerState };
  }
  if (files.includes('pytorch_model.bin') && (await sniffTorchFile(path.join(full, 'pytorch_model.bin'))) !== 'other') {
    return { name, format: 'torch', path: path.join(full, 'pytorch_model.bin'), layout: 'file', trainerState };
  }
  return undefined;
}

function auxiliaryReason(name: string): string | undefined {
  for (const [re, reason] of auxiliaryPatterns) if (re.test(name)) return reason;
  return undefined;
}

type Classified =
  | { kind: 'source'; source: CheckpointSource; inner?: IgnoredEntry[] }
  | { kind: 'pickle'; name: string }
  | { kind: 'ignored'; entry: IgnoredEntry }
  | { kind: 'part' };

/** A folder entry; `isFile` false for FIFOs, sockets and devices (never opened: opening a FIFO blocks). */
interface DirEntry {
  name: string;
  isDir: boolean;
  isFile: boolean;
  size: number;
}

async function listDir(dir: string): Promise<DirEntry[]> {
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    throw new InputError(dir, `cannot read folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
  }
  const out: DirEntry[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue; // hidden files, our own temp files
    try {
      const st = await fsp.stat(path.join(dir, name));
      out.push({ name, isDir: st.isDirectory(), isFile: st.isFile(), size: st.size });
    } catch {
      out.push({ name, isDir: false, isFile: false, size: -1 }); // dangling link: reported as unreadable below
    }
  }
  return out;
}

/** Does a JSON file look like a tfjs model.json? Peeks at most 1 MiB. */
async function looksLikeTfjsModel(file: string): Promise<boolean> {
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const buf = Buffer.alloc(1 << 20);
      const { bytesRead } = await fh.read(buf, 0, buf.length, 0);
      const text = buf.subarray(0, bytesRead).toString('utf8');
      return text.includes('"weightsManifest"');
    } finally {
      await fh.close();
    }
  } catch {
    return false;
  }
}

/** Names of shard files referenced by `*.safetensors.index.json` files in a folder. */
async function shardNames(dir: string, indexFiles: string[]): Promise<Set<string>> {
  const shards = new Set<string>();
  for (const idx of indexFiles) {
    try {
      const json = JSON.parse(await fsp.readFile(path.join(dir, idx), 'utf8')) as { weight_map?: Record<string, unknown> };
      for (const v of Object.values(json.weight_map ?? {})) if (typeof v === 'string') shards.add(refuseSelfReference(dir, idx, v, 'weight_map'));
    } catch (e) {
      if (e instanceof InputError) throw e;
      // A broken index is reported by the reader when the checkpoint is opened.
    }
  }
  return shards;
}

async function classifyFolder(dir: string, name: string): Promise<Classified> {
  const full = path.join(dir, name);
  const entries = await listDir(full);
  const files = entries.filter((e) => !e.isDir).map((e) => e.name);
  const has = (f: string) => files.includes(f);
  if (isCmdOutput(files)) return { kind: 'ignored', entry: { name, reason: 'cmd output folder' } };
  const trainerState = has('trainer_state.json') ? path.join(full, 'trainer_state.json') : undefined;
  if (has('model.json')) {
    return { kind: 'source', source: { name, format: 'tfjs', path: path.join(full, 'model.json'), layout: 'tfjs-model' } };
  }
  const manifests = files.filter((f) => f.endsWith('weights_manifest.json'));
  if (manifests.length === 1) {
    return { kind: 'source', source: { name, format: 'tfjs', path: path.join(full, manifests[0]), layout: 'tfjs-manifest' } };
  }
  const indexes = files.filter((f) => f.endsWith('.safetensors.index.json'));
  if (indexes.length >= 1) {
    const pick = indexes.includes('model.safetensors.index.json') ? 'model.safetensors.index.json' : indexes.sort()[0];
    const used = new Set([pick, ...(await shardNames(full, [pick]))]);
    return { kind: 'source', source: { name, format: 'safetensors', path: path.join(full, pick), layout: 'sharded', trainerState }, inner: innerIgnored(name, entries, used) };
  }
  const st = files.filter((f) => f.endsWith('.safetensors'));
  if (st.length >= 1) {
    if (st.length > 1 && !st.includes('model.safetensors')) {
      throw new InputError(full, `holds ${st.length} .safetensors files (${st.slice(0, 3).join(', ')}…) but no model.safetensors or *.safetensors.index.json saying which make up the model`, 'ambiguous-folder');
    }
    const pick = st.includes('model.safetensors') ? 'model.safetensors' : st[0];
    return { kind: 'source', source: { name, format: 'safetensors', path: path.join(full, pick), layout: 'file', trainerState }, inner: innerIgnored(name, entries, new Set([pick])) };
  }
  if (files.some((f) => f.endsWith('.npy')) || (await holdsNestedNpy(full, entries))) {
    return { kind: 'source', source: { name, format: 'npy', path: full, layout: 'npy-dir' }, inner: innerIgnored(name, entries, (f) => f.endsWith('.npy'), true) };
  }
  const torch = await torchFolderSource(full, name, files, trainerState);
  if (torch) {
    const used = new Set([path.basename(torch.path), ...(torch.layout === 'sharded' ? await shardNames(full, [path.basename(torch.path)]) : [])]);
    return { kind: 'source', source: torch, inner: innerIgnored(name, entries, used) };
  }
  if (files.some((f) => picklePattern.test(f) && !auxiliaryReason(f))) return { kind: 'pickle', name };
  return { kind: 'ignored', entry: { name, reason: 'folder without checkpoint files' } };
}

/**
 * The files of a checkpoint folder that are not its weights (`checkpoint-500/optimizer.pt`,
 * `rng_state.pth`, `trainer_state.json`, …), listed by `inspect` as ignored with the reason.
 */
function innerIgnored(folder: string, entries: { name: string; isDir: boolean }[], used: Set<string> | ((f: string) => boolean), subfoldersUsed = false): IgnoredEntry[] {
  const isUsed = typeof used === 'function' ? used : (f: string) => used.has(f);
  return entries
    .filter((e) => (e.isDir ? !subfoldersUsed : !isUsed(e.name)))
    .map((e) => ({ name: `${folder}/${e.name}`, reason: e.isDir ? 'folder inside a checkpoint folder' : (auxiliaryReason(e.name) ?? 'not part of the checkpoint') }));
}

/**
 * Does a folder hold .npy files in sub-folders (a flax/JAX tree dumped one array per file,
 * `params/Conv_0/kernel.npy`)? Looks at most 8 levels down.
 */
async function holdsNestedNpy(dir: string, entries: { name: string; isDir: boolean }[], depth = 0): Promise<boolean> {
  if (depth > 8) return false;
  for (const e of entries) {
    if (!e.isDir) continue;
    const sub = path.join(dir, e.name);
    const inner = await listDir(sub);
    if (inner.some((f) => !f.isDir && f.name.endsWith('.npy'))) return true;
    if (await holdsNestedNpy(sub, inner, depth + 1)) return true;
  }
  return false;
}

/** Folder entries that a training run leaves beside its checkpoints and that are never read. */
function layoutIgnoreReason(name: string, isDir: boolean): string | undefined {
  // The HF Trainer saves into tmp-checkpoint-N and renames it when complete (docs/formats.md).
  if (isDir && /^tmp-checkpoint-\d+$/.test(name)) return 'unfinished save of the Hugging Face Trainer';
  return undefined;
}

/**
 * A model file with no step in its name beside step-numbered checkpoint folders is the run's
 * final export (the HF Trainer's top-level `model.safetensors` next to `checkpoint-N/`); it
 * is set aside as ignored rather than failing the step order (docs/formats.md).
 */
function setAsideFinalExports(sources: CheckpointSource[], folders: Set<string>, ignored: IgnoredEntry[], pattern?: RegExp): CheckpointSource[] {
  const stepFolders = sources.filter((s) => folders.has(s.name) && stepFromName(s.name, pattern) !== undefined);
  if (stepFolders.length === 0) return sources;
  return sources.filter((s) => {
    if (folders.has(s.name) || stepFromName(s.name, pattern) !== undefined) return true;
    ignored.push({ name: s.name, reason: 'final export beside the step-numbered checkpoint folders, not a training step' });
    return false;
  });
}

/** Keras 3 weights: `*.weights.h5` (save_weights, ModelCheckpoint) and `.keras` archives. */
function isKerasWeightsName(name: string): boolean {
  return name.endsWith('.weights.h5') || name.endsWith('.keras');
}

async function classifyFile(dir: string, name: string, parts: Set<string>): Promise<Classified> {
  const full = path.join(dir, name);
  if (parts.has(name)) return { kind: 'part' };
  if (name.endsWith('.safetensors.index.json')) return { kind: 'source', source: { name, format: 'safetensors', path: full, layout: 'sharded' } };
  if (name.endsWith('.safetensors')) return { kind: 'source', source: { name, format: 'safetensors', path: full, layout: 'file' } };
  if (name.endsWith('.npz')) return { kind: 'source', source: { name, format: 'npz', path: full, layout: 'file' } };
  if (name.endsWith('.npy')) return { kind: 'source', source: { name, format: 'npy', path: full, layout: 'flat-npy' } };
  if (isKerasWeightsName(name)) return { kind: 'source', source: { name, format: 'keras-h5', path: full, layout: 'file' } };
  if (name.endsWith('weights_manifest.json')) return { kind: 'source', source: { name, format: 'tfjs', path: full, layout: 'tfjs-manifest' } };
  const aux = auxiliaryReason(name);
  if (aux) return { kind: 'ignored', entry: { name, reason: aux } };
  const torch = await torchFileClass(dir, name);
  if (torch) return torch;
  if (name.endsWith('.json') && (await looksLikeTfjsModel(full))) {
    return { kind: 'source', source: { name, format: 'tfjs', path: full, layout: 'tfjs-model' } };
  }
  if (picklePattern.test(name)) return { kind: 'pickle', name };
  return { kind: 'ignored', entry: { name, reason: 'not a checkpoint file' } };
}

/** tfjs shard files named by the manifests of tfjs checkpoints sitting directly in the folder. */
async function tfjsShardNames(dir: string, jsonFiles: string[]): Promise<Set<string>> {
  const parts = new Set<string>();
  for (const f of jsonFiles) {
    try {
      const json = JSON.parse(await fsp.readFile(path.join(dir, f), 'utf8')) as unknown;
      const groups = Array.isArray(json) ? json : (json as { weightsManifest?: unknown }).weightsManifest;
      if (!Array.isArray(groups)) continue;
      for (const g of groups) for (const p of ((g as { paths?: unknown[] }).paths ?? [])) if (typeof p === 'string') parts.add(refuseSelfReference(dir, f, p, 'weightsManifest'));
    } catch (e) {
      if (e instanceof InputError) throw e;
      // reported by the reader
    }
  }
  return parts;
}

/** The files every `cmd` output folder holds (src/pipeline/model-file.ts, src/output/report.ts). */
const CMD_OUTPUT_FILES = ['cmd-model.safetensors', 'report.json'];

/** A folder written by cmd (an -o inside the checkpoint folder from an older run): never a checkpoint. */
function isCmdOutput(files: string[]): boolean {
  return CMD_OUTPUT_FILES.every((f) => files.includes(f));
}

/** Names that can only be checkpoint files (or their index/manifest). */
const CHECKPOINT_FILE_NAME = /\.(safetensors|npz|npy)$|\.safetensors\.index\.json$|weights_manifest\.json$/;

/**
 * An entry that must never be opened or silently dropped: a non-regular file (FIFO, socket,
 * device) or a folder carrying a checkpoint file's name is an error when its name says
 * checkpoint, since skipping it would leave a hole in the trajectory; other non-regular entries
 * are ignored. undefined for ordinary files and folders.
 */
function oddEntry(root: string, e: DirEntry): IgnoredEntry | undefined {
  const full = path.join(root, e.name);
  const named = CHECKPOINT_FILE_NAME.test(e.name);
  if (e.isDir) {
    if (named) throw new InputError(full, 'is a folder, but its name is that of a checkpoint file', 'folder-named-like-file');
    return undefined;
  }
  if (e.isFile) return undefined;
  if (named || e.name.endsWith('.json')) throw new InputError(full, 'is not a regular file (a FIFO, socket or device); checkpoint files must be regular files', 'not-regular');
  return { name: e.name, reason: 'not a regular file' };
}

/** A shard/part name of an index or manifest, refusing one that names the index itself. */
function refuseSelfReference(dir: string, index: string, part: string, field: string): string {
  const p = path.normalize(part);
  if (p === path.normalize(index)) throw new InputError(path.join(dir, index), `${field} names the file itself as one of its parts`, 'self-reference');
  return p;
}

/**
 * Lists the checkpoints of one format in `dir`, in natural name order, with the entries
 * that were left out and why. Mixed formats, an empty folder, or a folder of PyTorch
 * pickles only are errors.
 */
export async function discoverCheckpoints(dir: string, options: DiscoverOptions = {}): Promise<DiscoveredFolder> {
  const root = path.resolve(dir);
  let st;
  try {
    st = await fsp.stat(root);
  } catch (e) {
    throw new InputError(dir, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
  }
  if (!st.isDirectory()) throw new InputError(dir, 'is not a folder of checkpoints', 'not-a-folder');
  const entries = await listDir(root);
  // Only regular files are peeked at here; other entries are refused or ignored below, unopened.
  const fileNames = entries.filter((e) => e.isFile).map((e) => e.name);
  const parts = new Set([
    ...(await shardNames(root, fileNames.filter((f) => f.endsWith('.safetensors.index.json')))),
    ...(await tfjsShardNames(root, fileNames.filter((f) => f.endsWith('.json') && !auxiliaryReason(f)))),
  ]);

  const include = options.include?.length ? picomatch(options.include, { dot: false }) : undefined;
  const exclude = options.exclude?.length ? picomatch(options.exclude, { dot: false }) : undefined;
  let sources: CheckpointSource[] = [];
  const ignored: IgnoredEntry[] = [];
  const pickles: string[] = [];
  const folders = new Set(entries.filter((e) => e.isDir).map((e) => e.name));
  for (const e of entries) {
    if (include && !include(e.name)) {
      ignored.push({ name: e.name, reason: 'not matched by --include' });
      continue;
    }
    if (exclude && exclude(e.name)) {
      ignored.push({ name: e.name, reason: 'matched by --exclude' });
      continue;
    }
    const layoutReason = layoutIgnoreReason(e.name, e.isDir);
    if (layoutReason) {
      ignored.push({ name: e.name, reason: layoutReason });
      continue;
    }
    if (e.size === -1) throw new InputError(path.join(root, e.name), 'cannot be read (dangling link or no permission)', 'unreadable');
    const odd = oddEntry(root, e);
    if (odd) {
      ignored.push(odd);
      continue;
    }
    const c = e.isDir ? await classifyFolder(root, e.name) : await classifyFile(root, e.name, parts);
    if (c.kind === 'source') {
      sources.push(c.source);
      ignored.push(...(c.inner ?? []));
    }
    else if (c.kind === 'pickle') pickles.push(c.name);
    else if (c.kind === 'ignored') ignored.push(c.entry);
  }

  sources = setAsideFinalExports(sources, folders, ignored, options.stepPattern ? compileStepPattern(options.stepPattern) : undefined);
  const byFormat = new Map<FormatName, CheckpointSource[]>();
  for (const s of sources) byFormat.set(s.format, [...(byFormat.get(s.format) ?? []), s]);
  let format = options.format;
  if (!format) {
    if (byFormat.size > 1) {
      const counts = [...byFormat].map(([f, l]) => `${l.length} ${f}`).join(', ');
      throw new InputError(dir, `mixed checkpoint formats (${counts}); choose one with --format`, 'mixed-formats');
    }
    format = byFormat.keys().next().value;
  }
  for (const [f, list] of byFormat) if (f !== format) for (const s of list) ignored.push({ name: s.name, reason: `${f} checkpoint (--format ${format})` });
  for (const p of pickles) ignored.push({ name: p, reason: 'pickle that is not a torch.save zip archive (never loaded)' });
  const chosen = format ? (byFormat.get(format) ?? []) : [];
  if (chosen.length === 0) {
    if (pickles.length > 0 && !options.format) {
      throw new InputError(dir, `only PyTorch pickle checkpoints found (${pickles.slice(0, 2).join(', ')}${pickles.length > 2 ? ', …' : ''}); ${PICKLE_HINT}`, 'pickle-only');
    }
    throw new InputError(dir, options.format ? `no ${options.format} checkpoints found` : 'no checkpoints found (expected .safetensors, .npz, .npy, torch.save, Keras .weights.h5/.keras or tfjs model.json files or folders)', 'empty-folder');
  }
  chosen.sort((a, b) => naturalCompare(a.name, b.name));
  ignored.sort((a, b) => naturalCompare(a.name, b.name));
  return { dir: root, format: format as FormatName, sources: chosen, ignored };
}

export interface OrderedSource extends CheckpointSource {
  step: number;
}

/**
 * Steps from the names (natural order). When no name carries a number, the steps are the
 * positions 0, 1, 2, …; when only some do, that is an error, since order would be a guess.
 */
export function stepsFromNames(sources: CheckpointSource[], dir: string, stepPattern?: string): OrderedSource[] {
  const pattern = stepPattern ? compileStepPattern(stepPattern) : undefined;
  const steps = sources.map((s) => stepFromName(s.name, pattern));
  if (pattern) {
    const i = steps.findIndex((s) => s === undefined);
    if (i >= 0) throw new InputError(path.join(dir, sources[i].name), `has no step matching --step-pattern ${stepPattern} (the first capture group must be digits)`, 'no-step');
  }
  if (steps.every((s) => s === undefined)) return sources.map((s, i) => ({ ...s, step: i }));
  const missing = sources.filter((_, i) => steps[i] === undefined);
  if (missing.length) {
    throw new InputError(path.join(dir, missing[0].name), `has no step number in its name while other checkpoints do; rename it, use --order-by metadata or ${STEP_PATTERN_HINT}`, 'no-step');
  }
  return orderBySteps(sources.map((s, i) => ({ ...s, step: steps[i] as number })), dir);
}

/** Sorts by step and refuses two checkpoints with the same step. */
export function orderBySteps(sources: OrderedSource[], dir: string): OrderedSource[] {
  const sorted = [...sources].sort((a, b) => a.step - b.step || naturalCompare(a.name, b.name));
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].step === sorted[i - 1].step) {
      throw new InputError(dir, `checkpoints ${sorted[i - 1].name} and ${sorted[i].name} have the same step ${sorted[i].step}; ${STEP_PATTERN_HINT}`, 'duplicate-step');
    }
  }
  return sorted;
}

export interface StepFilter {
  from?: number;
  to?: number;
  every?: number;
}

/** Keeps steps in [from, to], then every k-th checkpoint of those (the first one included). */
export function filterSteps<T extends { step: number }>(list: T[], filter: StepFilter): T[] {
  const { from = -Infinity, to = Infinity, every = 1 } = filter;
  if (!Number.isInteger(every) || every < 1) throw new UsageError(`--every must be a positive integer, got ${every}`);
  return list.filter((s) => s.step >= from && s.step <= to).filter((_, i) => i % every === 0);
}
