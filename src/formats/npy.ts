/**
 * NumPy `.npy` files: header validation (without eval), the StoredTensor a file (or an .npz
 * member) holds, the two per-checkpoint npy layouts (a folder of per-tensor files, one flat
 * vector) and numpy-identical writers. Format rules: docs/formats.md, "npy / npz".
 */
import { mkdir, open, readdir, readFile, stat, unlink } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InputError, UsageError } from '../errors.ts';
import { DTYPES, elementCount } from './dtype.ts';
import type { DType } from './dtype.ts';
import { scratchPath } from './scratch.ts';
import { NOT_REGULAR, openRegular } from '../io/open-regular.ts';
import { writeFileAtomicWith, writeFully } from '../io/atomic-file.ts';
import type { CheckpointContents, StoredTensor, TensorToWrite } from './types.ts';

/** Tensor name of a flat `.npy` checkpoint read without a tensor table. */
export const FLAT_TENSOR_NAME = 'flat';

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
/** Far above anything numpy writes for plain arrays; guards against huge allocations. */
const MAX_HEADER_BYTES = 1 << 20;
/** numpy's ARRAY_ALIGN and GROWTH_AXIS_MAX_DIGITS (numpy/lib/_format_impl.py). */
const ARRAY_ALIGN = 64;
const GROWTH_AXIS_MAX_DIGITS = 21;
const DEFAULT_REORDER_BUDGET = 32 << 20;

/** descr type code (after the byte-order character) → our DType. */
const NPY_TYPES: Readonly<Record<string, DType>> = {
  f2: 'F16', f4: 'F32', f8: 'F64',
  i1: 'I8', i2: 'I16', i4: 'I32', i8: 'I64',
  u1: 'U8', u2: 'U16', u4: 'U32', u8: 'U64',
  b1: 'BOOL',
};
const SUPPORTED_DESCRS = '<f2 <f4 <f8 |i1 |u1 |b1 <i2 <i4 <i8 <u2 <u4 <u8 (and their > big-endian forms)';
const KIND_NAMES: Readonly<Record<string, string>> = {
  c: 'complex', U: 'unicode string', S: 'byte string', a: 'byte string', V: 'void/structured',
  M: 'datetime', m: 'timedelta', f: 'float of this size', i: 'int of this size', u: 'uint of this size',
  b: 'bool of this size',
};

export interface NpyDescr {
  dtype: DType;
  /** True only for multi-byte types stored big-endian ('>'). */
  bigEndian: boolean;
}

export interface NpyHeader {
  /** Major format version (the minor is always 0). */
  version: 1 | 2 | 3;
  descr: NpyDescr;
  fortranOrder: boolean;
  shape: number[];
  /** Absolute position of the first data byte in the file that was read. */
  dataOffset: number;
  /** product(shape) × itemsize. */
  dataBytes: number;
}

export interface NpyReadOptions {
  /** Where the .npy bytes start inside the file (an uncompressed .npz member); default 0. */
  start?: number;
  /** How many bytes belong to the .npy from `start`; default: to the end of the file. */
  length?: number;
  /** File named in errors (the .npz when reading an inflated member from scratch); default the path. */
  errorFile?: string;
  /** Archive member named in errors. */
  member?: string;
  /** Memory budget of the Fortran → C reorder; exposed so tests can force the tiled path. */
  reorderBudgetBytes?: number;
}

interface Where {
  file: string;
  member?: string;
}

function fail(w: Where, rule: string, message: string): never {
  throw new InputError(w.file, w.member === undefined ? message : `member '${w.member}': ${message}`, rule);
}

// ------------------------------------------------------------------ header dict parsing

type PyValue =
  | { kind: 'str'; value: string }
  | { kind: 'int'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'none' }
  | { kind: 'tuple'; items: PyValue[] }
  | { kind: 'list'; items: PyValue[] }
  | { kind: 'dict'; entries: Map<string, PyValue> };

const MAX_NESTING = 32;

