/**
 * PyTorch checkpoints (`torch.save` zip archives) read without running any of their code
 * (docs/formats.md, "PyTorch"). `pickle.ts` turns data.pkl into an inert tree; this module
 * finds the tensor tree in it (state_dict, model_state_dict, model, the top level, or
 * `--state-key`), interprets the calls `torch.load(weights_only=True)` allows on a tensor's
 * path, and turns every tensor view (storage, offset, shape, strides) into byte spans of the
 * archive. Anything else on a tensor's path is refused; anything outside it is listed as ignored.
 */
import { promises as fsp, createWriteStream } from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.ts';
import { DTYPES, type DType } from './dtype.ts';
import { PickleError, PyDict, PyGlobal, PyObject, PyPersistent, PyTuple, readPickle, type PyValue } from './pickle.ts';
import { scratchPath } from './scratch.ts';
import { openTorchArchive, type TorchArchive } from './torch-zip.ts';
import type { ByteSpan, CheckpointContents, StoredTensor } from './types.ts';

/** Storage classes as torch pickles them, and the element type each holds. */
const STORAGE_DTYPES: Record<string, DType> = {
  DoubleStorage: 'F64',
  FloatStorage: 'F32',
  HalfStorage: 'F16',
  BFloat16Storage: 'BF16',
  LongStorage: 'I64',
  IntStorage: 'I32',
  ShortStorage: 'I16',
  CharStorage: 'I8',
  ByteStorage: 'U8',
  BoolStorage: 'BOOL',
  UInt16Storage: 'U16',
  UInt32Storage: 'U32',
  UInt64Storage: 'U64',
  Float8_e4m3fnStorage: 'F8_E4M3',
  Float8_e5m2Storage: 'F8_E5M2',
};

/** Where the tensor tree is looked for, in this order, when `--state-key` is not given. */
const TREE_KEYS = ['state_dict', 'model_state_dict', 'model'];
/** Training state that holds tensors but is never the model (docs/formats.md). */
const NEVER_TREE = /^(optimizer.*|lr_schedulers?|callbacks|loops)$/;
/** More tensor views than this in one non-contiguous tensor and it is copied to C order instead. */
const MAX_SPANS = 4096;

export interface TorchReadOptions {
  /** `--state-key KEY`: dotted path of the dict holding the tensors. */
  stateKey?: string;
  /** Non-contiguous views with more runs than this are copied to C order in scratch (default 4096). */
  maxSpans?: number;
}

export interface IgnoredItem {
  name: string;
  reason: string;
}

interface TensorRef {
  storageKey: string;
  dtype: DType;
  storageNumel: number;
  offset: number;
  shape: number[];
  stride: number[];
}

class Interpreter {
  /** Nesting of parameter/subclass wrappers around one tensor (a memo cycle must not recurse forever). */
  depth = 0;
  constructor(readonly file: string) {}

  fail(rule: string, message: string): never {
    throw new InputError(this.file, message, rule);
  }

  isTensor(v: PyValue): boolean {
    return v instanceof PyObject && v.callee instanceof PyGlobal && TENSOR_CALLS.has(v.callee.qualified);
  }

  /** A tensor node → its storage view; refuses anything not on the allow-list. */
  tensor(name: string, v: PyValue): TensorRef {
    if (!(v instanceof PyObject) || !(v.callee instanceof PyGlobal)) this.fail('torch-not-tensor', `'${name}' is not a tensor`);
    const fn = v.callee.qualified;
    const args = v.args instanceof PyTuple ? v.args.items : this.fail('torch-corrupt', `'${name}': ${fn} called without an argument tuple`);
    switch (fn) {
      case 'torch._utils._rebuild_tensor_v2':
      case 'torch._utils._rebuild_tensor':
        return this.view(name, args);
      case 'torch._utils._rebuild_parameter':
      case 'torch._utils._rebuild_parameter_with_state':
        if (++this.depth > 8) this.fail('torch-corrupt', `'${name}': tensor rebuilt from itself`);
        return this.tensor(name, args[0] ?? null);
      case 'torch._tensor._rebuild_from_type_v2': {
        // (func, type, args, state): a plain Tensor or Parameter rebuilt by func(*args).
        const [func, type, inner] = args;
        if (!(type instanceof PyGlobal) || !ALLOWED_TENSOR_TYPES.has(type.qualified)) {
          this.fail('torch-global-refused', `'${name}': tensor subclass ${type instanceof PyGlobal ? type.qualified : 'of unknown type'} is not allowed on a tensor's path`);
        }
        if (++this.depth > 8) this.fail('torch-corrupt', `'${name}': tensor rebuilt from itself`);
        return this.tensor(name, new PyObject(func ?? null, inner ?? null));
      }
      default:
        return this.fail('torch-global-refused', `'${name}': ${fn} is not allowed on a tensor's path`);
    }
  }

