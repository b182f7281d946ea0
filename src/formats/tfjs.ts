/**
 * TensorFlow.js weights reader and writer (docs/formats.md, "TensorFlow.js").
 *
 * The reader parses `model.json` (layers-model or graph-model) or a bare
 * `*weights_manifest.json`, stats the shard files and maps every weight onto byte spans of
 * those shards; it never reads shard data. Within a manifest group the weights are packed
 * back to back in manifest order and the resulting stream is cut into the group's shards, so a
 * weight may span several files. The writer emits a float32/int32/bool checkpoint that
 * tfjs-layers loads. Nothing here imports tfjs itself (see `src/tfjs/runtime.ts`).
 */
import { readFile, realpath, stat, mkdir } from 'node:fs/promises';
import { dirname, isAbsolute, join, posix, relative, sep, win32 } from 'node:path';
import { z } from 'zod';
import { InputError } from '../errors.ts';
import { DTYPES, decodeInto, elementCount, type DType, type FloatArray } from './dtype.ts';
import type { CheckpointContents, StoredEncoding, StoredTensor, TensorToWrite } from './types.ts';
import { dequantizeInPlace } from './tfjs-codec.ts';
import { writeFileAtomic } from '../io/atomic-file.ts';
import { openRegular } from '../io/open-regular.ts';

/** Largest model.json / manifest we parse; real ones are kilobytes to a few megabytes. */
export const MAX_TFJS_JSON_BYTES = 256 * 1024 * 1024;

/** The tfjs converter's default shard size, also used by our writer. */
export const TFJS_SHARD_BYTES = 4 * 1024 * 1024;

// ---------------------------------------------------------------------------- schema

const quantizationSchema = z.looseObject({
  dtype: z.string(),
  scale: z.number().optional(),
  min: z.number().optional(),
  original_dtype: z.string().optional(),
});

const entrySchema = z.looseObject({
  name: z.string().min(1),
  shape: z.array(z.int().nonnegative()),
  dtype: z.string(),
  group: z.string().optional(),
  quantization: quantizationSchema.optional(),
});

const groupSchema = z.looseObject({
  paths: z.array(z.string()),
  weights: z.array(entrySchema),
});

const manifestSchema = z.array(groupSchema);

const modelJsonSchema = z.looseObject({
  format: z.string().optional(),
  modelTopology: z.unknown().optional(),
  weightsManifest: manifestSchema,
});

/** One weight of a manifest, as tfjs spells it (unknown keys are kept). */
export type TfjsManifestEntry = z.infer<typeof entrySchema>;
/** One manifest group: shard paths relative to the JSON's folder, and the weights they hold. */
export type TfjsManifestGroup = z.infer<typeof groupSchema>;

/** What `readTfjsCheckpoint` puts in `CheckpointContents.extras`. */
export interface TfjsExtras {
  /** Which JSON the checkpoint came from. */
  source: 'model.json' | 'weights-manifest';
  /** model.json without `weightsManifest` (modelTopology, format, generatedBy, …). */
  model?: Record<string, unknown>;
  /** The manifest exactly as validated: original names, order, groups and quantization. */
  manifest: TfjsManifestGroup[];
  /** Flattened weight names in manifest order (same order as `tensors`). */
  weightNames: string[];
}

// ---------------------------------------------------------------------------- dtypes

const PLAIN_DTYPES: Readonly<Record<string, DType>> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };
const QUANTIZED_DTYPES: Readonly<Record<string, DType>> = { uint8: 'U8', uint16: 'U16', float16: 'F16' };
const TFJS_NAME_OF: Partial<Record<DType, string>> = { F32: 'float32', I32: 'int32', BOOL: 'bool' };

/** Logical dtype and on-disk encoding of one manifest entry, or an InputError. */
function entryEncoding(entry: TfjsManifestEntry, where: string, file: string): { dtype: DType; encoding: StoredEncoding } {
  const dtype = PLAIN_DTYPES[entry.dtype];
  if (!dtype) {
    throw new InputError(file, `${where}: dtype "${entry.dtype}" is not supported (expected float32, int32 or bool)`, 'unsupported-dtype');
  }
  const q = entry.quantization;
  if (!q) return { dtype, encoding: { dtype } };
  const stored = QUANTIZED_DTYPES[q.dtype];
  if (!stored) {
    throw new InputError(file, `${where}: quantization dtype "${q.dtype}" is not supported (expected uint8, uint16 or float16)`, 'unsupported-quantization');
  }
  // tfjs decodes quantized int32 weights with Math.round(q*scale+min); our affine encoding has
  // no rounding step, so refuse instead of returning subtly different values. The converter
  // only ever quantizes float32 weights.
  const original = q.original_dtype ?? entry.dtype;
  if (entry.dtype !== 'float32' || original !== 'float32') {
    throw new InputError(file, `${where}: ${q.dtype} quantization of a ${original} weight is not supported (only float32 weights)`, 'unsupported-quantization');
  }
  if (stored === 'F16') return { dtype, encoding: { dtype: 'F16' } };
  if (q.scale === undefined || q.min === undefined) {
    throw new InputError(file, `${where}: ${q.dtype} quantization needs both scale and min`, 'bad-manifest');
  }
  return { dtype, encoding: { dtype: stored, quantization: { scale: q.scale, min: q.min } } };
}

