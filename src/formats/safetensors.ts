/**
 * safetensors reader and writer (docs/formats.md, "safetensors").
 *
 * The reader reads only the 8-byte length prefix and the JSON header, by position, and
 * validates them at least as strictly as the reference Rust reader; it never touches tensor
 * data. The writer reproduces the reference serializer byte for byte: tensors sorted by dtype
 * (widest first) then by name, compact JSON with `__metadata__` first, spaces up to a
 * multiple of 8.
 */
import type { FileHandle } from 'node:fs/promises';
import { openByteSource } from '../io/byte-source.ts';
import { writeFileAtomicWith } from '../io/atomic-file.ts';
import { InputError } from '../errors.ts';
import { writeFully } from '../io/atomic-file.ts';
import { DTYPES, isDType, type DType } from './dtype.ts';
import { strictJsonIssues } from './json-strict.ts';
import type { CheckpointContents, StoredTensor, TensorToWrite } from './types.ts';

// Sharded checkpoints live in their own module; re-exported so callers need one import.
export { readShardedSafetensors } from './safetensors-sharded.ts';

/** The reference reader's and writer's `MAX_HEADER_SIZE`. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Codes the reference library knows but this tool cannot decode. */
const UNSUPPORTED_DTYPES = new Set([
  'F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64',
]);

/**
 * Writer order: the reference `enum Dtype` is declared in increasing alignment order and the
 * serializer sorts descending, so the rank here is the enum position (higher = written first).
 */
const DTYPE_RANK: Readonly<Record<DType, number>> = {
  BOOL: 0, U8: 1, I8: 2, F8_E5M2: 3, F8_E4M3: 4, I16: 5, U16: 6, F16: 7, BF16: 8,
  I32: 9, U32: 10, F32: 11, F64: 12, I64: 13, U64: 14,
};

const METADATA_KEY = '__metadata__';

// ---------------------------------------------------------------------------- reading

/** A validated header: tensors in data-offset order, offsets relative to the data buffer. */
export interface ParsedSafetensorsHeader {
  /** N, the JSON header's byte length; the data buffer starts at 8 + N. */
  headerLength: number;
  metadata: Record<string, string>;
  tensors: { name: string; dtype: DType; shape: number[]; begin: number; end: number }[];
}

/**
 * Reads and validates a safetensors file's header with positioned reads (never the data), from
 * a local file or, by HTTP Range requests, a remote one (src/io/byte-source.ts).
 * Throws InputError (one line, naming the file, the tensor and the broken rule) on any
 * violation; `err.rule` is a stable id such as 'header-too-large' or 'gap'.
 */
export async function readSafetensorsHeader(path: string): Promise<CheckpointContents> {
  const src = await openByteSource(path);
  try {
    const size = src.size;
    if (size === 0) throw new InputError(path, 'file is empty (0 bytes); a safetensors file starts with an 8-byte header length', 'empty-file');
    if (size < 8) throw new InputError(path, `file has ${size} bytes, fewer than the 8-byte header length prefix`, 'header-too-small');
    const prefix = await ioStep(path, () => src.read(0, 8));
    const n = new DataView(prefix.buffer, prefix.byteOffset, 8).getBigUint64(0, true);
    // Checked on the BigInt before anything is sized by it.
    if (n > BigInt(MAX_HEADER_BYTES)) {
      throw new InputError(path, `header length ${n} exceeds the limit of ${MAX_HEADER_BYTES} bytes`, 'header-too-large');
    }
    const headerLength = Number(n);
    if (8 + headerLength > size) {
      throw new InputError(path, `header length ${headerLength} needs ${8 + headerLength} bytes but the file has only ${size} (truncated file?)`, 'header-past-eof');
    }
    const headerBytes = await ioStep(path, () => src.read(8, headerLength));
    const parsed = parseSafetensorsHeader(path, headerBytes, size);
    const dataStart = 8 + parsed.headerLength;
    const tensors: StoredTensor[] = parsed.tensors.map((t) => ({
      name: t.name,
      dtype: t.dtype,
      shape: t.shape,
      encoding: { dtype: t.dtype },
      spans: [{ path, offset: dataStart + t.begin, length: t.end - t.begin }],
    }));
    return { format: 'safetensors', files: [path], tensors, metadata: parsed.metadata };
  } finally {
    await src.close();
  }
}

/**
 * Validates the JSON header bytes (bytes 8..8+N) of a file of `fileSize` bytes. Pure, so the
 * rules can be tested without I/O. `file` only names the file in errors.
 */