/** A recursive-descent reader for the Python literals numpy headers use; never evaluates code. */
class DictLiteralParser {
  private pos = 0;
  constructor(private readonly text: string, private readonly w: Where) {}

  parse(): Map<string, PyValue> {
    const v = this.value(0);
    this.skipSpace();
    if (this.pos !== this.text.length) this.error('unexpected text after the dict');
    if (v.kind !== 'dict') this.error('the header is not a dict');
    return v.entries;
  }

  private error(why: string): never {
    const shown = this.text.length > 120 ? `${this.text.slice(0, 120)}…` : this.text;
    fail(this.w, 'npy-header', `malformed header (${why} at character ${this.pos}): ${JSON.stringify(shown)}`);
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && ' \t\r\n\f\v'.includes(this.text[this.pos])) this.pos++;
  }

  private value(depth: number): PyValue {
    if (depth > MAX_NESTING) this.error('nesting too deep');
    this.skipSpace();
    const c = this.text[this.pos];
    if (c === undefined) this.error('unexpected end');
    if (c === '{') return this.dict(depth);
    if (c === '(') return this.tuple(depth);
    if (c === '[') return { kind: 'list', items: this.sequence(depth, ']') };
    if (c === "'" || c === '"') return { kind: 'str', value: this.string(c) };
    if (c === '-' || (c >= '0' && c <= '9')) return this.integer();
    const word = /^[A-Za-z_]+/.exec(this.text.slice(this.pos, this.pos + 16))?.[0];
    if (word === 'True' || word === 'False') {
      this.pos += word.length;
      return { kind: 'bool', value: word === 'True' };
    }
    if (word === 'None') {
      this.pos += 4;
      return { kind: 'none' };
    }
    this.error(`unexpected ${JSON.stringify(c)}`);
  }

  private dict(depth: number): PyValue {
    this.pos++; // {
    const entries = new Map<string, PyValue>();
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === '}') break;
      const key = this.value(depth + 1);
      if (key.kind !== 'str') this.error('dict keys must be strings');
      this.skipSpace();
      if (this.text[this.pos] !== ':') this.error("expected ':'");
      this.pos++;
      if (entries.has(key.value)) this.error(`duplicate key '${key.value}'`);
      entries.set(key.value, this.value(depth + 1));
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== '}') this.error("expected ',' or '}'");
    }
    this.pos++; // }
    return { kind: 'dict', entries };
  }

  /** Python semantics: `()` empty, `(x)` just x, `(x,)` / `(x, y)` tuples. */
  private tuple(depth: number): PyValue {
    const start = this.pos;
    this.pos++; // (
    this.skipSpace();
    if (this.text[this.pos] === ')') {
      this.pos++;
      return { kind: 'tuple', items: [] };
    }
    const first = this.value(depth + 1);
    this.skipSpace();
    if (this.text[this.pos] === ')') {
      this.pos++;
      return first;
    }
    this.pos = start + 1;
    return { kind: 'tuple', items: this.sequence(depth, ')', true) };
  }

  private sequence(depth: number, close: string, alreadyOpen = false): PyValue[] {
    if (!alreadyOpen) this.pos++;
    const items: PyValue[] = [];
    for (;;) {
      this.skipSpace();
      if (this.text[this.pos] === close) break;
      items.push(this.value(depth + 1));
      this.skipSpace();
      if (this.text[this.pos] === ',') this.pos++;
      else if (this.text[this.pos] !== close) this.error(`expected ',' or '${close}'`);
    }
    this.pos++;
    return items;
  }

  private string(quote: string): string {
    this.pos++;
    let out = '';
    for (;;) {
      const c = this.text[this.pos];
      if (c === undefined || c === '\n') this.error('unterminated string');
      this.pos++;
      if (c === quote) return out;
      if (c === '\\') {
        const next = this.text[this.pos];
        if (next === undefined) this.error('unterminated string');
        out += next; // descr/keys never need real escapes; keep the escaped character
        this.pos++;
      } else {
        out += c;
      }
    }
  }

  private integer(): PyValue {
    const m = /^-?[0-9]+L?/.exec(this.text.slice(this.pos, this.pos + 40)); // 'L': Python 2 longs
    if (!m) this.error('bad number');
    const digits = m[0].replace('L', '');
    const next = this.text[this.pos + m[0].length];
    if (next !== undefined && /[0-9A-Za-z_.]/.test(next)) this.error('bad number');
    const value = Number(digits);
    if (!Number.isSafeInteger(value)) {
      fail(this.w, 'npy-shape', `integer ${digits} in the header is too large (limit 2^53 − 1)`);
    }
    this.pos += m[0].length;
    return { kind: 'int', value };
  }
}

