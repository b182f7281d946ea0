import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { loadEvalData } from '../../src/eval/eval-data.ts';

const FIXTURE = join(import.meta.dirname, '../../fixtures/fmnist-mlp/test');
const tmp = mkdtempSync(join(tmpdir(), 'eval-data-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** numpy v1.0 layout: header padded with spaces so the data starts at a multiple of 64. */
function npy(descr: string, shape: number[], data: Uint8Array, fortran = false): Buffer {
  const dims = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${fortran ? 'True' : 'False'}, 'shape': ${dims}, }`;
  const total = Math.ceil((11 + header.length) / 64) * 64;
  header = header.padEnd(total - 11) + '\n';
  const pre = Buffer.alloc(10);
  pre.write('\x93NUMPY', 0, 'latin1');
  pre[6] = 1;
  pre.writeUInt16LE(header.length, 8);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), data]);
}
const bytes = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);

function folder(name: string, files: Record<string, Buffer>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, b] of Object.entries(files)) writeFileSync(join(dir, f), b);
  return dir;
}

async function inputError(p: Promise<unknown>): Promise<InputError> {
  const err = await p.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InputError);
  expect((err as Error).message).not.toContain('\n');
  return err as InputError;
}

describe('loadEvalData', () => {
  it('reads the fixture: uint8 images scaled by 1/255, uint8 labels', async () => {
    const d = await loadEvalData(FIXTURE);
    expect(d.count).toBe(2000);
    expect(d.xShape).toEqual([2000, 28, 28]);
    expect(d.numClasses).toBe(10);
    const raw = readFileSync(join(FIXTURE, 'x.npy'));
    const dataStart = raw.length - 2000 * 784;
    for (const k of [0, 1, 400, 784 * 1000 + 371, 2000 * 784 - 1]) expect(d.x[k]).toBe(Math.fround(raw[dataStart + k] / 255));
    const rawY = readFileSync(join(FIXTURE, 'y.npy'));
    expect(Array.from(d.labels.subarray(0, 50))).toEqual(Array.from(rawY.subarray(rawY.length - 2000, rawY.length - 1950)));
    expect(d.x.every((v) => v >= 0 && v <= 1)).toBe(true);
  });

  it('keeps float32 inputs as stored and takes the argmax of one-hot labels', async () => {
    const x = new Float32Array([0.5, -2, 3.25, 7, 1e-3, 9]);
    const y = new Float32Array([0, 0, 1, 1, 0, 0, 0, 1, 0]);
    const dir = folder('onehot', { 'x.npy': npy('<f4', [3, 2], bytes(x)), 'y.npy': npy('<f4', [3, 3], bytes(y)) });
    const d = await loadEvalData(dir);
    expect(Array.from(d.x)).toEqual(Array.from(x));
    expect(Array.from(d.labels)).toEqual([2, 0, 1]);
    expect(d.numClasses).toBe(3);
  });

  it('reads int64 and big-endian ids', async () => {
    const x = new Float64Array([1, 2, 3, 4]);
    const y = new BigInt64Array([3n, 1n]);
    const be = Buffer.alloc(8);
    be.writeInt32BE(5, 0);
    be.writeInt32BE(0, 4);
    const d1 = await loadEvalData(folder('i8', { 'x.npy': npy('<f8', [2, 2], bytes(x)), 'y.npy': npy('<i8', [2], bytes(y)) }));
    expect(Array.from(d1.labels)).toEqual([3, 1]);
    expect(d1.numClasses).toBe(4);
    const d2 = await loadEvalData(folder('be', { 'x.npy': npy('<f8', [2, 2], bytes(x)), 'y.npy': npy('>i4', [2, 1], be) }));
    expect(Array.from(d2.labels)).toEqual([5, 0]);
  });

  it('names y.npy when the sample counts differ', async () => {
    const dir = folder('mismatch', { 'x.npy': npy('|u1', [3, 2], new Uint8Array(6)), 'y.npy': npy('|u1', [4], new Uint8Array(4)) });
    const err = await inputError(loadEvalData(dir));
    expect(err.rule).toBe('eval-count-mismatch');
    expect(err.file).toBe(join(dir, 'y.npy'));
    expect(err.message).toContain('has 4 labels (shape [4]) but x.npy has 3 samples');
  });

  it('rejects bad label values, shapes, dtypes, truncation and missing files', async () => {
    const x = npy('|u1', [2, 2], new Uint8Array(4));
    const cases: [string, Record<string, Buffer>, string, string][] = [
      ['neg', { 'x.npy': x, 'y.npy': npy('<i4', [2], bytes(new Int32Array([1, -1]))) }, 'y.npy', 'eval-labels'],
      ['frac', { 'x.npy': x, 'y.npy': npy('<f4', [2], bytes(new Float32Array([1, 0.5]))) }, 'y.npy', 'eval-labels'],
      ['y3d', { 'x.npy': x, 'y.npy': npy('|u1', [2, 2, 2], new Uint8Array(8)) }, 'y.npy', 'eval-labels-shape'],
      ['x1d', { 'x.npy': npy('|u1', [4], new Uint8Array(4)), 'y.npy': npy('|u1', [4], new Uint8Array(4)) }, 'x.npy', 'eval-x-shape'],
      ['str', { 'x.npy': npy('<U3', [2, 2], new Uint8Array(48)), 'y.npy': npy('|u1', [2], new Uint8Array(2)) }, 'x.npy', 'npy-dtype'],
      ['short', { 'x.npy': npy('<f4', [2, 2], new Uint8Array(15)), 'y.npy': npy('|u1', [2], new Uint8Array(2)) }, 'x.npy', 'npy-truncated'],
      ['magic', { 'x.npy': Buffer.from('not an npy file at all'), 'y.npy': npy('|u1', [2], new Uint8Array(2)) }, 'x.npy', 'npy-magic'],
      ['fortran', { 'x.npy': npy('<f4', [2, 2], new Uint8Array(16), true), 'y.npy': npy('|u1', [2], new Uint8Array(2)) }, 'x.npy', 'npy-fortran-order'],
      ['noy', { 'x.npy': x }, 'y.npy', 'unreadable'],
    ];
    for (const [name, files, bad, rule] of cases) {
      const dir = folder(name, files);
      const err = await inputError(loadEvalData(dir));
      expect([name, err.rule, err.file]).toEqual([name, rule, join(dir, bad)]);
    }
  });
});