export function parseSafetensorsHeader(file: string, headerBytes: Uint8Array, fileSize: number): ParsedSafetensorsHeader {
  const fail = (rule: string, message: string): never => {
    throw new InputError(file, message, rule);
  };
  const headerLength = headerBytes.byteLength;
  let text: string;
  try {
    // ignoreBOM keeps a leading BOM so JSON.parse rejects it, as serde_json does.
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    return fail('header-utf8', `header (${headerLength} bytes) is not valid UTF-8`);
  }
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (err) {
    return fail('header-json', `header is not valid JSON (${oneLine((err as Error).message)})`);
  }
  if (!isPlainObject(root)) return fail('header-not-object', `header JSON is ${describe(root)}, expected an object`);
  refuseWhatSerdeRefuses(text, fail);

  let metadata: Record<string, string> = {};
  const tensors: ParsedSafetensorsHeader['tensors'] = [];
  for (const [name, entry] of Object.entries(root)) {
    if (name === METADATA_KEY) {
      metadata = parseMetadata(entry, fail);
      continue;
    }
    tensors.push(parseEntry(name, entry, fail));
  }

  // The reference sorts by (begin, end); the name tie-break only makes zero-length ties stable.
  tensors.sort((a, b) => a.begin - b.begin || a.end - b.end || compareUtf8(a.name, b.name));
  let expected = 0;
  for (const t of tensors) {
    if (t.begin !== expected) {
      if (expected === 0 && t.begin > 0) fail('gap-before-data', `${q(t.name)}: data_offsets begin at ${t.begin}, but the first tensor must begin at 0`);
      if (t.begin > expected) fail('gap', `${q(t.name)}: data_offsets begin at ${t.begin}, leaving a gap after the previous tensor's end ${expected}`);
      fail('overlap', `${q(t.name)}: data_offsets begin at ${t.begin}, overlapping the previous tensor, which ends at ${expected}`);
    }
    expected = t.end;
  }
  const needed = 8 + headerLength + expected;
  if (needed > fileSize) {
    fail('truncated', `file is truncated: the header describes ${expected} data bytes, so the file needs ${needed} bytes, but it has ${fileSize}`);
  }
  if (needed < fileSize) {
    fail('trailing-bytes', `file has ${fileSize - needed} bytes after the last tensor's data (tensors end at byte ${needed}, file size ${fileSize})`);
  }
  return { headerLength, metadata, tensors };
}

/** Runs one I/O call, turning its failure (EIO, a file shrinking under us) into an InputError. */
async function ioStep<T>(path: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(path, `cannot read header (${oneLine((err as Error).message)})`, 'unreadable');
  }
}

type Fail = (rule: string, message: string) => never;

/**
 * The reference reader parses the header with serde into integer shapes and offsets and
 * refuses a repeated key; JSON.parse would silently take `32.0` as 32 and keep the last of
 * two entries of one tensor (docs/formats.md).
 */
function refuseWhatSerdeRefuses(text: string, fail: Fail): void {
  const { duplicateKey, nonIntegerNumbers } = strictJsonIssues(text);
  if (duplicateKey) {
    const where = duplicateKey.path.length ? ` in ${duplicateKey.path.map(q).join(' › ')}` : '';
    fail('duplicate-key', `key ${q(duplicateKey.key)} appears twice${where}`);
  }
  for (const { path, token } of nonIntegerNumbers) {
    const field = path[path.length - 1];
    // Values JSON.parse keeps as non-integers (1.5) get parseEntry's own message.
    if (path.length === 2 && path[0] !== METADATA_KEY && (field === 'shape' || field === 'data_offsets') && Number.isInteger(Number(token))) {
      fail(field === 'shape' ? 'shape-invalid' : 'offsets-invalid', `${q(path[0])}: ${field} holds ${token}, expected integers written without a fraction or exponent`);
    }
  }
}

function parseMetadata(entry: unknown, fail: Fail): Record<string, string> {
  // serde reads `"__metadata__": null` as an absent map; accept it the same way.
  if (entry === null) return {};
  if (!isPlainObject(entry)) return fail('metadata-not-object', `${METADATA_KEY} is ${describe(entry)}, expected an object of string values`);
  for (const [key, value] of Object.entries(entry)) {
    if (typeof value !== 'string') fail('metadata-value-not-string', `${METADATA_KEY} key ${q(key)} is ${describe(value)}, expected a string`);
  }
  // fromEntries defines own properties, so a key like "__proto__" stays plain data.
  return Object.fromEntries(Object.entries(entry as Record<string, string>));
}

