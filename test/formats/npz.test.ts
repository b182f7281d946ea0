import { mkdtemp, open, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, UsageError } from '../../src/errors.ts';
import { DTYPES, decodeInto, elementCount, encodeFloats } from '../../src/formats/dtype.ts';
import type { DType } from '../../src/formats/dtype.ts';
import { readNpyDirCheckpoint } from '../../src/formats/npy.ts';
import { readNpzCheckpoint, writeNpz } from '../../src/formats/npz.ts';
import { cleanupScratch, scratchDir } from '../../src/formats/scratch.ts';
import type { StoredTensor, TensorToWrite } from '../../src/formats/types.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';

const fixture = (p: string) => fileURLToPath(new URL(`../../fixtures/${p}`, import.meta.url));
const EXTRA = fixture('npy-extra');
const LENET = fixture('lenet5-fmnist');

let members: { name: string; shape: number[]; values: number[] }[];
let summary: { tensor_order: string[]; tensor_shapes: Record<string, number[]>; epochs: number };
let tmp: string;

beforeAll(async () => {
  members = JSON.parse(await readFile(join(EXTRA, 'expected.json'), 'utf8')).npz.members;
  summary = JSON.parse(await readFile(join(LENET, 'official/summary.json'), 'utf8'));
  tmp = await mkdtemp(join(tmpdir(), 'npz-test-'));
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  cleanupScratch();
});

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

async function expectInputError(p: Promise<unknown>, rule: string, file: string, member?: string): Promise<InputError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e, `expected InputError ${rule}`).toBeInstanceOf(InputError);
  const ie = e as InputError;
  expect(ie.rule, ie.message).toBe(rule);
  expect(ie.message.startsWith(`${file}: `)).toBe(true);
  if (member !== undefined) expect(ie.message).toContain(`'${member}'`);
  expect(ie.message).not.toContain('\n');
  return ie;
}

/** Central-directory records of a (non-ZIP64) archive, with the offsets of their fields. */
function centralEntries(buf: Buffer): { at: number; name: string; method: number; size: number; localOffset: number }[] {
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const count = buf.readUInt16LE(eocd + 10);
  let p = buf.readUInt32LE(eocd + 16);
  const out = [];
  for (let i = 0; i < count; i++) {
    const nameLen = buf.readUInt16LE(p + 28);
    out.push({
      at: p,
      name: buf.toString('utf8', p + 46, p + 46 + nameLen),
      method: buf.readUInt16LE(p + 10),
      size: buf.readUInt32LE(p + 20),
      localOffset: buf.readUInt32LE(p + 42),
    });
    p += 46 + nameLen + buf.readUInt16LE(p + 30) + buf.readUInt16LE(p + 32);
  }
  return out;
}

describe('real numpy archives', () => {
  it('reads all 25 lenet5 epochs in archive order with spans inside the file', async () => {
    const files = (await readdir(join(LENET, 'npz'))).filter((f) => f.endsWith('.npz')).sort();
    expect(files.length).toBe(summary.epochs);
    for (const f of files) {
      const path = join(LENET, 'npz', f);
      const c = await readNpzCheckpoint(path);
      expect(c.format).toBe('npz');
      expect(c.files).toEqual([path]);
      expect(c.tensors.map((t) => t.name)).toEqual(summary.tensor_order);
      expect(c.tensors.map((t) => t.shape)).toEqual(summary.tensor_order.map((n) => summary.tensor_shapes[n]));
      const size = (await stat(path)).size;
      for (const t of c.tensors) {
        expect(t.spans).toHaveLength(1);
        expect(t.spans[0].path).toBe(path);
        expect(t.spans[0].offset + t.spans[0].length).toBeLessThanOrEqual(size);
        expect(t.spans[0].length).toBe(elementCount(t.shape) * 4);
      }
    }
  });

  it('matches the per-tensor npy folders of the same epochs value for value', async () => {
    for (const epoch of ['001', '002', '003']) {
      const npz = await readNpzCheckpoint(join(LENET, `npz/epoch_${epoch}.npz`));
      const dir = await readNpyDirCheckpoint(join(LENET, `npy-dirs/epoch_${epoch}`));
      expect(dir.tensors.map((t) => t.name).sort()).toEqual(npz.tensors.map((t) => t.name).sort());
      for (const t of npz.tensors) {
        const d = dir.tensors.find((x) => x.name === t.name)!;
        expect(d.shape).toEqual(t.shape);
        expect(d.dtype).toBe(t.dtype);
        expect(await values(d)).toEqual(await values(t));
      }
    }
    // Different epochs really differ (the comparison above could not pass on identical data by accident).
    const e1 = await readNpzCheckpoint(join(LENET, 'npz/epoch_001.npz'));
    const e3 = await readNpzCheckpoint(join(LENET, 'npz/epoch_003.npz'));
    expect(await values(e1.tensors[0])).not.toEqual(await values(e3.tensors[0]));
  });

  it('reads np.savez and np.savez_compressed archives (big-endian, Fortran, scalar, bool members)', async () => {
    for (const name of ['stored.npz', 'compressed.npz']) {
      const path = join(EXTRA, name);
      const c = await readNpzCheckpoint(path);
      expect(c.tensors.map((t) => t.name)).toEqual(members.map((m) => m.name));
      for (let i = 0; i < members.length; i++) {
        expect(c.tensors[i].shape).toEqual(members[i].shape);
        expect(Array.from(await values(c.tensors[i])), `${name} ${members[i].name}`).toEqual(members[i].values);
      }
      const where = c.tensors.map((t) => t.spans[0].path);
      if (name === 'stored.npz') {
        expect(where.filter((p) => p === path).length).toBe(members.length - 1); // all but the Fortran copy
      } else {
        expect(where.every((p) => p.startsWith(scratchDir()))).toBe(true);
      }
    }
  });

  it('refuses a pickled object member, naming archive and member', async () => {
    const path = join(EXTRA, 'object_member.npz');
    const err = await expectInputError(readNpzCheckpoint(path), 'npy-object-dtype', path, 'obj.npy');
    expect(err.message).toMatch(/pickle/);
  });
});