  private view(name: string, args: PyValue[]): TensorRef {
    const [storage, offset, size, stride] = args;
    if (!(storage instanceof PyPersistent) || !(storage.id instanceof PyTuple)) this.fail('torch-corrupt', `'${name}': tensor storage is not a persistent storage id`);
    const [tag, type, key, , numel] = storage.id.items;
    if (tag !== 'storage' || !(type instanceof PyGlobal) || typeof key !== 'string' || typeof numel !== 'number') {
      this.fail('torch-corrupt', `'${name}': malformed storage id`);
    }
    const dtype = type.module === 'torch' ? STORAGE_DTYPES[type.name] : undefined;
    if (!dtype) this.fail('torch-dtype', `'${name}': storage type ${type.qualified} is not supported`);
    const ints = (v: PyValue | undefined, what: string): number[] => {
      const items = v instanceof PyTuple ? v.items : v instanceof PyObject && v.args instanceof PyTuple && v.args.items[0] instanceof PyTuple ? v.args.items[0].items : undefined;
      if (!items || !items.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)) this.fail('torch-corrupt', `'${name}': ${what} is not a tuple of non-negative integers`);
      return items as number[];
    };
    const shape = ints(size, 'size');
    const strides = ints(stride, 'stride');
    if (strides.length !== shape.length) this.fail('torch-corrupt', `'${name}': ${shape.length} sizes but ${strides.length} strides`);
    if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) this.fail('torch-corrupt', `'${name}': bad storage offset`);
    if (!/^[A-Za-z0-9_.-]+$/.test(key)) this.fail('torch-corrupt', `'${name}': storage key '${key.slice(0, 40)}' is not a plain name`);
    return { storageKey: key, dtype, storageNumel: numel, offset, shape, stride: strides };
  }
}

const TENSOR_CALLS = new Set([
  'torch._utils._rebuild_tensor_v2',
  'torch._utils._rebuild_tensor',
  'torch._utils._rebuild_parameter',
  'torch._utils._rebuild_parameter_with_state',
  'torch._tensor._rebuild_from_type_v2',
]);
const ALLOWED_TENSOR_TYPES = new Set(['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter']);

/** The dict at a dotted path; keys may themselves contain dots, so the longest match wins. */
function walkKey(root: PyDict, key: string): PyValue | undefined {
  if (key === '') return root;
  for (let cut = key.length; cut > 0; cut = key.lastIndexOf('.', cut - 1)) {
    const head = key.slice(0, cut);
    const v = root.get(head);
    if (v === undefined) continue;
    if (cut === key.length) return v;
    if (v instanceof PyDict) {
      const rest = walkKey(v, key.slice(cut + 1));
      if (rest !== undefined) return rest;
    }
  }
  return undefined;
}

/** Does a dict hold a tensor at any depth? `seen` stops at cycles, which the memo can build. */
function hasTensor(d: PyDict, interp: Interpreter, seen = new Set<PyDict>()): boolean {
  if (seen.has(d)) return false;
  seen.add(d);
  return d.entries.some(([, v]) => interp.isTensor(v) || (v instanceof PyDict && hasTensor(v, interp, seen)));
}

function describeValue(v: PyValue): string {
  if (v === null) return 'None';
  if (v instanceof PyDict) return 'a dict without tensors';
  if (v instanceof PyObject) return v.callee instanceof PyGlobal ? `a ${v.callee.qualified} object (placeholder, never built)` : 'an object (placeholder)';
  if (v instanceof PyGlobal) return `a reference to ${v.qualified}`;
  if (v instanceof PyTuple) return 'a tuple';
  if (v instanceof Uint8Array) return 'bytes';
  if (typeof v === 'object') return 'a container';
  return `a ${typeof v === 'bigint' ? 'number' : typeof v}`;
}