// ---------------------------------------------------------------------------- reading

/** Parses a JSON file of bounded size, naming the file on failure. */
async function readJsonFile(path: string): Promise<unknown> {
  let size: number;
  try {
    const st = await stat(path);
    if (!st.isFile()) throw new InputError(path, 'is not a regular file', 'unreadable');
    size = st.size;
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot open file (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'unreadable');
  }
  if (size > MAX_TFJS_JSON_BYTES) {
    throw new InputError(path, `JSON is ${size} bytes, more than the ${MAX_TFJS_JSON_BYTES}-byte limit`, 'json-too-large');
  }
  const text = await readFile(path, 'utf8');
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(path, `not valid JSON (${(err as Error).message})`, 'json-parse');
  }
}

/** Refuses shard paths that could leave the JSON's folder (absolute, drive letters, `..`). */
function checkShardPath(shard: string, file: string, where: string): void {
  const segments = shard.split(/[\\/]/);
  const escapes =
    shard === '' || posix.isAbsolute(shard) || win32.isAbsolute(shard) || isAbsolute(shard) ||
    /^[A-Za-z]:/.test(shard) || segments.includes('..');
  if (escapes) {
    throw new InputError(file, `${where}: shard path "${shard}" leads outside the folder of the JSON file`, 'shard-path-escape');
  }
}

/**
 * A shard that is a symlink (or inside a symlinked folder) leading outside the JSON file's folder
 * is refused, as for safetensors shards: a checkpoint folder never reads files beyond itself.
 */
async function checkShardInsideFolder(shard: string, folder: string, file: string, where: string): Promise<void> {
  let real: string;
  try {
    real = await realpath(shard);
  } catch {
    return; // a missing shard is reported with its size check
  }
  const rel = relative(await realpath(folder), real);
  if (rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel)) {
    throw new InputError(file, `${where}: shard "${relative(folder, shard)}" is a symlink leading outside the folder of the JSON file`, 'shard-path-escape');
  }
}

/** Index of the shard to blame when a group's shards are too short in total. */
function blameShortShard(sizes: number[]): number {
  // The converter cuts equal shards, so a non-last shard smaller than another one is the culprit.
  let largest = 0;
  for (let i = 0; i < sizes.length - 1; i++) largest = Math.max(largest, sizes[i]);
  for (let i = 0; i < sizes.length - 1; i++) if (sizes[i] < largest) return i;
  return sizes.length - 1;
}

/** Byte spans for the group-stream range [begin, begin+length) over shards with the given sizes. */
function spansFor(begin: number, length: number, paths: string[], sizes: number[]): StoredTensor['spans'] {
  const spans: StoredTensor['spans'] = [];
  let shardStart = 0;
  let remaining = length;
  let pos = begin;
  for (let s = 0; s < paths.length && remaining > 0; s++) {
    const shardEnd = shardStart + sizes[s];
    if (pos < shardEnd) {
      const take = Math.min(remaining, shardEnd - pos);
      spans.push({ path: paths[s], offset: pos - shardStart, length: take });
      pos += take;
      remaining -= take;
    }
    shardStart = shardEnd;
  }
  return spans;
}

/**
 * Reads a TF.js checkpoint: `model.json` (layers-model or graph-model) or a bare
 * `*weights_manifest.json`. Validates the manifest and the shard sizes with `stat` only.
 * Tensors come in manifest order; quantized float32 weights keep logical dtype F32 with a
 * U8/U16 (affine) or F16 encoding. Throws InputError with a stable `rule` on any violation.
 */