/** Maps a numpy descr string to our dtype, refusing pickled objects and non-numeric types. */
export function parseDescr(descr: string, w: Where = { file: '<descr>' }): NpyDescr {
  const m = /^([<>=|]?)(.*)$/s.exec(descr)!;
  const order = m[1];
  const code = m[2];
  if (code.startsWith('O')) {
    fail(
      w,
      'npy-object-dtype',
      `descr '${descr}' is an object array whose data is a Python pickle; refusing to load it ` +
        `(unpickling can run arbitrary code) — save a numeric array instead`,
    );
  }
  const dtype = NPY_TYPES[code];
  if (dtype === undefined) {
    const kind = KIND_NAMES[code[0]] ?? 'unknown type';
    fail(w, 'npy-dtype-unsupported', `descr '${descr}' (${kind}) is not supported; expected one of ${SUPPORTED_DESCRS}`);
  }
  return { dtype, bigEndian: order === '>' && DTYPES[dtype].bytes > 1 };
}

interface HeaderFields {
  descr: NpyDescr;
  fortranOrder: boolean;
  shape: number[];
}

function headerFields(dict: Map<string, PyValue>, w: Where): HeaderFields {
  const keys = [...dict.keys()].sort();
  if (keys.join(',') !== 'descr,fortran_order,shape') {
    fail(w, 'npy-header', `header keys are [${keys.join(', ')}], expected exactly descr, fortran_order, shape`);
  }
  const descr = dict.get('descr')!;
  if (descr.kind === 'list') {
    fail(w, 'npy-dtype-unsupported', `structured dtype (list-valued descr) is not supported; expected one of ${SUPPORTED_DESCRS}`);
  }
  if (descr.kind !== 'str') fail(w, 'npy-header', `descr must be a string, found a ${descr.kind}`);
  const fortran = dict.get('fortran_order')!;
  if (fortran.kind !== 'bool') fail(w, 'npy-header', `fortran_order must be True or False, found a ${fortran.kind}`);
  const shape = dict.get('shape')!;
  if (shape.kind !== 'tuple') fail(w, 'npy-shape', `shape must be a tuple of integers, found a ${shape.kind}`);
  const dims = shape.items.map((d, i) => {
    if (d.kind !== 'int' || d.value < 0) {
      fail(w, 'npy-shape', `shape[${i}] must be a non-negative integer, found ${d.kind === 'int' ? d.value : `a ${d.kind}`}`);
    }
    return d.value;
  });
  return { descr: parseDescr(descr.value, w), fortranOrder: fortran.value, shape: dims };
}

/** Parses header text (the dict literal) without eval. Exported for tests. */
export function parseNpyHeaderText(text: string, w: Where = { file: '<header>' }): HeaderFields {
  return headerFields(new DictLiteralParser(text, w).parse(), w);
}

function shapeText(shape: readonly number[]): string {
  return shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
}

// ------------------------------------------------------------------ positioned I/O helpers

async function openForRead(path: string, w: Where): Promise<FileHandle> {
  let fh: FileHandle;
  try {
    fh = await openRegular(path, w.file);
  } catch (e) {
    if (e instanceof InputError) fail(w, 'file-unreadable', NOT_REGULAR);
    const code = (e as NodeJS.ErrnoException).code;
    fail(w, code === 'ENOENT' ? 'file-missing' : 'file-unreadable', `cannot open (${code ?? String(e)})`);
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    fail(w, 'file-unreadable', 'not a regular file');
  }
  return fh;
}