/** Picks the tensor tree of a checkpoint's top-level value; returns it and the key chosen. */
export function selectTensorTree(file: string, root: PyValue, options: TorchReadOptions): { tree: PyDict; key: string } {
  const interp = new Interpreter(file);
  if (!(root instanceof PyDict)) throw new InputError(file, `holds ${describeValue(root)} at the top level, not a dict of tensors (a whole pickled model is not read; save model.state_dict())`, 'torch-no-tree');
  if (options.stateKey !== undefined) {
    const v = walkKey(root, options.stateKey);
    if (!(v instanceof PyDict)) {
      const keys = root.entries.map(([k]) => k).filter((k): k is string => typeof k === 'string');
      throw new InputError(file, `--state-key ${options.stateKey}: ${v === undefined ? 'no such key' : `is ${describeValue(v)}`} (top-level keys: ${keys.slice(0, 12).join(', ')})`, 'torch-state-key');
    }
    return { tree: v, key: options.stateKey };
  }
  for (const k of TREE_KEYS) {
    const v = root.get(k);
    if (v instanceof PyDict && hasTensor(v, interp)) return { tree: v, key: k };
  }
  if (root.entries.some(([, v]) => interp.isTensor(v))) return { tree: root, key: '' };
  const candidates = root.entries.filter(([k, v]) => typeof k === 'string' && v instanceof PyDict && hasTensor(v, interp)).map(([k]) => k as string);
  throw new InputError(
    file,
    candidates.length
      ? `no state_dict, model_state_dict or model entry holds the tensors; choose one with --state-key (candidates: ${candidates.join(', ')})`
      : 'holds no tensors (no state_dict, model_state_dict, model or top-level tensors)',
    'torch-no-tree',
  );
}

/** The tensors of the chosen tree in stored order, plus what was left out and why. */
export function collectTensors(file: string, tree: PyDict, atTop: boolean): { named: { name: string; ref: TensorRef }[]; ignored: IgnoredItem[] } {
  const interp = new Interpreter(file);
  const named: { name: string; ref: TensorRef }[] = [];
  const ignored: IgnoredItem[] = [];
  const visiting = new Set<PyDict>();
  const visit = (d: PyDict, prefix: string, top: boolean): void => {
    if (visiting.has(d)) interp.fail('torch-corrupt', `'${prefix.slice(0, -1)}' contains itself`);
    visiting.add(d);
    for (const [k, v] of d.entries) {
      const name = `${prefix}${typeof k === 'string' ? k : String(k)}`;
      if (typeof k !== 'string') {
        ignored.push({ name, reason: 'key is not a string' });
        continue;
      }
      if (top && atTop && NEVER_TREE.test(k)) {
        ignored.push({ name, reason: 'training state, never model weights' });
        continue;
      }
      if (v instanceof PyObject && v.callee instanceof PyGlobal && (TENSOR_CALLS.has(v.callee.qualified) || /^torch\._utils\._rebuild_/.test(v.callee.qualified))) {
        interp.depth = 0;
        named.push({ name, ref: interp.tensor(name, v) });
      } else if (v instanceof PyDict) {
        if (hasTensor(v, interp)) visit(v, `${name}.`, false);
        else ignored.push({ name, reason: 'not a tensor (a dict)' });
      } else if (v instanceof PyObject) {
        // An object of an unknown class inside the tensor tree: refusing is the safe reading.
        interp.fail('torch-global-refused', `'${name}': ${v.callee instanceof PyGlobal ? v.callee.qualified : 'an unknown callable'} is not allowed on a tensor's path`);
      } else {
        ignored.push({ name, reason: `not a tensor (${describeValue(v)})` });
      }
    }
    visiting.delete(d);
  };
  visit(tree, '', true);
  return { named, ignored };
}

function isContiguous(shape: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && stride[i] !== expected) return false;
    expected *= shape[i];
  }
  return true;
}