export async function readTfjsCheckpoint(path: string): Promise<CheckpointContents> {
  const json = await readJsonFile(path);
  let manifest: TfjsManifestGroup[];
  let model: Record<string, unknown> | undefined;
  if (Array.isArray(json)) {
    manifest = parseWith(manifestSchema, json, path);
  } else if (json !== null && typeof json === 'object' && 'weightsManifest' in json) {
    const parsed = parseWith(modelJsonSchema, json, path);
    manifest = parsed.weightsManifest;
    const { weightsManifest: _, ...rest } = json as Record<string, unknown>;
    model = rest;
  } else {
    throw new InputError(path, 'neither a model.json (object with weightsManifest) nor a weights manifest (array of groups)', 'not-tfjs');
  }

  const folder = dirname(path);
  const files = [path];
  const tensors: StoredTensor[] = [];
  const seen = new Set<string>();
  for (let g = 0; g < manifest.length; g++) {
    const group = manifest[g];
    const where = `manifest group ${g + 1}`;
    group.paths.forEach((p) => checkShardPath(p, path, where));
    const shardPaths = group.paths.map((p) => join(folder, p));
    const sizes: number[] = [];
    for (const shard of shardPaths) {
      await checkShardInsideFolder(shard, folder, path, where);
      try {
        const st = await stat(shard);
        if (!st.isFile()) throw new InputError(shard, `shard of ${path} is not a regular file`, 'shard-missing');
        sizes.push(st.size);
      } catch (err) {
        if (err instanceof InputError) throw err;
        throw new InputError(shard, `shard listed in ${path} cannot be opened (${(err as NodeJS.ErrnoException).code ?? String(err)})`, 'shard-missing');
      }
    }
    files.push(...shardPaths);

    let offset = 0;
    const placed: { tensor: StoredTensor; begin: number; length: number }[] = [];
    for (let w = 0; w < group.weights.length; w++) {
      const entry = group.weights[w];
      const whereEntry = `weight "${entry.name}" (${where}, entry ${w + 1})`;
      if (seen.has(entry.name)) throw new InputError(path, `${whereEntry}: duplicate weight name`, 'duplicate-name');
      seen.add(entry.name);
      const { dtype, encoding } = entryEncoding(entry, whereEntry, path);
      const length = elementCount(entry.shape) * DTYPES[encoding.dtype].bytes;
      if (!Number.isSafeInteger(length) || !Number.isSafeInteger(offset + length)) {
        throw new InputError(path, `${whereEntry}: byte size of shape [${entry.shape}] overflows`, 'size-overflow');
      }
      placed.push({ tensor: { name: entry.name, dtype, shape: [...entry.shape], encoding, spans: [] }, begin: offset, length });
      offset += length;
    }
    const have = sizes.reduce((a, b) => a + b, 0);
    if (have < offset) {
      if (sizes.length === 0) {
        throw new InputError(path, `${where}: weights need ${offset} bytes but the group lists no shard files`, 'shard-short');
      }
      const s = blameShortShard(sizes);
      throw new InputError(shardPaths[s], `shard is ${sizes[s]} bytes; ${where} of ${path} needs ${offset} bytes across ${sizes.length} shard(s), which hold ${have}`, 'shard-short');
    }
    if (have > offset) {
      throw new InputError(shardPaths[shardPaths.length - 1], `${have - offset} trailing bytes: ${where} of ${path} needs ${offset} bytes across ${sizes.length} shard(s), which hold ${have}`, 'shard-trailing-bytes');
    }
    for (const { tensor, begin, length } of placed) {
      tensor.spans = spansFor(begin, length, shardPaths, sizes);
      tensors.push(tensor);
    }
  }

  const extras: TfjsExtras = {
    source: model ? 'model.json' : 'weights-manifest',
    ...(model ? { model } : {}),
    manifest,
    weightNames: tensors.map((t) => t.name),
  };
  return { format: 'tfjs', files, tensors, metadata: {}, extras: extras as unknown as Record<string, unknown> };
}

function parseWith<T>(schema: z.ZodType<T>, value: unknown, file: string): T {
  const result = schema.safeParse(value);
  if (!result.success) {
    const issue = result.error.issues[0];
    const at = issue.path.length ? ` at ${issue.path.join('.')}` : '';
    throw new InputError(file, `invalid weights manifest: ${issue.message}${at}`, 'bad-manifest');
  }
  return result.data;
}

/** The extras of a tfjs checkpoint, typed (undefined when they are not tfjs extras). */
export function tfjsExtras(contents: Pick<CheckpointContents, 'extras'>): TfjsExtras | undefined {
  const e = contents.extras as Partial<TfjsExtras> | undefined;
  return e && Array.isArray(e.manifest) && Array.isArray(e.weightNames) ? (e as TfjsExtras) : undefined;
}

// ---------------------------------------------------------------------------- decoding

/** Reads a tensor's encoded bytes (all spans, in order) with positioned reads. */
export async function readStoredBytes(tensor: StoredTensor): Promise<Uint8Array> {
  const total = tensor.spans.reduce((a, s) => a + s.length, 0);
  const bytes = new Uint8Array(total);
  let at = 0;
  for (const span of tensor.spans) {
    const fh = await openRegular(span.path);
    try {
      let done = 0;
      while (done < span.length) {
        const { bytesRead } = await fh.read(bytes, at + done, span.length - done, span.offset + done);
        if (bytesRead === 0) throw new InputError(span.path, `ended early reading tensor "${tensor.name}" (${span.length} bytes at offset ${span.offset})`, 'shard-short');
        done += bytesRead;
      }
    } finally {
      await fh.close();
    }
    at += span.length;
  }
  return bytes;
}

