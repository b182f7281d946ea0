/**
 * Keras 3 weights: `.weights.h5` files (`model.save_weights`, `ModelCheckpoint(save_weights_only=True)`)
 * and the `model.weights.h5` inside a `.keras` archive, read and written through h5wasm (the
 * HDF5 C library compiled to WebAssembly; its Node build reads files on disk directly).
 *
 * Layout (docs/formats.md, "Keras 3"): every saveable has a group at its attribute path with a
 * `vars` sub-group; a model's layers are under `layers/<snake_case_class>[_k]`, nested models
 * repeat the pattern, and variables are datasets named `0`, `1`, …. Only datasets under
 * `layers/…/vars/` are weights; the optimizer's `optimizer/vars` and everything else is left as
 * is and copied unchanged when writing. Tensors are named by their HDF5 path.
 *
 * h5wasm 0.10 does not expose a dataset's file offset (H5Dget_offset), so values cannot be read
 * in place by position as for safetensors: each checkpoint's weights are copied once, dataset by
 * dataset, into a scratch file that the spans point to (docs/formats.md states the cost).
 */
import type { ZipFile } from 'yauzl';
import { zipLibrary } from './zip-library.ts';
import { createWriteStream } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { InputError, UsageError } from '../errors.ts';
import { DTYPES, elementCount, type DType } from './dtype.ts';
import { zeroObjectTimes } from './hdf5-times.ts';
import { scratchPath } from './scratch.ts';
import type { CheckpointContents, StoredTensor, TensorToWrite } from './types.ts';

type H5 = typeof import('h5wasm/node').default;
type H5File = InstanceType<H5['File']>;
type H5Group = InstanceType<H5['Group']>;
type H5Dataset = InstanceType<H5['Dataset']>;

let loaded: Promise<H5> | undefined;

/** h5wasm is loaded on first use: its 4 MB module is not needed by any other format. */
async function h5(): Promise<H5> {
  loaded ??= import('h5wasm/node').then(async (m) => {
    // HDF5 errors become JS errors instead of HDF5-DIAG text on stderr (h5wasm ≥ 0.7.2).
    (await m.default.ready).activate_throwing_error_handler();
    return m.default;
  });
  return loaded;
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a]);
/** The weights member of a `.keras` archive (keras/src/saving/saving_lib.py, `_VARS_FNAME`). */
export const KERAS_WEIGHTS_MEMBER = 'model.weights.h5';

/** A weight dataset: under `layers/`, directly inside a `vars` group. */
export function isWeightPath(p: string): boolean {
  return /^layers\/(?:[^/]+\/)*vars\/[^/]+$/.test(p);
}

function dtypeOf(file: string, name: string, meta: { type: number; size: number; signed: boolean }, attrs: Record<string, unknown>): DType {
  if ('dtype' in attrs) {
    // Keras marks bfloat16 variables with an attribute (H5Entry.__setitem__).
    throw new InputError(file, `dataset ${name} is bfloat16, which h5wasm cannot read; save the weights in float32`, 'keras-dtype');
  }
  if (meta.type === 1 && meta.size === 4) return 'F32';
  if (meta.type === 1 && meta.size === 8) return 'F64';
  if (meta.type === 0) {
    const bits = meta.size * 8;
    const d = `${meta.signed ? 'I' : 'U'}${bits}`;
    if (d === 'I8' || d === 'U8' || d === 'I16' || d === 'U16' || d === 'I32' || d === 'U32' || d === 'I64' || d === 'U64') return d;
  }
  const what = meta.type === 1 ? `float${meta.size * 8}` : `HDF5 type class ${meta.type} of ${meta.size} bytes`;
  throw new InputError(file, `dataset ${name} is ${what}, which cmd cannot read from HDF5 (float32/float64 and integers only)`, 'keras-dtype');
}

async function checkSignature(file: string, shown: string): Promise<void> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(shown, `cannot open (${code ?? String(e)})`, code === 'ENOENT' ? 'file-missing' : 'file-unreadable');
  }
  try {
    const head = Buffer.alloc(8);
    const { bytesRead } = await fh.read(head, 0, 8, 0);
    if (bytesRead < 8 || !head.equals(HDF5_SIGNATURE)) throw new InputError(shown, 'is not an HDF5 file (no HDF5 signature at its start)', 'keras-not-hdf5');
  } finally {
    await fh.close();
  }
}