/** Byte spans of a strided view, in row-major element order, with adjacent runs merged. */
function viewSpans(file: string, start: number, ref: TensorRef, bytes: number, limit: number): ByteSpan[] | undefined {
  const { shape, stride, offset } = ref;
  const numel = shape.reduce((a, b) => a * b, 1);
  if (numel === 0) return [];
  if (isContiguous(shape, stride)) return [{ path: file, offset: start + offset * bytes, length: numel * bytes }];
  // The trailing axes that are contiguous form one run; the rest are iterated.
  let run = 1;
  let axis = shape.length;
  while (axis > 0 && (shape[axis - 1] === 1 || stride[axis - 1] === run)) {
    run *= shape[axis - 1];
    axis--;
  }
  const runs = numel / run;
  if (runs > limit) return undefined;
  const spans: ByteSpan[] = [];
  const idx = new Array<number>(axis).fill(0);
  for (let r = 0; r < runs; r++) {
    let el = offset;
    for (let i = 0; i < axis; i++) el += idx[i] * stride[i];
    const s = { path: file, offset: start + el * bytes, length: run * bytes };
    const last = spans[spans.length - 1];
    if (last && last.offset + last.length === s.offset) last.length += s.length;
    else spans.push(s);
    for (let i = axis - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  return spans;
}

/** Copies a view with too many runs into a C-order scratch file (read once, storage by storage). */
async function materialize(file: string, name: string, start: number, ref: TensorRef, bytes: number): Promise<ByteSpan[]> {
  const { shape, stride, offset } = ref;
  let maxEl = offset;
  for (let i = 0; i < shape.length; i++) maxEl += (shape[i] - 1) * stride[i];
  const fh = await fsp.open(file, 'r');
  let src: Buffer;
  try {
    src = Buffer.alloc((maxEl - offset + 1) * bytes);
    const { bytesRead } = await fh.read(src, 0, src.length, start + offset * bytes);
    if (bytesRead !== src.length) throw new InputError(file, `tensor '${name}': file ended while its storage was being read (truncated?)`, 'torch-storage-truncated');
  } finally {
    await fh.close();
  }
  const numel = shape.reduce((a, b) => a * b, 1);
  const out = Buffer.alloc(numel * bytes);
  const idx = new Array<number>(shape.length).fill(0);
  for (let e = 0; e < numel; e++) {
    let el = 0;
    for (let i = 0; i < shape.length; i++) el += idx[i] * stride[i];
    src.copy(out, e * bytes, el * bytes, el * bytes + bytes);
    for (let i = shape.length - 1; i >= 0; i--) {
      if (++idx[i] < shape[i]) break;
      idx[i] = 0;
    }
  }
  const dest = scratchPath(`${path.basename(file)}-${name}.c-order`);
  await new Promise<void>((resolve, reject) => {
    const ws = createWriteStream(dest, { flags: 'wx' });
    ws.on('error', reject);
    ws.end(out, () => resolve());
  });
  return [{ path: dest, offset: 0, length: out.length }];
}

/** Turns tensor views into StoredTensors, checking every view against its storage entry. */
async function storedTensors(archive: TorchArchive, named: { name: string; ref: TensorRef }[], spanLimit = MAX_SPANS): Promise<StoredTensor[]> {
  const file = archive.path;
  const located = new Map<string, { start: number; length: number }>();
  const out: StoredTensor[] = [];
  const seen = new Set<string>();
  for (const { name, ref } of named) {
    if (seen.has(name)) throw new InputError(file, `tensor '${name}' appears twice`, 'torch-duplicate');
    seen.add(name);
    const bytes = DTYPES[ref.dtype].bytes;
    let loc = located.get(ref.storageKey);
    if (!loc) {
      loc = await archive.storage(ref.storageKey);
      if (loc.length < ref.storageNumel * bytes) {
        throw new InputError(file, `storage entry '${archive.prefix}data/${ref.storageKey}' has ${loc.length} bytes but its ${ref.dtype} storage needs ${ref.storageNumel * bytes} (truncated?)`, 'torch-storage-short');
      }
      located.set(ref.storageKey, loc);
    }
    const numel = ref.shape.reduce((a, b) => a * b, 1);
    let maxEl = ref.offset;
    for (let i = 0; i < ref.shape.length; i++) maxEl += Math.max(0, ref.shape[i] - 1) * ref.stride[i];
    if (numel > 0 && (maxEl + 1) * bytes > loc.length) {
      throw new InputError(file, `tensor '${name}' reaches element ${maxEl} of storage '${ref.storageKey}', which has ${loc.length / bytes}`, 'torch-view-out-of-bounds');
    }
    const spans = viewSpans(file, loc.start, ref, bytes, spanLimit) ?? (await materialize(file, name, loc.start, ref, bytes));
    out.push({
      name,
      dtype: ref.dtype,
      shape: ref.shape,
      encoding: archive.byteOrder === 'big' ? { dtype: ref.dtype, bigEndian: true } : { dtype: ref.dtype },
      spans,
    });
  }
  return out;
}

/** Top-level numbers Lightning and training scripts save, kept as metadata for `--order-by metadata`. */
function stepMetadata(root: PyDict): Record<string, string> {
  const meta: Record<string, string> = {};
  for (const k of ['global_step', 'step', 'epoch']) {
    const v = root.get(k);
    if (typeof v === 'number' && Number.isSafeInteger(v)) meta[k] = String(v);
  }
  return meta;
}

/**
 * Reads one torch.save checkpoint's tensor tree. Errors are InputErrors naming the file and,
 * for a refused global, the global.
 */
export async function readTorchCheckpoint(file: string, options: TorchReadOptions = {}): Promise<CheckpointContents> {
  const archive = await openTorchArchive(file);
  try {
    let root: PyValue;
    try {
      root = readPickle(archive.pickle);
    } catch (e) {
      if (e instanceof PickleError) throw new InputError(file, `${archive.prefix}data.pkl ${e.message}`, e.rule);
      throw e;
    }
    const { tree, key } = selectTensorTree(file, root, options);
    const { named, ignored } = collectTensors(file, tree, key === '');
    if (key !== '' && root instanceof PyDict) {
      for (const [k] of root.entries) if (typeof k === 'string' && k !== key.split('.')[0]) ignored.push({ name: k, reason: NEVER_TREE.test(k) ? 'training state, never model weights' : 'outside the tensor tree' });
    }
    const tensors = await storedTensors(archive, named, options.maxSpans);
    if (tensors.length === 0) throw new InputError(file, 'holds no tensors', 'torch-no-tree');
    return {
      format: 'torch',
      files: [file],
      tensors,
      metadata: root instanceof PyDict ? stepMetadata(root) : {},
      extras: { torch: { stateKey: key, ignored } },
    };
  } finally {
    archive.close();
  }
}

/**
 * A sharded Hugging Face `pytorch_model.bin.index.json`: reads every shard named in its
 * weight_map and keeps the tensors the map assigns to it, in the map's shard order.
 */
export async function readShardedTorch(indexPath: string, options: TorchReadOptions = {}): Promise<CheckpointContents> {
  let map: Record<string, unknown>;
  try {
    const json = JSON.parse(await fsp.readFile(indexPath, 'utf8')) as { weight_map?: unknown };
    if (typeof json.weight_map !== 'object' || json.weight_map === null) throw new Error('no weight_map object');
    map = json.weight_map as Record<string, unknown>;
  } catch (e) {
    throw new InputError(indexPath, `is not a valid index (${(e as Error).message})`, 'torch-index');
  }
  const dir = path.dirname(indexPath);
  const shards: string[] = [];
  for (const [name, shard] of Object.entries(map)) {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new InputError(indexPath, `weight_map entry '${name}' names shard ${JSON.stringify(shard)}, not a file beside the index`, 'torch-index');
    }
    if (!shards.includes(shard)) shards.push(shard);
  }
  const tensors: StoredTensor[] = [];
  const files: string[] = [indexPath];
  const ignored: IgnoredItem[] = [];
  for (const shard of shards) {
    const file = path.join(dir, shard);
    const c = await readTorchCheckpoint(file, options);
    files.push(file);
    for (const t of c.tensors) {
      if (map[t.name] === shard) tensors.push(t);
      else ignored.push({ name: t.name, reason: `in ${shard} but not assigned to it by the index` });
    }
  }
  const found = new Set(tensors.map((t) => t.name));
  for (const name of Object.keys(map)) if (!found.has(name)) throw new InputError(indexPath, `tensor '${name}' is not in its shard ${String(map[name])}`, 'torch-index');
  return { format: 'torch', files, tensors, metadata: {}, extras: { torch: { stateKey: '', ignored, shards } } };
}
