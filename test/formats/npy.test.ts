import { existsSync } from 'node:fs';
import { mkdtemp, open, readFile, readdir, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, UsageError } from '../../src/errors.ts';
import { DTYPES, decodeInto, elementCount, encodeFloats } from '../../src/formats/dtype.ts';
import type { DType } from '../../src/formats/dtype.ts';
import {
  FLAT_TENSOR_NAME,
  loadTensorTable,
  npyHeaderBytes,
  npyTensor,
  parseDescr,
  parseNpyHeaderText,
  readFlatNpyCheckpoint,
  readNpyDirCheckpoint,
  readNpyHeader,
  writeNpy,
  writeNpyDir,
} from '../../src/formats/npy.ts';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { cleanupScratch, scratchDir } from '../../src/formats/scratch.ts';
import type { StoredTensor } from '../../src/formats/types.ts';

const fixture = (p: string) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url));
const EXTRA = fixture('npy-extra');
const LENET = fixture('lenet5-fmnist');

interface Expected {
  npy: Record<string, { descr: string; shape: number[]; values: number[] }>;
  refused: Record<string, string>;
  writer: Record<string, { dtype: string; shape: number[]; values: number[] }>;
  headers: { descr: string; shape: string[]; hex: string }[];
}
let expected: Expected;
let summary: { tensor_order: string[]; tensor_shapes: Record<string, number[]> };
let tmp: string;

