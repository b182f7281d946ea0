/**
 * Loads a labelled evaluation set for the built-in TF.js evaluator from a folder holding
 * `x.npy` (inputs) and `y.npy` (labels).
 *
 * - `x.npy`: any numeric dtype with a leading sample axis, shape [N, ...]. `uint8` inputs are
 *   images and are scaled by 1/255 into [0, 1]; every other dtype is used as stored (as float32).
 * - `y.npy`: class ids, shape [N] or [N, 1], integer dtype or integral floats; or one-hot /
 *   score rows, shape [N, C], whose argmax is the class.
 *
 * The npy header parsing here is deliberately minimal (v1-v3 headers, C order, the numeric
 * dtypes); `src/formats/npy.ts` is the full reader.
 */
import { open } from 'node:fs/promises';
import { join } from 'node:path';
import { InputError, ensure } from '../errors.ts';
import { decodeInto, elementCount, DTYPES, type DType } from '../formats/dtype.ts';

/** A labelled evaluation set held in memory. */
export interface EvalData {
  /** Inputs, row-major float32 (uint8 files already scaled by 1/255). */
  readonly x: Float32Array;
  /** Shape of `x`, leading axis = samples. */
  readonly xShape: readonly number[];
  /** Class id of each sample. */
  readonly labels: Int32Array;
  /** Number of samples N. */
  readonly count: number;
  /** Classes implied by the labels: the one-hot width, else the largest id + 1. */
  readonly numClasses: number;
  /** Files the data came from, for error messages. */
  readonly files: { readonly x: string; readonly y: string };
}

interface NpyArray {
  dtype: DType;
  shape: number[];
  values: Float32Array;
}

const DESCR_TO_DTYPE: Record<string, DType> = {
  f8: 'F64', f4: 'F32', f2: 'F16',
  i8: 'I64', i4: 'I32', i2: 'I16', i1: 'I8',
  u8: 'U64', u4: 'U32', u2: 'U16', u1: 'U8',
  b1: 'BOOL',
};