/** Copies the `model.weights.h5` member of a `.keras` archive into scratch. */
async function extractWeights(archive: string): Promise<string> {
  let zip: ZipFile;
  try {
    zip = await (await zipLibrary()).openPromise(archive, { lazyEntries: true, autoClose: false, validateEntrySizes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code) throw new InputError(archive, `cannot open (${code})`, code === 'ENOENT' ? 'file-missing' : 'file-unreadable');
    throw new InputError(archive, `is not a readable .keras zip archive (${(e as Error).message})`, 'keras-corrupt');
  }
  try {
    const names: string[] = [];
    for await (const entry of zip.eachEntry()) {
      names.push(entry.fileName);
      if (entry.fileName !== KERAS_WEIGHTS_MEMBER) continue;
      const out = scratchPath(`${basename(archive)}-${KERAS_WEIGHTS_MEMBER}`);
      try {
        await pipeline(await zip.openReadStreamPromise(entry), createWriteStream(out, { flags: 'wx' }));
      } catch (e) {
        await unlink(out).catch(() => undefined);
        throw new InputError(archive, `member ${KERAS_WEIGHTS_MEMBER}: cannot be read (${(e as Error).message})`, 'keras-corrupt');
      }
      return out;
    }
    const hint = names.includes('model.weights.npz') ? ' (it holds model.weights.npz: re-save with the default weights_format="h5")' : '';
    throw new InputError(archive, `holds no ${KERAS_WEIGHTS_MEMBER}${hint}`, 'keras-no-weights');
  } catch (e) {
    if (e instanceof InputError) throw e;
    throw new InputError(archive, `is not a readable .keras zip archive (${(e as Error).message})`, 'keras-corrupt');
  } finally {
    zip.close();
  }
}

/** One line from an HDF5 error stack: the innermost function's message. */
function hdf5Reason(e: unknown): string {
  const text = String((e as Error)?.message ?? e);
  const frames = [...text.matchAll(/#\d+: .*? in ([A-Za-z0-9_]+\(\)): (.*)/g)];
  const last = frames[frames.length - 1];
  return last ? `${last[2].trim()} in ${last[1]}` : text.split('\n')[0];
}

function openH5(lib: H5, file: string, shown: string, mode: 'r' | 'w'): H5File {
  try {
    return new lib.File(file, mode);
  } catch (e) {
    throw new InputError(shown, `HDF5 library cannot open it (${hdf5Reason(e)})`, 'keras-corrupt');
  }
}

/**
 * Reads a Keras 3 `.weights.h5` (or the weights of a `.keras` archive): every dataset under
 * `layers/…/vars/`, in the file's order, values copied into scratch.
 */
export async function readKerasCheckpoint(path: string): Promise<CheckpointContents> {
  const h5Path = path.endsWith('.keras') ? await extractWeights(path) : path;
  await checkSignature(h5Path, path);
  const lib = await h5();
  const f = openH5(lib, h5Path, path, 'r');
  const scratch = scratchPath(`${basename(path)}.values`);
  const out = await open(scratch, 'wx');
  try {
    let paths: string[];
    try {
      paths = f.paths();
    } catch (e) {
      throw new InputError(path, `HDF5 structure cannot be read (${hdf5Reason(e)})`, 'keras-corrupt');
    }
    const weights = paths.filter(isWeightPath);
    if (weights.length === 0) {
      const legacy = paths.includes('model_weights') || 'layer_names' in f.attrs;
      throw new InputError(
        path,
        legacy
          ? 'is a Keras 2 HDF5 file (layer_names); cmd reads the Keras 3 layout: re-save with model.save_weights("name.weights.h5") in Keras 3'
          : 'holds no Keras 3 weight datasets (layers/<layer>/vars/<i>)',
        'keras-no-weights',
      );
    }
    const tensors: StoredTensor[] = [];
    let offset = 0;
    for (const name of weights) {
      const d = f.get(name);
      if (!(d instanceof lib.Dataset)) continue;
      let meta, values;
      try {
        meta = d.metadata;
        const dtype = dtypeOf(path, name, meta, d.attrs);
        values = d.value as ArrayBufferView | null;
        if (values === null || !ArrayBuffer.isView(values)) throw new Error('no numeric value');
        const shape = meta.shape ?? [];
        const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
        if (bytes.byteLength !== elementCount(shape) * DTYPES[dtype].bytes) throw new Error(`${bytes.byteLength} bytes for shape [${shape.join(', ')}]`);
        await out.write(bytes, 0, bytes.byteLength, offset);
        tensors.push({ name, dtype, shape: [...shape], encoding: { dtype }, spans: [{ path: scratch, offset, length: bytes.byteLength }] });
        offset += bytes.byteLength;
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(path, `dataset ${name} cannot be read (${hdf5Reason(e)})`, 'keras-corrupt');
      }
    }
    return { format: 'keras-h5', files: [path], tensors, metadata: {}, extras: { h5: h5Path, archive: path.endsWith('.keras') } };
  } finally {
    await out.close();
    f.close();
  }
}

// ------------------------------------------------------------------ writer

const ARRAYS: Partial<Record<DType, { new (buf: ArrayBuffer, offset: number, length: number): ArrayBufferView; BYTES_PER_ELEMENT: number }>> = {
  F32: Float32Array, F64: Float64Array,
  I8: Int8Array, U8: Uint8Array, I16: Int16Array, U16: Uint16Array, I32: Int32Array, U32: Uint32Array,
  I64: BigInt64Array, U64: BigUint64Array,
};

const H5_DTYPES: Partial<Record<DType, string>> = {
  F32: '<f4', F64: '<f8', I8: '<b', U8: '<B', I16: '<h', U16: '<H', I32: '<i', U32: '<I', I64: '<q', U64: '<Q',
};

function typedView(t: TensorToWrite): ArrayBufferView {
  const A = ARRAYS[t.dtype];
  if (!A) throw new UsageError(`tensor ${t.name} is ${t.dtype}, which cmd does not write to HDF5; write it as safetensors instead`);
  // Copy: the typed array needs an aligned buffer of its own.
  const copy = new Uint8Array(t.data.byteLength);
  copy.set(t.data);
  return new A(copy.buffer, 0, t.data.byteLength / A.BYTES_PER_ELEMENT);
}

function copyAttrs(from: H5Group | H5Dataset, to: H5Group | H5Dataset): void {
  for (const [name, a] of Object.entries(from.attrs)) {
    to.create_attribute(name, a.value as never, a.shape, a.dtype as never);
  }
}

function creationOptions(d: H5Dataset): { chunks?: number[]; compression?: number; compression_opts?: number } {
  const meta = d.metadata;
  if (!meta.chunks) return {};
  const deflate = d.filters.find((x) => x.id === 1);
  return deflate ? { chunks: meta.chunks, compression: deflate.cd_values[0] ?? 4 } : { chunks: meta.chunks };
}

function copyTree(lib: H5, from: H5Group, to: H5Group, prefix: string, replace: Map<string, TensorToWrite>, used: Set<string>): void {
  for (const key of from.keys()) {
    const p = prefix ? `${prefix}/${key}` : key;
    const e = from.get(key);
    if (e instanceof lib.Dataset) {
      const t = replace.get(p);
      const shape = e.metadata.shape ?? [];
      const ds = t
        ? to.create_dataset({ name: key, data: typedView(t) as never, shape: t.shape, dtype: H5_DTYPES[t.dtype], ...creationOptions(e) })
        : to.create_dataset({ name: key, data: e.value as never, shape, dtype: e.dtype as never, ...creationOptions(e) });
      if (t) used.add(p);
      copyAttrs(e, ds);
    } else if (e instanceof lib.Group) {
      const g = to.create_group(key);
      copyAttrs(e, g);
      copyTree(lib, e, g, p, replace, used);
    }
  }
}

/**
 * Writes `tensors` as a `.weights.h5` with the exact group/dataset layout and attributes of
 * the Keras file `sourceH5`: weight datasets get the new values, everything else (optimizer
 * variables, empty `vars` groups) is copied unchanged. Written to a temp name, object header
 * times zeroed (same bytes on every run), then renamed.
 */
export async function writeKerasWeights(dest: string, tensors: readonly TensorToWrite[], sourceH5: string): Promise<void> {
  const replace = new Map(tensors.map((t) => [t.name, t]));
  for (const t of tensors) typedView(t);
  const lib = await h5();
  const tmp = join(dirname(dest), `.${basename(dest)}.${randomBytes(4).toString('hex')}.tmp`);
  const src = openH5(lib, sourceH5, sourceH5, 'r');
  try {
    const out = new lib.File(tmp, 'w');
    const used = new Set<string>();
    try {
      copyAttrs(src, out);
      copyTree(lib, src, out, '', replace, used);
    } finally {
      out.close();
    }
    const missing = tensors.find((t) => !used.has(t.name));
    if (missing) throw new UsageError(`tensor ${missing.name} has no dataset in the Keras file it is written like (${sourceH5})`);
    await zeroObjectTimes(tmp);
    await rename(tmp, dest);
  } catch (e) {
    await unlink(tmp).catch(() => undefined);
    throw e;
  } finally {
    src.close();
  }
}