beforeAll(async () => {
  expected = JSON.parse(await readFile(join(EXTRA, 'expected.json'), 'utf8'));
  summary = JSON.parse(await readFile(join(LENET, 'official/summary.json'), 'utf8'));
  tmp = await mkdtemp(join(tmpdir(), 'npy-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** Reads a tensor's values the way downstream code does: positioned reads of its spans. */
async function values(t: StoredTensor): Promise<Float64Array> {
  const size = DTYPES[t.encoding.dtype].bytes;
  const n = elementCount(t.shape);
  const bytes = new Uint8Array(n * size);
  let at = 0;
  for (const s of t.spans) {
    const fh = await open(s.path, 'r');
    try {
      const { bytesRead } = await fh.read(bytes, at, s.length, s.offset);
      expect(bytesRead).toBe(s.length);
    } finally {
      await fh.close();
    }
    at += s.length;
  }
  expect(at).toBe(n * size);
  const out = new Float64Array(n);
  decodeInto(t.encoding.dtype, bytes, n, out, 0, !t.encoding.bigEndian);
  return out;
}

async function expectInputError(p: Promise<unknown>, rule: string, file: string): Promise<InputError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected InputError ${rule}`).toBeInstanceOf(InputError);
  const ie = e as InputError;
  expect(ie.rule).toBe(rule);
  expect(ie.message.startsWith(`${file}: `)).toBe(true);
  expect(ie.message).not.toContain('\n');
  return ie;
}

describe('numpy-written golden files', () => {
  it('reads every dtype, byte order, Fortran layout, header version, scalar and empty array', async () => {
    const names = Object.keys(expected.npy);
    expect(names.length).toBeGreaterThan(30);
    for (const name of names) {
      const e = expected.npy[name];
      const path = join(EXTRA, name);
      const h = await readNpyHeader(path);
      expect(h.shape, name).toEqual(e.shape);
      expect(h.descr, name).toEqual(parseDescr(e.descr));
      const t = await npyTensor(path, 'x');
      expect(t.dtype).toBe(h.descr.dtype);
      expect(t.shape).toEqual(e.shape);
      expect(Array.from(await values(t)), name).toEqual(e.values);
    }
  });

  it('reports header versions and flags as written', async () => {
    expect((await readNpyHeader(join(EXTRA, 'v2_f4.npy'))).version).toBe(2);
    expect((await readNpyHeader(join(EXTRA, 'v3_i2.npy'))).version).toBe(3);
    const le = await readNpyHeader(join(EXTRA, 'le_f4.npy'));
    expect(le).toMatchObject({ version: 1, fortranOrder: false, dataOffset: 128, dataBytes: 24 });
    const be = await readNpyHeader(join(EXTRA, 'be_f8.npy'));
    expect(be.descr).toEqual({ dtype: 'F64', bigEndian: true });
    expect((await readNpyHeader(join(EXTRA, 'fortran_3d_be_f8.npy'))).fortranOrder).toBe(true);
    expect((await readNpyHeader(join(EXTRA, 'scalar_f8.npy'))).shape).toEqual([]);
  });

  it('points spans straight into the file unless Fortran order needs a C-order copy', async () => {
    const plain = await npyTensor(join(EXTRA, 'be_i4.npy'), 'x');
    expect(plain.spans).toEqual([{ path: join(EXTRA, 'be_i4.npy'), offset: 128, length: 20 }]);
    expect(plain.encoding).toEqual({ dtype: 'I32', bigEndian: true });
    const oneD = await npyTensor(join(EXTRA, 'fortran_1d_f4.npy'), 'x');
    expect(oneD.spans[0].path).toBe(join(EXTRA, 'fortran_1d_f4.npy'));
    const trivial = await npyTensor(join(EXTRA, 'fortran_trivial_i2.npy'), 'x');
    expect(trivial.spans[0].path).toBe(join(EXTRA, 'fortran_trivial_i2.npy'));
    const f3 = await npyTensor(join(EXTRA, 'fortran_3d_be_f8.npy'), 'x');
    expect(f3.spans[0].path.startsWith(scratchDir())).toBe(true);
    expect(f3.encoding).toEqual({ dtype: 'F64', bigEndian: false });
  });

  it('gives the same values through the tiled (bounded-memory) Fortran reorder', async () => {
    for (const name of ['fortran_2d_f4.npy', 'fortran_3d_be_f8.npy', 'fortran_4d_i4.npy', 'fortran_3d_u1.npy']) {
      for (const budget of [1, 24, 100]) {
        const t = await npyTensor(join(EXTRA, name), 'x', { reorderBudgetBytes: budget });
        expect(Array.from(await values(t)), `${name} budget ${budget}`).toEqual(expected.npy[name].values);
      }
    }
  });

  it('reorders a 5-D big-endian Fortran array correctly at every memory budget', async () => {
    const shape = [7, 1, 5, 3, 11];
    const n = elementCount(shape);
    const at = (i: number[]) => i[0] * 1000 + i[2] * 100 + i[3] * 10 + i[4] * 0.5; // value of element i
    const data = Buffer.alloc(n * 4);
    const want: number[] = [];
    // C order for the expectation, F order (first index fastest) for the file.
    for (let a = 0; a < 7; a++) for (let c = 0; c < 5; c++) for (let d = 0; d < 3; d++) for (let e = 0; e < 11; e++) {
      const idx = [a, 0, c, d, e];
      want.push(at(idx));
      data.writeFloatBE(at(idx), 4 * (a + 7 * (c + 5 * (d + 3 * e))));
    }
    const dict = "{'descr': '>f4', 'fortran_order': True, 'shape': (7, 1, 5, 3, 11), }";
    const head = Buffer.from(dict.padEnd(117) + '\n', 'latin1');
    const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, head.length, 0]);
    const path = join(tmp, 'f5d.npy');
    await writeFile(path, Buffer.concat([pre, head, data]));
    for (const budget of [1, 4, 44, 100, 1000, 1 << 20]) {
      const t = await npyTensor(path, 'x', { reorderBudgetBytes: budget });
      expect(t.encoding.bigEndian).toBe(false);
      expect(Array.from(await values(t)), `budget ${budget}`).toEqual(want);
    }
  });

  it('refuses object arrays (never unpickled) and non-numeric dtypes', async () => {
    expect(Object.keys(expected.refused).length).toBeGreaterThanOrEqual(6);
    for (const [name, rule] of Object.entries(expected.refused)) {
      const path = join(EXTRA, name);
      const err = await expectInputError(npyTensor(path, 'x'), rule, path);
      if (rule === 'npy-object-dtype') expect(err.message).toMatch(/pickle/);
    }
  });
});

describe('header dict parser', () => {
  it('accepts keys in any order, both quote styles, whitespace and every tuple form', () => {
    expect(parseNpyHeaderText(`{"shape": (), 'fortran_order': True, 'descr': '>i8'}\n`)).toEqual({
      descr: { dtype: 'I64', bigEndian: true },
      fortranOrder: true,
      shape: [],
    });
    expect(parseNpyHeaderText("{'descr':'<u2','fortran_order':False,'shape':(3,)}").shape).toEqual([3]);
    expect(parseNpyHeaderText("{ 'descr' : '|u1' ,\n 'fortran_order' : False , 'shape' : ( 2 , 3 , ) , }").shape).toEqual([2, 3]);
    expect(parseNpyHeaderText("{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 4L), }").shape).toEqual([3, 4]);
    expect(parseNpyHeaderText("{'descr': '=f8', 'fortran_order': False, 'shape': (1,)}").descr).toEqual({ dtype: 'F64', bigEndian: false });
    expect(parseNpyHeaderText("{'descr': '>u1', 'fortran_order': False, 'shape': (1,)}").descr).toEqual({ dtype: 'U8', bigEndian: false });
  });

  it('rejects anything that is not the plain dict literal', () => {
    const bad: [string, string][] = [
      ["__import__('os').system('true')", 'npy-header'],
      ["{'descr': '<f4', 'fortran_order': False}", 'npy-header'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3,), 'extra': 1}", 'npy-header'],
      ["{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (3,)}", 'npy-header'],
      ["{'descr': '<f4', 'fortran_order': 0, 'shape': (3,)}", 'npy-header'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3)}", 'npy-shape'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': [3]}", 'npy-shape'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}", 'npy-shape'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}", 'npy-shape'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3.5,)}", 'npy-header'],
      ["{'descr': '<f4', 'fortran_order': False, 'shape': (3,)} junk", 'npy-header'],
      ["{'descr': '<f4, 'fortran_order': False, 'shape': (3,)}", 'npy-header'],
      ["{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (3,)}", 'npy-dtype-unsupported'],
      ["{'descr': '|O', 'fortran_order': False, 'shape': (3,)}", 'npy-object-dtype'],
      ["{'descr': '<c16', 'fortran_order': False, 'shape': (3,)}", 'npy-dtype-unsupported'],
      ["{'descr': '<f16', 'fortran_order': False, 'shape': (3,)}", 'npy-dtype-unsupported'],
      ['('.repeat(100), 'npy-header'],
    ];
    for (const [text, rule] of bad) {
      let err: unknown;
      try {
        parseNpyHeaderText(text, { file: 'h.npy' });
      } catch (e) {
        err = e;
      }
      expect(err, text).toBeInstanceOf(InputError);
      expect((err as InputError).rule, text).toBe(rule);
      expect((err as InputError).message.startsWith('h.npy: ')).toBe(true);
    }
  });
});

describe('bad .npy files', () => {
  const header = (dict: string, version = 1) => {
    const text = Buffer.from(dict + '\n', version === 3 ? 'utf8' : 'latin1');
    const pre = Buffer.alloc(version === 1 ? 10 : 12);
    Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(pre);
    if (version === 1) pre.writeUInt16LE(text.length, 8);
    else pre.writeUInt32LE(text.length, 8);
    return Buffer.concat([pre, text]);
  };
  const ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }";

  it('names the file and the rule for every broken header or body', async () => {
    const cases: [string, Uint8Array, string][] = [
      ['magic.npy', Buffer.from('PK\x03\x04 not numpy at all'), 'npy-magic'],
      ['short.npy', Buffer.from([0x93, 0x4e, 0x55]), 'npy-magic'],
      ['empty.npy', Buffer.alloc(0), 'npy-magic'],
      ['version.npy', Buffer.concat([header(ok).subarray(0, 6), Buffer.from([4, 0]), header(ok).subarray(8)]), 'npy-version'],
      ['minor.npy', Buffer.concat([header(ok).subarray(0, 6), Buffer.from([1, 1]), header(ok).subarray(8)]), 'npy-version'],
      ['lenfield.npy', header(ok, 2).subarray(0, 10), 'npy-header-length'],
      ['pastend.npy', header(ok).subarray(0, 40), 'npy-header-length'],
      ['toolarge.npy', Buffer.concat([header(ok, 2).subarray(0, 8), Buffer.from([0, 0, 0, 0x10])]), 'npy-header-too-large'],
      ['dict.npy', Buffer.concat([header("{'descr': '<f4', 'shape': (4,)}"), Buffer.alloc(16)]), 'npy-header'],
      ['truncated.npy', Buffer.concat([header(ok), Buffer.alloc(15)]), 'npy-truncated'],
      ['badutf8.npy', Buffer.concat([header(ok, 3).subarray(0, 12), Buffer.from([0xff, 0xfe]), header(ok, 3).subarray(14)]), 'npy-header'],
      ['object.npy', Buffer.concat([header("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"), Buffer.alloc(64)]), 'npy-object-dtype'],
    ];
    for (const [name, bytes, rule] of cases) {
      const path = join(tmp, name);
      await writeFile(path, bytes);
      await expectInputError(npyTensor(path, 't'), rule, path);
    }
    const good = join(tmp, 'good.npy');
    await writeFile(good, Buffer.concat([header(ok), Buffer.alloc(16)]));
    expect((await npyTensor(good, 't')).shape).toEqual([4]);
    await expectInputError(npyTensor(join(tmp, 'missing.npy'), 't'), 'file-missing', join(tmp, 'missing.npy'));
    await expectInputError(npyTensor(tmp, 't'), 'file-unreadable', tmp);
  });
});

describe('lenet5 checkpoint layouts', () => {
  const table = (): [string, number[]][] => summary.tensor_order.map((n) => [n, summary.tensor_shapes[n]]);

  it('splits a flat vector by the tensor table into the npz tensors', async () => {
    for (const epoch of ['001', '002', '003']) {
      const flatPath = join(LENET, `flat/epoch_${epoch}.npy`);
      const flat = await readFlatNpyCheckpoint(flatPath, table());
      const npz = await readNpzCheckpoint(join(LENET, `npz/epoch_${epoch}.npz`));
      expect(flat.format).toBe('npy');
      expect(flat.files).toEqual([flatPath]);
      expect(flat.tensors.map((t) => t.name)).toEqual(summary.tensor_order);
      expect(flat.tensors.map((t) => t.shape)).toEqual(npz.tensors.map((t) => t.shape));
      for (let i = 0; i < flat.tensors.length; i++) {
        expect(await values(flat.tensors[i])).toEqual(await values(npz.tensors[i]));
      }
    }
  });

  it('reads a flat vector without a table as one tensor', async () => {
    const flatPath = join(LENET, 'flat/epoch_002.npy');
    const c = await readFlatNpyCheckpoint(flatPath);
    expect(c.tensors.map((t) => [t.name, t.shape])).toEqual([[FLAT_TENSOR_NAME, [61706]]]);
    const all = await values(c.tensors[0]);
    const dir = await readNpyDirCheckpoint(join(LENET, 'npy-dirs/epoch_002'));
    const first = dir.tensors.find((t) => t.name === summary.tensor_order[0])!;
    const v = await values(first);
    expect(all.subarray(0, v.length)).toEqual(v);
  });

  it('refuses a table whose sizes do not add up, or a non-vector', async () => {
    const flatPath = join(LENET, 'flat/epoch_001.npy');
    const short = table().slice(0, -1);
    const err = await expectInputError(readFlatNpyCheckpoint(flatPath, short), 'tensor-table-mismatch', flatPath);
    expect(err.message).toContain('61706');
    const long: [string, number[]][] = [...table(), ['extra', [1]]];
    await expectInputError(readFlatNpyCheckpoint(flatPath, long), 'tensor-table-mismatch', flatPath);
    const twoD = join(EXTRA, 'le_f4.npy');
    await expectInputError(readFlatNpyCheckpoint(twoD, [['a', [6]]]), 'flat-not-vector', twoD);
  });

  it('loads and validates a tensor table file', async () => {
    const good = join(tmp, 'table.json');
    await writeFile(good, JSON.stringify(table()));
    expect(await loadTensorTable(good)).toEqual(table());
    const bad: unknown[] = ['{}', '[]', '[["a"]]', '[["a", [1, -2]]]', '[["a", [1.5]]]', '[[3, [1]]]', '[["a", [1]], ["a", [2]]]', 'not json'];
    for (const [i, text] of bad.entries()) {
      const p = join(tmp, `bad-table-${i}.json`);
      await writeFile(p, String(text));
      await expectInputError(loadTensorTable(p), 'tensor-table', p);
    }
    await expectInputError(loadTensorTable(join(tmp, 'nope.json')), 'file-missing', join(tmp, 'nope.json'));
  });

  it('refuses an empty checkpoint folder', async () => {
    const empty = join(tmp, 'empty-ckpt');
    await mkdir(empty);
    await expectInputError(readNpyDirCheckpoint(empty), 'npy-dir-empty', empty);
  });
});

describe('writers', () => {
  it('writes .npy files byte-identical to numpy', async () => {
    const cases = Object.entries(expected.writer);
    expect(cases.length).toBeGreaterThanOrEqual(8);
    for (const [name, w] of cases) {
      const dtype = parseDescr(w.dtype).dtype;
      const out = join(tmp, name);
      await writeNpy(out, { name: 'x', dtype, shape: w.shape, data: encodeFloats(dtype, w.values) });
      expect(Buffer.compare(await readFile(out), await readFile(join(EXTRA, name))), name).toBe(0);
    }
  });

  it('writes headers byte-identical to numpy for large and long shapes', () => {
    expect(expected.headers.length).toBeGreaterThanOrEqual(8);
    for (const h of expected.headers) {
      const shape = h.shape.map(Number);
      const mine = Buffer.from(npyHeaderBytes(parseDescr(h.descr).dtype, shape)).toString('hex');
      expect(mine, `${h.descr} (${h.shape.join(',')})`).toBe(h.hex);
    }
  });

  it('round-trips every numpy dtype through writeNpy and writeNpyDir', async () => {
    const dtypes: DType[] = ['F16', 'F32', 'F64', 'I8', 'I16', 'I32', 'I64', 'U8', 'U16', 'U32', 'U64', 'BOOL'];
    const vals = [0, 1, 2, 3, 4, 5];
    const tensors = dtypes.map((dtype) => ({ name: `t.${dtype}`, dtype, shape: [2, 3], data: encodeFloats(dtype, vals) }));
    for (const t of tensors) {
      const p = join(tmp, `rt-${t.dtype}.npy`);
      await writeNpy(p, t);
      const back = await npyTensor(p, t.name);
      expect(back.dtype).toBe(t.dtype);
      expect(Array.from(await values(back))).toEqual(t.dtype === 'BOOL' ? vals.map((v) => (v ? 1 : 0)) : vals);
    }
    const dir = join(tmp, 'ckpt-dir');
    await writeNpyDir(dir, tensors);
    const c = await readNpyDirCheckpoint(dir);
    expect(c.tensors.map((t) => t.name).sort()).toEqual(tensors.map((t) => t.name).sort());
    for (const t of c.tensors) expect(Array.from(await values(t))).toEqual(t.dtype === 'BOOL' ? vals.map((v) => (v ? 1 : 0)) : vals);
    expect((await readdir(dir)).every((n) => !n.endsWith('.tmp'))).toBe(true);
  });

  it('refuses BF16/F8, bad names and wrong data sizes; leaves no temp file behind', async () => {
    for (const dtype of ['BF16', 'F8_E4M3', 'F8_E5M2'] as DType[]) {
      await expect(writeNpy(join(tmp, 'bf.npy'), { name: 'w', dtype, shape: [1], data: new Uint8Array(DTYPES[dtype].bytes) })).rejects.toThrow(UsageError);
    }
    expect(existsSync(join(tmp, 'bf.npy'))).toBe(false);
    // `/` makes sub-folders (nested npy layout), but never a path out of the folder or an empty segment.
    for (const name of ['../b', 'a/../../b', '/abs', 'a//b', 'a\\b', '..']) {
      await expect(writeNpyDir(join(tmp, 'd2'), [{ name, dtype: 'F32', shape: [1], data: new Uint8Array(4) }])).rejects.toThrow(UsageError);
    }
    expect(existsSync(join(tmp, 'b.npy')) || existsSync(join(tmp, 'd2'))).toBe(false);
    await expect(writeNpy(join(tmp, 'short.npy'), { name: 'w', dtype: 'F32', shape: [2], data: new Uint8Array(4) })).rejects.toThrow(RangeError);
    // rename over a folder fails: the temp file must be gone afterwards.
    const target = join(tmp, 'occupied');
    await mkdir(join(target, 'inner'), { recursive: true });
    await expect(writeNpy(target, { name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) })).rejects.toThrow();
    expect((await readdir(tmp)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('scratch cleanup', () => {
  it('removes the scratch folder and recreates it on demand', async () => {
    const t = await npyTensor(join(EXTRA, 'fortran_2d_f4.npy'), 'x');
    expect(existsSync(t.spans[0].path)).toBe(true);
    cleanupScratch();
    expect(existsSync(t.spans[0].path)).toBe(false);
    const again = await npyTensor(join(EXTRA, 'fortran_2d_f4.npy'), 'x');
    expect(Array.from(await values(again))).toEqual(expected.npy['fortran_2d_f4.npy'].values);
    cleanupScratch();
  });
});