/** Reads a whole (small) .npy file into float32 values with positioned reads. */
async function readNpyValues(file: string): Promise<NpyArray> {
  let fh;
  try {
    fh = await open(file, 'r');
  } catch (err) {
    throw new InputError(file, `cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'unreadable');
  }
  try {
    const size = (await fh.stat()).size;
    const pre = Buffer.alloc(12);
    const { bytesRead } = await fh.read(pre, 0, 12, 0);
    ensure(bytesRead >= 10 && pre.toString('latin1', 0, 6) === '\x93NUMPY', file, 'npy-magic', () => 'not a .npy file (bad magic)');
    const major = pre[6];
    ensure(major >= 1 && major <= 3, file, 'npy-version', () => `unsupported npy version ${major}.${pre[7]}`);
    const lenBytes = major === 1 ? 2 : 4;
    ensure(bytesRead >= 8 + lenBytes, file, 'npy-truncated', () => 'file ends inside the header length field');
    const headerLen = major === 1 ? pre.readUInt16LE(8) : pre.readUInt32LE(8);
    const dataOffset = 8 + lenBytes + headerLen;
    ensure(headerLen <= 1 << 20 && dataOffset <= size, file, 'npy-truncated', () => `header length ${headerLen} exceeds the file size ${size}`);
    const headerBuf = Buffer.alloc(headerLen);
    await fh.read(headerBuf, 0, headerLen, 8 + lenBytes);
    const header = headerBuf.toString(major === 3 ? 'utf8' : 'latin1');

    const descr = /'descr'\s*:\s*'([<>|=])([a-z])(\d+)'/.exec(header);
    ensure(descr, file, 'npy-dtype', () => `unsupported or missing 'descr' in header ${JSON.stringify(header.trim())}`);
    const dtype = DESCR_TO_DTYPE[descr[2] + descr[3]];
    ensure(dtype, file, 'npy-dtype', () => `unsupported dtype '${descr[1]}${descr[2]}${descr[3]}' (expected a numeric dtype)`);
    const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(header);
    ensure(fortran, file, 'npy-header', () => "missing 'fortran_order' in header");
    const shapeMatch = /'shape'\s*:\s*\(([^)]*)\)/.exec(header);
    ensure(shapeMatch, file, 'npy-header', () => "missing 'shape' in header");
    const shape = shapeMatch[1].split(',').map((s) => s.trim()).filter((s) => s.length > 0).map(Number);
    ensure(shape.every((d) => Number.isSafeInteger(d) && d >= 0), file, 'npy-header', () => `bad shape (${shapeMatch[1]})`);
    ensure(fortran[1] === 'False' || shape.filter((d) => d > 1).length <= 1, file, 'npy-fortran-order', () => `fortran_order True with shape [${shape.join(', ')}] is not supported; save it in C order`);

    const count = elementCount(shape);
    const nbytes = count * DTYPES[dtype].bytes;
    ensure(size - dataOffset >= nbytes, file, 'npy-truncated', () => `data holds ${size - dataOffset} bytes, shape [${shape.join(', ')}] of ${dtype} needs ${nbytes}`);
    // A fresh buffer keeps the data aligned for typed-array views whatever the header length.
    const data = new Uint8Array(nbytes);
    let done = 0;
    while (done < nbytes) {
      const { bytesRead: n } = await fh.read(data, done, Math.min(nbytes - done, 1 << 26), dataOffset + done);
      ensure(n > 0, file, 'npy-truncated', () => `unexpected end of file at byte ${dataOffset + done}`);
      done += n;
    }
    const values = new Float32Array(count);
    decodeInto(dtype, data, count, values, 0, descr[1] !== '>');
    return { dtype, shape, values };
  } finally {
    await fh.close();
  }
}

function labelsFrom(y: NpyArray, file: string, n: number): { labels: Int32Array; numClasses: number } {
  const { shape, values } = y;
  const labels = new Int32Array(n);
  if (shape.length === 1 || (shape.length === 2 && shape[1] === 1)) {
    let max = -1;
    for (let i = 0; i < n; i++) {
      const v = values[i];
      ensure(Number.isInteger(v) && v >= 0, file, 'eval-labels', () => `label ${i} is ${v}, expected a non-negative integer class id`);
      labels[i] = v;
      if (v > max) max = v;
    }
    return { labels, numClasses: max + 1 };
  }
  ensure(shape.length === 2 && shape[1] >= 2, file, 'eval-labels-shape', () => `shape [${shape.join(', ')}], expected [N] class ids or [N, C] one-hot rows`);
  const c = shape[1];
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < c; j++) if (values[i * c + j] > values[i * c + best]) best = j;
    labels[i] = best;
  }
  return { labels, numClasses: c };
}

/**
 * Reads `<dir>/x.npy` and `<dir>/y.npy` (file names overridable) and checks they describe the
 * same number of samples. Throws an InputError naming the offending file.
 */
export async function loadEvalData(dir: string, options: { xFile?: string; yFile?: string } = {}): Promise<EvalData> {
  const { xFile = 'x.npy', yFile = 'y.npy' } = options;
  const xPath = join(dir, xFile);
  const yPath = join(dir, yFile);
  const [xa, ya] = await Promise.all([readNpyValues(xPath), readNpyValues(yPath)]);
  ensure(xa.shape.length >= 2, xPath, 'eval-x-shape', () => `shape [${xa.shape.join(', ')}], expected [N, ...features]`);
  const n = xa.shape[0];
  ensure(n > 0, xPath, 'eval-x-shape', () => 'holds no samples (N = 0)');
  ensure(ya.shape.length >= 1 && ya.shape[0] === n, yPath, 'eval-count-mismatch', () => `has ${ya.shape[0] ?? 0} labels (shape [${ya.shape.join(', ')}]) but ${xFile} has ${n} samples`);
  if (xa.dtype === 'U8') {
    const x = xa.values;
    for (let i = 0; i < x.length; i++) x[i] /= 255;
  }
  const { labels, numClasses } = labelsFrom(ya, yPath, n);
  return { x: xa.values, xShape: xa.shape, labels, count: n, numClasses, files: { x: xPath, y: yPath } };
}