describe('broken archives', () => {
  async function variant(name: string, source: string, edit: (b: Buffer) => Buffer | void): Promise<string> {
    const buf = Buffer.from(await readFile(join(EXTRA, source)));
    const out = edit(buf) ?? buf;
    const path = join(tmp, name);
    await writeFile(path, out);
    return path;
  }

  it('reports corrupt zips, truncated or bad members with the archive and member named', async () => {
    const notZip = await variant('notzip.npz', 'le_f4.npy', () => undefined);
    await expectInputError(readNpzCheckpoint(notZip), 'npz-corrupt', notZip);

    const cut = await variant('cut.npz', 'stored.npz', (b) => b.subarray(0, b.length - 40));
    await expectInputError(readNpzCheckpoint(cut), 'npz-corrupt', cut);

    const shrunk = await variant('shrunk.npz', 'stored.npz', (b) => {
      const e = centralEntries(b)[0];
      b.writeUInt32LE(140, e.at + 20);
      b.writeUInt32LE(140, e.at + 24);
    });
    await expectInputError(readNpzCheckpoint(shrunk), 'npy-truncated', shrunk, members[0].name + '.npy');

    const overflow = await variant('overflow.npz', 'stored.npz', (b) => {
      const e = centralEntries(b).at(-1)!;
      b.writeUInt32LE(e.size + 100000, e.at + 20);
      b.writeUInt32LE(e.size + 100000, e.at + 24);
    });
    await expectInputError(readNpzCheckpoint(overflow), 'npz-member-truncated', overflow, members.at(-1)!.name + '.npy');

    const badMagic = await variant('badmagic.npz', 'stored.npz', (b) => {
      const e = centralEntries(b)[1];
      const start = e.localOffset + 30 + b.readUInt16LE(e.localOffset + 26) + b.readUInt16LE(e.localOffset + 28);
      b[start + 1] = 0x58;
    });
    await expectInputError(readNpzCheckpoint(badMagic), 'npy-magic', badMagic, members[1].name + '.npy');

    const badCrc = await variant('badcrc.npz', 'compressed.npz', (b) => {
      const e = centralEntries(b)[2];
      expect(e.method).toBe(8);
      b.writeUInt32LE((b.readUInt32LE(e.at + 16) ^ 0x10) >>> 0, e.at + 16);
    });
    await expectInputError(readNpzCheckpoint(badCrc), 'npz-crc', badCrc, members[2].name + '.npy');

    const shortDeflate = await variant('shortdeflate.npz', 'compressed.npz', (b) => {
      const e = centralEntries(b)[0];
      b.writeUInt32LE(Math.floor(b.readUInt32LE(e.at + 20) / 2), e.at + 20);
    });
    await expectInputError(readNpzCheckpoint(shortDeflate), 'npz-member-truncated', shortDeflate, members[0].name + '.npy');

    const garbled = await variant('garbled.npz', 'compressed.npz', (b) => {
      const e = centralEntries(b)[0];
      const start = e.localOffset + 30 + b.readUInt16LE(e.localOffset + 26) + b.readUInt16LE(e.localOffset + 28);
      b[start] = 0xff; // reserved block type 3: invalid deflate stream
    });
    await expectInputError(readNpzCheckpoint(garbled), 'npz-member-corrupt', garbled, members[0].name + '.npy');

    const method = await variant('method.npz', 'stored.npz', (b) => {
      b.writeUInt16LE(12, centralEntries(b)[0].at + 10);
    });
    await expectInputError(readNpzCheckpoint(method), 'npz-method', method);

    const renamed = await variant('renamed.npz', 'stored.npz', (b) => {
      const e = centralEntries(b).find((x) => x.name === 'scalar.npy')!;
      b.write('scalar.txt', e.at + 46, 'latin1');
    });
    await expectInputError(readNpzCheckpoint(renamed), 'npz-member-name', renamed, 'scalar.txt');

    await expectInputError(readNpzCheckpoint(join(tmp, 'absent.npz')), 'file-missing', join(tmp, 'absent.npz'));
  });

  it('refuses duplicate members', async () => {
    const path = join(tmp, 'dup.npz');
    const one = (name: string): TensorToWrite => ({ name, dtype: 'F32', shape: [1], data: new Uint8Array(4) });
    await writeNpz(path, [one('a1'), one('a2')]);
    const buf = await readFile(path);
    buf.write('a1', centralEntries(buf)[1].at + 46, 'latin1');
    await writeFile(path, buf);
    await expectInputError(readNpzCheckpoint(path), 'npz-duplicate-member', path, 'a1.npy');
  });
});