/** Reads up to `length` bytes at `position`; shorter only at end of file. */
async function readAt(fh: FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.allocUnsafe(length);
  let got = 0;
  while (got < length) {
    const { bytesRead } = await fh.read(buf, got, length - got, position + got);
    if (bytesRead === 0) break;
    got += bytesRead;
  }
  return got === length ? buf : buf.subarray(0, got);
}

const writeAt = (fh: FileHandle, data: Uint8Array, position: number): Promise<void> => writeFully(fh, data, position);

// ------------------------------------------------------------------ header reading

async function readHeaderFrom(fh: FileHandle, opts: NpyReadOptions, w: Where): Promise<NpyHeader> {
  const size = (await fh.stat()).size;
  const start = opts.start ?? 0;
  const avail = Math.max(0, Math.min(opts.length ?? size - start, size - start));
  const pre = await readAt(fh, start, Math.min(12, avail));
  if (pre.length < 8 || MAGIC.some((b, i) => pre[i] !== b)) {
    fail(w, 'npy-magic', `not an .npy file: expected magic \\x93NUMPY, found ${pre.subarray(0, 8).toString('hex') || 'nothing'}`);
  }
  const major = pre[6];
  const minor = pre[7];
  if ((major !== 1 && major !== 2 && major !== 3) || minor !== 0) {
    fail(w, 'npy-version', `unsupported .npy format version ${major}.${minor} (expected 1.0, 2.0 or 3.0)`);
  }
  const prefix = major === 1 ? 10 : 12;
  if (pre.length < prefix) fail(w, 'npy-header-length', `ends inside the header length field (${avail} bytes)`);
  const headerLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
  if (headerLen > MAX_HEADER_BYTES) {
    fail(w, 'npy-header-too-large', `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  if (prefix + headerLen > avail) {
    fail(w, 'npy-header-length', `header length ${headerLen} runs past the end (${avail - prefix} bytes after the length field)`);
  }
  const raw = await readAt(fh, start + prefix, headerLen);
  let text: string;
  if (major === 3) {
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      fail(w, 'npy-header', 'version 3.0 header is not valid UTF-8');
    }
  } else {
    text = raw.toString('latin1');
  }
  const { descr, fortranOrder, shape } = parseNpyHeaderText(text, w);
  const itemBytes = DTYPES[descr.dtype].bytes;
  const count = elementCount(shape);
  if (!Number.isSafeInteger(count * itemBytes)) {
    fail(w, 'npy-shape', `shape ${shapeText(shape)} has too many elements (${count})`);
  }
  const dataBytes = count * itemBytes;
  const have = avail - prefix - headerLen;
  if (have < dataBytes) {
    fail(
      w,
      'npy-truncated',
      `data truncated: shape ${shapeText(shape)} of ${descr.dtype} needs ${dataBytes} bytes after the header, found ${have}`,
    );
  }
  return { version: major, descr, fortranOrder, shape, dataOffset: start + prefix + headerLen, dataBytes };
}

/**
 * Validates an .npy header (magic, version 1/2/3, header length, the dict literal, descr, shape)
 * and that the file holds all the data. With `start`/`length`, reads an .npy embedded in a
 * larger file (a stored .npz member). Throws InputError naming the file (and member).
 */
export async function readNpyHeader(path: string, opts: NpyReadOptions = {}): Promise<NpyHeader> {
  const w: Where = { file: opts.errorFile ?? path, member: opts.member };
  const fh = await openForRead(path, w);
  try {
    return await readHeaderFrom(fh, opts, w);
  } finally {
    await fh.close();
  }
}

// ------------------------------------------------------------------ Fortran order

/** Fortran order changes the byte layout only when two or more axes are longer than 1. */
function needsReorder(h: NpyHeader): boolean {
  return h.fortranOrder && h.dataBytes > 0 && h.shape.filter((d) => d > 1).length >= 2;
}

function copyItem(src: Uint8Array, si: number, dst: Uint8Array, di: number, size: number, swap: boolean): void {
  if (swap) for (let j = 0; j < size; j++) dst[di + j] = src[si + size - 1 - j];
  else for (let j = 0; j < size; j++) dst[di + j] = src[si + j];
}

/**
 * Writes the C-order, little-endian copy of a Fortran-order array. Small arrays are permuted in
 * memory; larger ones tile the first and last axes (per index of the middle axes), so memory
 * stays within `budget` bytes whatever the array size.
 */
async function writeCOrderCopy(
  src: FileHandle,
  srcOffset: number,
  shape: readonly number[],
  size: number,
  swap: boolean,
  dst: FileHandle,
  budget: number,
): Promise<void> {
  const dims = shape.filter((d) => d !== 1);
  const m = dims.length;
  const n = elementCount(dims);
  const fs = new Array<number>(m);
  const cs = new Array<number>(m);
  for (let k = 0, s = 1; k < m; k++) { fs[k] = s; s *= dims[k]; }
  for (let k = m - 1, s = 1; k >= 0; k--) { cs[k] = s; s *= dims[k]; }

  if (n * size <= budget) {
    const input = await readAt(src, srcOffset, n * size);
    if (input.length < n * size) throw new RangeError('source shrank while reordering');
    const out = Buffer.allocUnsafe(n * size);
    const idx = new Array<number>(m).fill(0);
    let f = 0;
    for (let c = 0; c < n; c++) {
      copyItem(input, f * size, out, c * size, size, swap);
      for (let k = m - 1; k >= 0; k--) {
        idx[k]++;
        f += fs[k];
        if (idx[k] < dims[k]) break;
        f -= fs[k] * dims[k];
        idx[k] = 0;
      }
    }
    await writeAt(dst, out, 0);
    return;
  }

  const A = dims[0];
  const B = dims[m - 1];
  const side = Math.max(1, Math.floor(Math.sqrt(budget / size)));
  const ta = Math.min(A, side);
  const tb = Math.min(B, Math.max(1, Math.floor(budget / size / ta)));
  const tile = Buffer.allocUnsafe(ta * tb * size);
  const row = Buffer.allocUnsafe(tb * size);
  const midIdx = new Array<number>(m).fill(0);
  const midCount = elementCount(dims.slice(1, m - 1));
  let fMid = 0;
  let cMid = 0;
  for (let q = 0; q < midCount; q++) {
    for (let a0 = 0; a0 < A; a0 += ta) {
      const na = Math.min(A, a0 + ta) - a0;
      for (let b0 = 0; b0 < B; b0 += tb) {
        const nb = Math.min(B, b0 + tb) - b0;
        for (let b = 0; b < nb; b++) {
          const got = await readAt(src, srcOffset + (fMid + (b0 + b) * fs[m - 1] + a0) * size, na * size);
          if (got.length < na * size) throw new RangeError('source shrank while reordering');
          got.copy(tile, b * na * size);
        }
        for (let a = 0; a < na; a++) {
          for (let b = 0; b < nb; b++) copyItem(tile, (b * na + a) * size, row, b * size, size, swap);
          await writeAt(dst, row.subarray(0, nb * size), ((a0 + a) * cs[0] + cMid + b0) * size);
        }
      }
    }
    for (let k = m - 2; k >= 1; k--) {
      midIdx[k]++;
      fMid += fs[k];
      cMid += cs[k];
      if (midIdx[k] < dims[k]) break;
      fMid -= fs[k] * dims[k];
      cMid -= cs[k] * dims[k];
      midIdx[k] = 0;
    }
  }
}

async function materializeCOrder(path: string, name: string, h: NpyHeader, opts: NpyReadOptions, w: Where): Promise<string> {
  const out = scratchPath(`${name}.c-order`);
  const src = await openForRead(path, w);
  try {
    const dst = await open(out, 'wx');
    try {
      const size = DTYPES[h.descr.dtype].bytes;
      await writeCOrderCopy(src, h.dataOffset, h.shape, size, h.descr.bigEndian, dst, opts.reorderBudgetBytes ?? DEFAULT_REORDER_BUDGET);
    } finally {
      await dst.close();
    }
  } catch (e) {
    await unlink(out).catch(() => undefined);
    if (e instanceof RangeError) fail(w, 'npy-truncated', 'file shrank while its Fortran-order data was being reordered');
    throw e;
  } finally {
    await src.close();
  }
  return out;
}

/** The StoredTensor for an already validated header (Fortran data is copied to C order first). */
export async function tensorFromHeader(path: string, name: string, h: NpyHeader, opts: NpyReadOptions = {}): Promise<StoredTensor> {
  const { dtype, bigEndian } = h.descr;
  if (needsReorder(h)) {
    const w: Where = { file: opts.errorFile ?? path, member: opts.member };
    const copy = await materializeCOrder(path, name, h, opts, w);
    return { name, dtype, shape: [...h.shape], encoding: { dtype, bigEndian: false }, spans: [{ path: copy, offset: 0, length: h.dataBytes }] };
  }
  return { name, dtype, shape: [...h.shape], encoding: { dtype, bigEndian }, spans: [{ path, offset: h.dataOffset, length: h.dataBytes }] };
}

/** Reads one .npy (or embedded .npy) as the tensor `name`; spans point into the file or a scratch copy. */
export async function npyTensor(path: string, name: string, opts: NpyReadOptions = {}): Promise<StoredTensor> {
  return tensorFromHeader(path, name, await readNpyHeader(path, opts), opts);
}

// ------------------------------------------------------------------ checkpoint layouts

/** Deepest sub-folder level read in an npy checkpoint folder (a flax tree is a few levels deep). */
const NPY_DIR_MAX_DEPTH = 16;

/** Relative paths (`/`-separated) of the .npy files under `dir`, sub-folders included. */
async function listNpyFiles(dir: string, prefix = '', depth = 0): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(join(dir, prefix), { withFileTypes: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(join(dir, prefix), `cannot list the checkpoint folder (${code ?? String(e)})`, code === 'ENOENT' ? 'file-missing' : 'file-unreadable');
  }
  const out: string[] = [];
  for (const e of entries) {
    if (e.name.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    // Every *.npy entry is a tensor: one that is not a regular file fails when opened instead of
    // leaving a silent hole in the checkpoint (docs/formats.md).
    if (e.name.endsWith('.npy')) out.push(rel);
    else if (e.isDirectory() && depth < NPY_DIR_MAX_DEPTH) out.push(...(await listNpyFiles(dir, rel, depth + 1)));
  }
  return out;
}

/**
 * A checkpoint stored as one folder with one `<tensor>.npy` per tensor, sorted by path.
 * Sub-folders are part of the name: `params/Conv_0/kernel.npy` is tensor `params/Conv_0/kernel`
 * (a flax/JAX parameter tree dumped one array per file; docs/formats.md).
 */
export async function readNpyDirCheckpoint(dir: string): Promise<CheckpointContents> {
  const names = await listNpyFiles(dir);
  names.sort();
  if (names.length === 0) throw new InputError(dir, 'checkpoint folder holds no .npy files', 'npy-dir-empty');
  const files = names.map((n) => join(dir, ...n.split('/')));
  const tensors: StoredTensor[] = [];
  for (let i = 0; i < names.length; i++) tensors.push(await npyTensor(files[i], names[i].slice(0, -4)));
  return { format: 'npy', files, tensors, metadata: {}, extras: { layout: 'npy-dir' } };
}

/**
 * A checkpoint stored as one flat `.npy`. Without a table it is the single tensor
 * FLAT_TENSOR_NAME; with a table (name, shape) it is split, in table order, into named tensors
 * whose element counts must add up to the vector's length exactly.
 */
export async function readFlatNpyCheckpoint(path: string, table?: readonly (readonly [string, readonly number[]])[]): Promise<CheckpointContents> {
  const h = await readNpyHeader(path);
  const base = { format: 'npy' as const, files: [path], metadata: {}, extras: { layout: 'flat-npy' } };
  if (table === undefined) return { ...base, tensors: [await tensorFromHeader(path, FLAT_TENSOR_NAME, h)] };
  if (h.shape.length !== 1) {
    throw new InputError(path, `a flat checkpoint split by a tensor table must be a 1-D vector, found shape ${shapeText(h.shape)}`, 'flat-not-vector');
  }
  const counts = table.map(([, shape]) => elementCount(shape));
  const total = counts.reduce((s, c) => s + c, 0);
  if (total !== h.shape[0]) {
    throw new InputError(
      path,
      `tensor table (${table.length} tensors) holds ${total} elements but the flat vector has ${h.shape[0]}`,
      'tensor-table-mismatch',
    );
  }
  const size = DTYPES[h.descr.dtype].bytes;
  const encoding = { dtype: h.descr.dtype, bigEndian: h.descr.bigEndian };
  let offset = h.dataOffset;
  const tensors = table.map(([name, shape], i): StoredTensor => {
    const span = { path, offset, length: counts[i] * size };
    offset += span.length;
    return { name, dtype: h.descr.dtype, shape: [...shape], encoding: { ...encoding }, spans: [span] };
  });
  return { ...base, tensors };
}

/** Reads and validates a `--tensor-table` JSON file: a non-empty list of [name, shape], unique names. */
export async function loadTensorTable(path: string): Promise<[string, number[]][]> {
  let text: string;
  try {
    const st = await stat(path);
    if (st.size > 64 << 20) throw new InputError(path, `tensor table is ${st.size} bytes, over the 64 MiB limit`, 'tensor-table');
    text = await readFile(path, 'utf8');
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(path, `cannot read the tensor table (${code ?? String(e)})`, code === 'ENOENT' ? 'file-missing' : 'file-unreadable');
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (e) {
    throw new InputError(path, `tensor table is not valid JSON (${(e as Error).message})`, 'tensor-table');
  }
  const bad = (why: string): never => {
    throw new InputError(path, `tensor table must be a JSON list of [name, shape] pairs: ${why}`, 'tensor-table');
  };
  if (!Array.isArray(data) || data.length === 0) bad('expected a non-empty list');
  const seen = new Set<string>();
  return (data as unknown[]).map((entry, i): [string, number[]] => {
    if (!Array.isArray(entry) || entry.length !== 2) bad(`entry ${i} is not a [name, shape] pair`);
    const [name, shape] = entry as unknown[];
    if (typeof name !== 'string' || name === '') bad(`entry ${i} has no name`);
    if (seen.has(name as string)) bad(`entry ${i} repeats the name '${name as string}'`);
    seen.add(name as string);
    if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)) {
      bad(`entry ${i} ('${name as string}') has a shape that is not a list of non-negative integers`);
    }
    return [name as string, [...(shape as number[])]];
  });
}

// ------------------------------------------------------------------ writers

const NPY_DESCR: Partial<Record<DType, string>> = {
  F16: '<f2', F32: '<f4', F64: '<f8',
  I8: '|i1', I16: '<i2', I32: '<i4', I64: '<i8',
  U8: '|u1', U16: '<u2', U32: '<u4', U64: '<u8',
  BOOL: '|b1',
};

function npyDescrFor(dtype: DType, name: string): string {
  const d = NPY_DESCR[dtype];
  if (d === undefined) {
    throw new UsageError(`tensor '${name}' is ${dtype}, which numpy has no dtype for; write it as safetensors instead of .npy/.npz`);
  }
  return d;
}

/**
 * The .npy header numpy 2.4 writes for a C-order array: v1.0 (v2.0 only past 65,535 bytes),
 * sorted keys, growth spaces for the first axis, spaces + newline up to a multiple of 64.
 */
export function npyHeaderBytes(dtype: DType, shape: readonly number[], name = 'tensor'): Uint8Array {
  let dict = `{'descr': '${npyDescrFor(dtype, name)}', 'fortran_order': False, 'shape': ${shapeText(shape)}, }`;
  if (shape.length > 0) dict += ' '.repeat(Math.max(0, GROWTH_AXIS_MAX_DIGITS - String(shape[0]).length));
  const hlen = dict.length + 1;
  // numpy pads by ALIGN - (total % ALIGN): a full extra 64 when already aligned.
  let prefix = 10;
  let pad = ARRAY_ALIGN - ((prefix + hlen) % ARRAY_ALIGN);
  if (hlen + pad > 0xffff) {
    prefix = 12;
    pad = ARRAY_ALIGN - ((prefix + hlen) % ARRAY_ALIGN);
  }
  const out = Buffer.alloc(prefix + hlen + pad);
  out.set(MAGIC, 0);
  out[6] = prefix === 10 ? 1 : 2;
  out[7] = 0;
  if (prefix === 10) out.writeUInt16LE(hlen + pad, 8);
  else out.writeUInt32LE(hlen + pad, 8);
  out.write(dict + ' '.repeat(pad) + '\n', prefix, 'latin1');
  return out;
}

function checkData(t: TensorToWrite): void {
  const expected = elementCount(t.shape) * DTYPES[t.dtype].bytes;
  if (t.data.byteLength !== expected) {
    throw new RangeError(`tensor '${t.name}': ${t.data.byteLength} data bytes for shape [${t.shape.join(', ')}] of ${t.dtype}, expected ${expected}`);
  }
}

/** Writes one tensor as a numpy-identical v1.0 .npy file (atomically). BF16/F8 are refused. */
export async function writeNpy(path: string, tensor: TensorToWrite): Promise<void> {
  const header = npyHeaderBytes(tensor.dtype, tensor.shape, tensor.name);
  checkData(tensor);
  await writeFileAtomicWith(path, async (fh) => {
    await writeAt(fh, header, 0);
    await writeAt(fh, tensor.data, header.length);
  });
}

/** Checks that a tensor name can serve as a file name (npy folders) or member name (npz). */
export function checkWritableNames(tensors: readonly TensorToWrite[], asFileName: boolean): void {
  const seen = new Set<string>();
  for (const t of tensors) {
    const badFile = asFileName && (t.name === '.' || t.name === '..' || /[/\\]/.test(t.name));
    if (t.name === '' || t.name.includes('\0') || badFile) {
      throw new UsageError(`tensor name ${JSON.stringify(t.name)} cannot be used as a${asFileName ? ' file' : 'n archive member'} name`);
    }
    if (seen.has(t.name)) throw new UsageError(`tensor name '${t.name}' appears twice`);
    seen.add(t.name);
  }
}

/**
 * Writes a checkpoint as a folder with one `<tensor>.npy` per tensor (created if missing).
 * A `/` in a tensor name makes sub-folders, the layout `readNpyDirCheckpoint` reads back.
 */
export async function writeNpyDir(dir: string, tensors: readonly TensorToWrite[]): Promise<void> {
  checkWritableNames(tensors, false);
  for (const t of tensors) {
    if (t.name.split('/').some((seg) => seg === '' || seg === '.' || seg === '..' || seg.includes('\\'))) {
      throw new UsageError(`tensor name ${JSON.stringify(t.name)} cannot be used as a file path`);
    }
    npyDescrFor(t.dtype, t.name);
    checkData(t);
  }
  await mkdir(dir, { recursive: true });
  for (const t of tensors) {
    const file = join(dir, ...`${t.name}.npy`.split('/'));
    await mkdir(dirname(file), { recursive: true });
    await writeNpy(file, t);
  }
}

export { writeAt as writeBytesAt };