/**
 * Decodes one stored tensor into `out` (length ≥ element count), applying tfjs quantization
 * (`dequantizeInPlace`). A simple reference path for tests and small tensors; bulk reads go
 * through the general range reader.
 */
export async function decodeStoredTensor(tensor: StoredTensor, out: FloatArray): Promise<void> {
  const count = elementCount(tensor.shape);
  const bytes = await readStoredBytes(tensor);
  decodeInto(tensor.encoding.dtype, bytes, count, out, 0, !tensor.encoding.bigEndian);
  const q = tensor.encoding.quantization;
  if (q) dequantizeInPlace(out, q.scale, q.min, 0, count);
}

// ---------------------------------------------------------------------------- names

export { dequantizeInPlace, stripTfjsCounter } from './tfjs-codec.ts';

// ---------------------------------------------------------------------------- writing

/** Options of `writeTfjsCheckpoint`. */
export interface TfjsWriteOptions {
  /** Largest shard in bytes (converter default 4 MiB). Data that fits in one shard goes to `weights.bin`. */
  shardBytes?: number;
}

/** The pieces of the concatenated tensor stream that fall in [begin, end). */
function* streamSlice(tensors: TensorToWrite[], begin: number, end: number): Generator<Uint8Array> {
  let at = 0;
  for (const t of tensors) {
    const from = Math.max(begin, at);
    const to = Math.min(end, at + t.data.byteLength);
    if (from < to) yield t.data.subarray(from - at, to - at);
    at += t.data.byteLength;
    if (at >= end) return;
  }
}

/**
 * Writes a TF.js checkpoint into `dir` (created if needed) and returns the written paths, JSON
 * first. Tensors must be F32, I32 or BOOL (pass quantized or F16 weights as F32) and are written
 * unquantized in the given order as one manifest group: `weights.bin` when the data fits in one
 * shard, else converter-style `group1-shard<i>of<n>.bin`. With extras from a model.json the
 * other model.json fields (topology, format, …) are kept; extras from a bare manifest produce
 * `weights_manifest.json` instead, like the input. Each file is written atomically, the JSON last.
 */
export async function writeTfjsCheckpoint(
  dir: string,
  tensors: TensorToWrite[],
  extras?: Record<string, unknown>,
  options: TfjsWriteOptions = {},
): Promise<string[]> {
  const { shardBytes = TFJS_SHARD_BYTES } = options;
  if (!Number.isSafeInteger(shardBytes) || shardBytes < 1) throw new RangeError(`writeTfjsCheckpoint: shardBytes must be a positive integer, got ${shardBytes}`);
  const weights = tensors.map((t) => {
    const dtype = TFJS_NAME_OF[t.dtype];
    if (!dtype) throw new RangeError(`writeTfjsCheckpoint: tensor "${t.name}" has dtype ${t.dtype}; tfjs stores only F32, I32 and BOOL`);
    const expected = elementCount(t.shape) * DTYPES[t.dtype].bytes;
    if (t.data.byteLength !== expected) {
      throw new RangeError(`writeTfjsCheckpoint: tensor "${t.name}" has ${t.data.byteLength} bytes, shape [${t.shape}] ${t.dtype} needs ${expected}`);
    }
    return { name: t.name, shape: [...t.shape], dtype };
  });
  const names = new Set(weights.map((w) => w.name));
  if (names.size !== weights.length) throw new RangeError('writeTfjsCheckpoint: tensor names must be unique');

  const total = tensors.reduce((a, t) => a + t.data.byteLength, 0);
  const count = Math.max(1, Math.ceil(total / shardBytes));
  const paths = count === 1 ? ['weights.bin'] : Array.from({ length: count }, (_, i) => `group1-shard${i + 1}of${count}.bin`);

  await mkdir(dir, { recursive: true });
  const written: string[] = [];
  for (let i = 0; i < count; i++) {
    const target = join(dir, paths[i]);
    await writeFileAtomic(target, streamSlice(tensors, i * shardBytes, Math.min(total, (i + 1) * shardBytes)));
    written.push(target);
  }

  const e = extras ? tfjsExtras({ extras }) : undefined;
  const manifest = [{ paths, weights }];
  const bare = e?.source === 'weights-manifest';
  const jsonPath = join(dir, bare ? 'weights_manifest.json' : 'model.json');
  const json = bare ? manifest : { ...(e?.model ?? {}), weightsManifest: manifest };
  await writeFileAtomic(jsonPath, [new TextEncoder().encode(JSON.stringify(json))]);
  return [jsonPath, ...written];
}