function parseEntry(name: string, entry: unknown, fail: Fail): ParsedSafetensorsHeader['tensors'][number] {
  if (name === '') fail('tensor-name-empty', 'a tensor has an empty name');
  const at = q(name);
  if (!isPlainObject(entry)) return fail('tensor-not-object', `${at}: entry is ${describe(entry)}, expected {dtype, shape, data_offsets}`);
  for (const field of ['dtype', 'shape', 'data_offsets']) {
    if (!Object.hasOwn(entry, field)) fail('tensor-field-missing', `${at}: entry has no "${field}"`);
  }
  const { dtype, shape, data_offsets: offsets } = entry as { dtype: unknown; shape: unknown; data_offsets: unknown };

  if (typeof dtype !== 'string') return fail('dtype-unknown', `${at}: dtype is ${describe(dtype)}, expected a dtype string`);
  if (UNSUPPORTED_DTYPES.has(dtype)) fail('dtype-unsupported', `${at}: unsupported dtype ${dtype}`);
  if (!isDType(dtype)) return fail('dtype-unknown', `${at}: unknown dtype ${JSON.stringify(dtype)}`);

  if (!Array.isArray(shape)) return fail('shape-invalid', `${at}: shape is ${describe(shape)}, expected an array of integers`);
  for (let i = 0; i < shape.length; i++) {
    const d: unknown = shape[i];
    if (typeof d === 'number' && Number.isInteger(d) && d < 0) fail('shape-negative', `${at}: negative dimension ${d} at shape[${i}]`);
    if (!isSafeCount(d)) fail('shape-invalid', `${at}: shape[${i}] is ${describe(d)}, expected a non-negative safe integer`);
  }

  if (!Array.isArray(offsets) || offsets.length !== 2 || !isSafeCount(offsets[0]) || !isSafeCount(offsets[1])) {
    return fail('offsets-invalid', `${at}: data_offsets is ${describe(offsets)}, expected [begin, end] of non-negative safe integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) fail('offsets-reversed', `${at}: data_offsets end ${end} is before begin ${begin}`);

  // Checked multiplication, as the reference does, but against the safe-integer range.
  const size = DTYPES[dtype].bytes;
  let bytes = size;
  for (const d of shape as number[]) {
    bytes *= d;
    if (!Number.isSafeInteger(bytes)) fail('size-overflow', `${at}: shape [${(shape as number[]).join(', ')}] × ${size} bytes overflows`);
  }
  if (end - begin !== bytes) {
    fail('tensor-size-mismatch', `${at}: ${dtype} shape [${(shape as number[]).join(', ')}] needs ${bytes} bytes but data_offsets [${begin}, ${end}] span ${end - begin}`);
  }
  return { name, dtype, shape: shape as number[], begin, end };
}

// ---------------------------------------------------------------------------- writing

/** Where every tensor goes in a file the writer will produce. */
export interface SafetensorsPlan {
  /** The 8-byte little-endian length followed by the space-padded JSON header. */
  header: Uint8Array;
  /** Byte range of each tensor relative to the data buffer, which starts at `header.length`. */
  offsets: Map<string, { begin: number; end: number }>;
  /** Tensor names in the order their data is laid out. */
  order: string[];
  /** Size of the whole file. */
  totalBytes: number;
}

/**
 * Lays out a safetensors file exactly as the reference serializer does. Data for tensor `t`
 * goes at file position `header.length + offsets.get(t).begin`. Metadata that is absent or
 * empty is left out of the header (an empty map carries nothing and reads back as `{}`).
 * Throws RangeError for duplicate names, the reserved name `__metadata__`, or a bad shape.
 */
export function planSafetensors(
  tensors: readonly { name: string; dtype: DType; shape: readonly number[] }[],
  metadata?: Record<string, string>,
): SafetensorsPlan {
  const seen = new Set<string>();
  for (const t of tensors) {
    if (t.name === METADATA_KEY) throw new RangeError(`planSafetensors: ${METADATA_KEY} is reserved and cannot name a tensor`);
    if (seen.has(t.name)) throw new RangeError(`planSafetensors: duplicate tensor name ${q(t.name)}`);
    seen.add(t.name);
    if (!isDType(t.dtype)) throw new RangeError(`planSafetensors: ${q(t.name)} has unknown dtype ${String(t.dtype)}`);
    if (!t.shape.every((d) => isSafeCount(d))) throw new RangeError(`planSafetensors: ${q(t.name)} has invalid shape [${t.shape.join(', ')}]`);
  }
  const sorted = [...tensors].sort((a, b) => DTYPE_RANK[b.dtype] - DTYPE_RANK[a.dtype] || compareUtf8(a.name, b.name));

  const parts: string[] = [];
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new RangeError(`planSafetensors: metadata ${q(k)} is not a string`);
    }
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  const offsets = new Map<string, { begin: number; end: number }>();
  let offset = 0;
  for (const t of sorted) {
    const bytes = byteLength(t.dtype, t.shape);
    offsets.set(t.name, { begin: offset, end: offset + bytes });
    // Key order dtype, shape, data_offsets is the field order of the reference TensorInfo.
    parts.push(`${JSON.stringify(t.name)}:{"dtype":"${t.dtype}","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + bytes}]}`);
    offset += bytes;
  }
  const json = new TextEncoder().encode(`{${parts.join(',')}}`);
  const padded = Math.ceil(json.length / 8) * 8;
  if (padded > MAX_HEADER_BYTES) throw new RangeError(`planSafetensors: header of ${padded} bytes exceeds ${MAX_HEADER_BYTES}`);
  const header = new Uint8Array(8 + padded).fill(0x20, 8 + json.length);
  new DataView(header.buffer).setBigUint64(0, BigInt(padded), true);
  header.set(json, 8);
  return { header, offsets, order: sorted.map((t) => t.name), totalBytes: header.length + offset };
}

/**
 * Writes a safetensors file atomically, byte-identical to the reference library's output
 * for the same tensors and metadata. Each tensor's `data` must hold exactly its bytes.
 */
export async function writeSafetensors(path: string, tensors: readonly TensorToWrite[], metadata?: Record<string, string>): Promise<void> {
  const plan = planSafetensors(tensors, metadata);
  for (const t of tensors) {
    const { begin, end } = plan.offsets.get(t.name)!;
    if (t.data.byteLength !== end - begin) {
      throw new RangeError(`writeSafetensors: ${q(t.name)} ${t.dtype} [${t.shape.join(', ')}] needs ${end - begin} bytes, got ${t.data.byteLength}`);
    }
  }
  await writePlannedSafetensors(path, plan, async (fh, dataStart) => {
    for (const t of tensors) await writeExactly(fh, t.data, dataStart + plan.offsets.get(t.name)!.begin);
  });
}

/**
 * The streaming form of `writeSafetensors` for outputs too large to hold in memory: creates
 * the temp file `.<name>.<pid>.<random>.tmp` beside `path`, sizes it to `plan.totalBytes`,
 * writes the header, lets `fill` pwrite tensor data at `dataStart + begin` (in any order, from
 * any number of writers on the handle), then fsyncs and renames it into place. The temp file
 * is removed if anything fails.
 */
export async function writePlannedSafetensors(
  path: string,
  plan: SafetensorsPlan,
  fill: (fh: FileHandle, dataStart: number) => Promise<void>,
): Promise<void> {
  await writeFileAtomicWith(path, async (fh) => {
    await fh.truncate(plan.totalBytes);
    await writeExactly(fh, plan.header, 0);
    await fill(fh, plan.header.length);
  });
}

// ---------------------------------------------------------------------------- helpers

function byteLength(dtype: DType, shape: readonly number[]): number {
  let bytes = DTYPES[dtype].bytes;
  for (const d of shape) bytes *= d;
  if (!Number.isSafeInteger(bytes)) throw new RangeError(`safetensors: shape [${shape.join(', ')}] of ${dtype} is too large`);
  return bytes;
}

/** Byte-wise UTF-8 order, which is how Rust orders `String`s (UTF-16 order differs above U+FFFF). */
export function compareUtf8(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** Reads exactly `length` bytes at `position` into a fresh buffer (short reads are retried). */
export async function readExactly(fh: FileHandle, position: number, length: number): Promise<Uint8Array> {
  const buffer = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) throw new RangeError(`unexpected end of file at byte ${position + done}`);
    done += bytesRead;
  }
  return buffer;
}

const writeExactly = (fh: FileHandle, data: Uint8Array, position: number): Promise<void> => writeFully(fh, data, position);

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A non-negative safe integer. `-0` is refused: serde_json reads it as a float, not a usize. */
function isSafeCount(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 && !Object.is(v, -0);
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array ${clip(JSON.stringify(v))}`;
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'string') return `the string ${clip(JSON.stringify(v))}`;
  if (Object.is(v, -0)) return 'number -0';
  return `${typeof v} ${clip(String(v))}`;
}

function clip(s: string): string {
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

/** Quotes a tensor name for a one-line message (control characters escaped). */
function q(name: string): string {
  return clip(JSON.stringify(name));
}

function oneLine(s: string): string {
  return s.replace(/\s+/g, ' ');
}