describe('writeNpz', () => {
  const dtypes: DType[] = ['F16', 'F32', 'F64', 'I8', 'I16', 'I32', 'I64', 'U8', 'U16', 'U32', 'U64', 'BOOL'];
  const make = (): TensorToWrite[] =>
    dtypes.map((dtype, i) => ({
      name: `layer.${i}.${dtype.toLowerCase()}`,
      dtype,
      shape: i % 3 === 0 ? [] : [i, 2],
      data: encodeFloats(dtype, Array.from({ length: i % 3 === 0 ? 1 : 2 * i }, (_, k) => (k + i) % 7)),
    }));

  for (const [forceZip64, compress] of [[false, false], [true, false], [false, true], [true, true]]) {
    it(`round-trips every numpy dtype in order${forceZip64 ? ' with ZIP64 records' : ''}${compress ? ', deflated' : ''}`, async () => {
      const tensors = make();
      const path = join(tmp, `rt-${forceZip64}-${compress}.npz`);
      await writeNpz(path, tensors, { forceZip64, compress });
      const c = await readNpzCheckpoint(path);
      expect(c.extras?.compressed).toBe(compress);
      if (compress) expect(c.tensors[1].spans[0].path).not.toBe(path);
      expect(c.tensors.map((t) => t.name)).toEqual(tensors.map((t) => t.name));
      for (let i = 0; i < tensors.length; i++) {
        const t = tensors[i];
        expect(c.tensors[i].shape).toEqual(t.shape);
        expect(c.tensors[i].dtype).toBe(t.dtype);
        const want = new Float64Array(elementCount(t.shape));
        decodeInto(t.dtype, t.data, want.length, want);
        expect(await values(c.tensors[i])).toEqual(want);
        if (!compress) expect(c.tensors[i].spans[0].path).toBe(path);
      }
      expect((await readdir(tmp)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    });
  }

  it('re-writes a real checkpoint that reads back identically', async () => {
    const src = await readNpzCheckpoint(join(LENET, 'npz/epoch_025.npz'));
    const tensors: TensorToWrite[] = [];
    for (const t of src.tensors) {
      const v = await values(t);
      tensors.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: encodeFloats(t.dtype, v) });
    }
    const path = join(tmp, 'lenet-copy.npz');
    await writeNpz(path, tensors);
    const back = await readNpzCheckpoint(path);
    expect(back.tensors.map((t) => [t.name, t.shape])).toEqual(src.tensors.map((t) => [t.name, t.shape]));
    for (let i = 0; i < src.tensors.length; i++) expect(await values(back.tensors[i])).toEqual(await values(src.tensors[i]));
  });

  it('says whether numpy deflated the archive, and writes deflated archives numpy reads', async () => {
    expect((await readNpzCheckpoint(join(EXTRA, 'compressed.npz'))).extras?.compressed).toBe(true);
    expect((await readNpzCheckpoint(join(EXTRA, 'stored.npz'))).extras?.compressed).toBe(false);
    if (!haveTools('python3-numpy')) return;
    const tensors = make();
    const path = join(tmp, 'deflated-for-numpy.npz');
    await writeNpz(path, tensors, { compress: true });
    const script = [
      'import sys, zipfile, json, numpy as np',
      'z = zipfile.ZipFile(sys.argv[1]); assert z.testzip() is None',
      'methods = sorted({i.compress_type for i in z.infolist()})',
      'a = np.load(sys.argv[1])',
      'print(json.dumps({"methods": methods, "names": list(a.keys()), "sums": [float(np.asarray(a[k], dtype=np.float64).sum()) for k in a.keys()]}))',
    ].join('\n');
    const r = spawnSync(PYTHON, ['-c', script, path], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    expect(out.methods).toEqual([8]);
    expect(out.names).toEqual(tensors.map((t) => t.name));
    const sums = tensors.map((t) => {
      const v = new Float64Array(elementCount(t.shape));
      decodeInto(t.dtype, t.data, v.length, v);
      return v.reduce((a, b) => a + b, 0);
    });
    expect(out.sums).toEqual(sums);
  });

  it('refuses BF16 and duplicate names', async () => {
    await expect(writeNpz(join(tmp, 'bf.npz'), [{ name: 'w', dtype: 'BF16', shape: [1], data: new Uint8Array(2) }])).rejects.toThrow(UsageError);
    const t: TensorToWrite = { name: 'w', dtype: 'F32', shape: [1], data: new Uint8Array(4) };
    await expect(writeNpz(join(tmp, 'dup2.npz'), [t, t])).rejects.toThrow(UsageError);
  });
});
