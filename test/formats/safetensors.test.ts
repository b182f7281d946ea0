import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mkdtemp, open, readFile, readdir, rm, symlink, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.ts';
import { DTYPES, decodeInto, elementCount, encodeFloats, type DType } from '../../src/formats/dtype.ts';
import {
  planSafetensors,
  readExactly,
  readSafetensorsHeader,
  writePlannedSafetensors,
  writeSafetensors,
} from '../../src/formats/safetensors.ts';
import { readShardedSafetensors } from '../../src/formats/safetensors-sharded.ts';
import type { CheckpointContents, TensorToWrite } from '../../src/formats/types.ts';

const FIXTURES = join(import.meta.dirname, '../../fixtures/resnet20-bn-safetensors');
const fixture = (epoch: number) => join(FIXTURES, `epoch_00${epoch}.safetensors`);

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmd-safetensors-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Every tensor of a checkpoint with its bytes, read through the spans the reader reported. */
async function loadTensors(contents: CheckpointContents): Promise<TensorToWrite[]> {
  const out: TensorToWrite[] = [];
  for (const t of contents.tensors) {
    const parts: Uint8Array[] = [];
    for (const span of t.spans) {
      const fh = await open(span.path, 'r');
      try {
        parts.push(await readExactly(fh, span.offset, span.length));
      } finally {
        await fh.close();
      }
    }
    out.push({ name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(Buffer.concat(parts)) });
  }
  return out;
}

function decode(t: TensorToWrite): Float64Array {
  const n = elementCount(t.shape);
  const out = new Float64Array(n);
  decodeInto(t.dtype, t.data, n, out);
  return out;
}

async function expectInputError(p: Promise<unknown>, rule: string, file: string, fragment?: string | RegExp): Promise<InputError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected InputError ${rule}`).toBeInstanceOf(InputError);
  const e = err as InputError;
  expect(e.rule).toBe(rule);
  expect(e.file).toBe(file);
  expect(e.message.startsWith(`${file}: `)).toBe(true);
  expect(e.message).not.toMatch(/\n/);
  if (fragment) expect(e.message).toMatch(fragment);
  return e;
}

describe('readSafetensorsHeader on the real resnet20 checkpoints', () => {
  it('lists the tensors, in data order, with spans that tile the data buffer', async () => {
    const path = fixture(1);
    const c = await readSafetensorsHeader(path);
    const bytes = await readFile(path);
    const headerLength = Number(bytes.readBigUInt64LE(0));

    expect(c.format).toBe('safetensors');
    expect(c.files).toEqual([path]);
    expect(c.metadata).toEqual({ epoch: '1' });
    const floats = c.tensors.filter((t) => t.dtype === 'F32');
    expect(floats.filter((t) => t.shape.length >= 1)).toHaveLength(107);
    expect(floats.reduce((s, t) => s + elementCount(t.shape), 0)).toBe(273_754);
    const ints = c.tensors.filter((t) => t.dtype !== 'F32');
    expect(ints.length).toBeGreaterThan(0);
    for (const t of ints) {
      expect(t.dtype).toBe('I64');
      expect(t.shape).toEqual([]);
      expect(t.name.endsWith('num_batches_tracked')).toBe(true);
    }
    let offset = 8 + headerLength;
    for (const t of c.tensors) {
      expect(t.encoding).toEqual({ dtype: t.dtype });
      expect(t.spans).toEqual([{ path, offset, length: elementCount(t.shape) * DTYPES[t.dtype].bytes }]);
      offset += t.spans[0].length;
    }
    expect(offset).toBe(bytes.length);
  });

  it('points at the right bytes: num_batches_tracked grows by one epoch of batches', async () => {
    const counts: number[] = [];
    for (const epoch of [1, 2, 3]) {
      const c = await readSafetensorsHeader(fixture(epoch));
      expect(c.metadata).toEqual({ epoch: String(epoch) });
      const t = (await loadTensors(c)).find((x) => x.name === 'bn1.num_batches_tracked')!;
      counts.push(decode(t)[0]);
    }
    expect(counts[0]).toBeGreaterThan(0);
    expect(counts[1]).toBe(2 * counts[0]);
    expect(counts[2]).toBe(3 * counts[0]);
  });
});

describe('writeSafetensors', () => {
  it.each([1, 2, 3])('reproduces fixture epoch %i byte for byte, whatever the input order', async (epoch) => {
    const c = await readSafetensorsHeader(fixture(epoch));
    const tensors = await loadTensors(c);
    // A deterministic shuffle, so the writer's own sort is what produces the file order.
    const shuffled = tensors.map((t, i) => ({ t, k: (i * 7919) % 1009 })).sort((a, b) => a.k - b.k).map((x) => x.t);
    expect(shuffled.map((t) => t.name)).not.toEqual(tensors.map((t) => t.name));
    const out = join(dir, `copy_${epoch}.safetensors`);
    await writeSafetensors(out, shuffled, c.metadata);
    expect(Buffer.compare(await readFile(out), await readFile(fixture(epoch)))).toBe(0);
  });

  it('matches the reference serializer bytes for an empty file, metadata and one tensor', () => {
    // Byte strings from the reference library's own unit tests (test_empty, test_serialization).
    const empty = planSafetensors([]);
    expect([...empty.header]).toEqual([8, 0, 0, 0, 0, 0, 0, 0, 123, 125, 32, 32, 32, 32, 32, 32]);
    const meta = planSafetensors([], { framework: 'pt' });
    expect(Buffer.from(meta.header).toString('latin1')).toBe('\x28\0\0\0\0\0\0\0{"__metadata__":{"framework":"pt"}}     ');
    const one = planSafetensors([{ name: 'attn.0', dtype: 'F32', shape: [1, 2, 3] }]);
    expect(one.header.length).toBe(8 + 64);
    expect(Buffer.from(one.header.subarray(8)).toString()).toBe('{"attn.0":{"dtype":"F32","shape":[1,2,3],"data_offsets":[0,24]}}');
    expect(one.totalBytes).toBe(8 + 64 + 24);
    expect(one.offsets.get('attn.0')).toEqual({ begin: 0, end: 24 });
  });

  it('orders by dtype width (reference enum order, descending) then by UTF-8 bytes of the name', () => {
    const dtypes = Object.keys(DTYPES) as DType[];
    const plan = planSafetensors([
      ...dtypes.map((dtype) => ({ name: `t_${dtype}`, dtype, shape: [1] })),
      { name: 'b\u{1F600}', dtype: 'F32', shape: [] }, // above U+FFFF: UTF-16 order would put it before b\uFFFD
      { name: 'b\uFFFD', dtype: 'F32', shape: [] },
      { name: 'B', dtype: 'F32', shape: [0, 3] },
    ]);
    expect(plan.order).toEqual([
      't_U64', 't_I64', 't_F64', 'B', 'b\uFFFD', 'b\u{1F600}', 't_F32', 't_U32', 't_I32', 't_BF16', 't_F16',
      't_U16', 't_I16', 't_F8_E4M3', 't_F8_E5M2', 't_I8', 't_U8', 't_BOOL',
    ]);
    expect(plan.offsets.get('B')).toEqual({ begin: 24, end: 24 });
    expect((plan.header.length - 8) % 8).toBe(0);
  });

  it('refuses duplicate names, the reserved name and data of the wrong length', async () => {
    expect(() => planSafetensors([{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'I8', shape: [1] }])).toThrow(RangeError);
    expect(() => planSafetensors([{ name: '__metadata__', dtype: 'F32', shape: [1] }])).toThrow(RangeError);
    expect(() => planSafetensors([{ name: 'a', dtype: 'F32', shape: [-1] }])).toThrow(RangeError);
    const out = join(dir, 'wrong-length.safetensors');
    await expect(writeSafetensors(out, [{ name: 'a', dtype: 'F32', shape: [2], data: new Uint8Array(7) }])).rejects.toThrow(RangeError);
    await expect(readFile(out)).rejects.toThrow();
  });

  it('streams through a pre-sized temp file and leaves nothing behind when filling fails', async () => {
    const sub = await mkdtemp(join(dir, 'atomic-'));
    const out = join(sub, 'model.safetensors');
    await writeFile(out, 'old contents');
    const plan = planSafetensors([{ name: 'w', dtype: 'F32', shape: [2] }, { name: 'n', dtype: 'I64', shape: [] }]);
    let tempName = '';
    await expect(
      writePlannedSafetensors(out, plan, async () => {
        tempName = (await readdir(sub)).find((f) => f !== 'model.safetensors')!;
        throw new Error('disk on fire');
      }),
    ).rejects.toThrow('disk on fire');
    expect(tempName).toMatch(new RegExp(`^\\.model\\.safetensors\\.${process.pid}\\.[0-9a-f]+\\.tmp$`));
    expect(await readdir(sub)).toEqual(['model.safetensors']);
    expect(await readFile(out, 'utf8')).toBe('old contents');

    // The happy path: data pwritten out of order at header.length + begin.
    const w = encodeFloats('F32', [1.5, -2]);
    const n = encodeFloats('I64', [7]);
    await writePlannedSafetensors(out, plan, async (fh, dataStart) => {
      await fh.write(w, 0, w.length, dataStart + plan.offsets.get('w')!.begin);
      await fh.write(n, 0, n.length, dataStart + plan.offsets.get('n')!.begin);
    });
    expect(await readdir(sub)).toEqual(['model.safetensors']);
    const back = await loadTensors(await readSafetensorsHeader(out));
    expect(back.map((t) => [t.name, [...decode(t)]])).toEqual([['n', [7]], ['w', [1.5, -2]]]);
  });
});

describe('every dtype round-trips through writer → reader → decodeInto', () => {
  const values: Record<DType, number[]> = {
    F64: [0, -1.5, 1e300, Math.PI, -Infinity, 5e-324],
    F32: [0, -1.5, Math.fround(Math.PI), 3.4028234663852886e38, Math.fround(1e-40)],
    F16: [0, 1, -2, 0.5, 65504, 2 ** -24, Infinity],
    BF16: [1, -3, 2 ** 100, 0.15625, -(2 ** -126)],
    I64: [-(2 ** 53 - 1), -1, 0, 42, 2 ** 53 - 1],
    U64: [0, 1, 2 ** 53 - 1],
    I32: [-(2 ** 31), -1, 0, 2 ** 31 - 1],
    U32: [0, 1, 2 ** 32 - 1],
    I16: [-32768, -1, 0, 32767],
    U16: [0, 1, 65535],
    I8: [-128, -1, 0, 127],
    U8: [0, 1, 255],
    BOOL: [0, 1, 1, 0],
    // encodeFloats has no float8 encoder: bytes are given below, these are their meanings.
    F8_E4M3: [1, 448, -1, 2 ** -9, NaN],
    F8_E5M2: [1, 57344, Infinity, 2 ** -16, -2],
  };
  const f8Bytes: Partial<Record<DType, number[]>> = {
    F8_E4M3: [0x38, 0x7e, 0xb8, 0x01, 0x7f],
    F8_E5M2: [0x3c, 0x7b, 0x7c, 0x01, 0xc0],
  };

  it('decodes what was encoded, for all 15 dtypes in one file', async () => {
    const dtypes = Object.keys(DTYPES) as DType[];
    expect(dtypes).toHaveLength(15);
    const tensors: TensorToWrite[] = dtypes.map((dtype) => ({
      name: `x.${dtype.toLowerCase()}`,
      dtype,
      shape: [values[dtype].length],
      data: f8Bytes[dtype] ? new Uint8Array(f8Bytes[dtype]!) : encodeFloats(dtype, values[dtype]),
    }));
    // A 2-D tensor and a scalar too, to cover shape bookkeeping.
    tensors.push({ name: 'grid', dtype: 'F16', shape: [2, 3], data: encodeFloats('F16', [1, 2, 3, 4, 5, 6]) });
    tensors.push({ name: 'scalar', dtype: 'BF16', shape: [], data: encodeFloats('BF16', [0.5]) });
    const out = join(dir, 'all-dtypes.safetensors');
    await writeSafetensors(out, tensors, { note: 'all dtypes', 'üñí': 'ç\n"quoted"' });

    const c = await readSafetensorsHeader(out);
    expect(c.metadata).toEqual({ note: 'all dtypes', 'üñí': 'ç\n"quoted"' });
    const back = await loadTensors(c);
    expect(back.map((t) => t.dtype)).toEqual(['U64', 'I64', 'F64', 'F32', 'U32', 'I32', 'BF16', 'BF16', 'F16', 'F16', 'U16', 'I16', 'F8_E4M3', 'F8_E5M2', 'I8', 'U8', 'BOOL']);
    for (const t of back) {
      const original = tensors.find((x) => x.name === t.name)!;
      expect(t.shape).toEqual(original.shape);
      expect(Buffer.compare(t.data, original.data)).toBe(0);
      const expected = t.name === 'grid' ? [1, 2, 3, 4, 5, 6] : t.name === 'scalar' ? [0.5] : values[t.dtype];
      expect([...decode(t)], t.name).toEqual(expected);
    }
  });
});

// ------------------------------------------------------------------------- bad input

/** A small valid file: F32 [2,3] "a", I64 [] "n", U8 [4] "b", metadata {epoch: "1"}. */
async function baseFile(): Promise<{ header: Record<string, any>; data: Uint8Array }> {
  const path = join(dir, 'base.safetensors');
  await writeSafetensors(path, [
    { name: 'a', dtype: 'F32', shape: [2, 3], data: encodeFloats('F32', [1, 2, 3, 4, 5, 6]) },
    { name: 'n', dtype: 'I64', shape: [], data: encodeFloats('I64', [3]) },
    { name: 'b', dtype: 'U8', shape: [4], data: new Uint8Array([1, 2, 3, 4]) },
  ], { epoch: '1' });
  const bytes = await readFile(path);
  const n = Number(bytes.readBigUInt64LE(0));
  return { header: JSON.parse(bytes.subarray(8, 8 + n).toString()), data: new Uint8Array(bytes.subarray(8 + n)) };
}

function assemble(headerText: string | Uint8Array, data: Uint8Array, lengthPrefix?: bigint): Buffer {
  const header = typeof headerText === 'string' ? Buffer.from(headerText) : Buffer.from(headerText);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthPrefix ?? BigInt(header.length));
  return Buffer.concat([prefix, header, data]);
}

type Case = [rule: string, fragment: RegExp, make: (base: { header: Record<string, any>; data: Uint8Array }) => Buffer];
const withHeader = (edit: (h: Record<string, any>) => void, extraData = 0) => (b: { header: Record<string, any>; data: Uint8Array }) => {
  const h = structuredClone(b.header);
  edit(h);
  return assemble(JSON.stringify(h), Buffer.concat([b.data, Buffer.alloc(Math.max(0, extraData))]).subarray(0, b.data.length + extraData));
};

const CASES: Case[] = [
  ['empty-file', /empty \(0 bytes\)/, () => Buffer.alloc(0)],
  ['header-too-small', /5 bytes, fewer than the 8-byte/, () => Buffer.alloc(5)],
  ['header-too-large', /header length 18446744073709551615 exceeds the limit of 100000000/, (b) => assemble(JSON.stringify(b.header), b.data, 2n ** 64n - 1n)],
  ['header-too-large', /header length 100000001 exceeds/, (b) => assemble(JSON.stringify(b.header), b.data, 100_000_001n)],
  ['header-past-eof', /header length 5000 needs 5008 bytes but the file has only \d+ \(truncated/, (b) => assemble(JSON.stringify(b.header), b.data, 5000n)],
  ['header-utf8', /not valid UTF-8/, (b) => {
    const h = Buffer.from(JSON.stringify(b.header));
    h[h.indexOf('"a"') + 1] = 0xff;
    return assemble(h, b.data);
  }],
  ['header-json', /not valid JSON/, (b) => assemble(JSON.stringify(b.header).slice(0, -1) + ' ', b.data)],
  ['header-json', /not valid JSON/, (b) => assemble('\uFEFF' + JSON.stringify(b.header), b.data)],
  ['header-not-object', /header JSON is an array/, (b) => assemble('[1,2]   ', b.data)],
  ['metadata-not-object', /__metadata__ is an array/, withHeader((h) => { h.__metadata__ = ['1']; })],
  ['metadata-value-not-string', /__metadata__ key "epoch" is number 1, expected a string/, withHeader((h) => { h.__metadata__ = { epoch: 1 }; })],
  ['metadata-value-not-string', /__metadata__ key "nested" is an object/, withHeader((h) => { h.__metadata__ = { epoch: '1', nested: { a: 'b' } }; })],
  ['tensor-not-object', /"a": entry is number 5/, withHeader((h) => { h.a = 5; })],
  ['tensor-field-missing', /"a": entry has no "shape"/, withHeader((h) => { delete h.a.shape; })],
  ['tensor-name-empty', /empty name/, withHeader((h) => { h[''] = h.a; delete h.a; })],
  ['dtype-unknown', /"a": unknown dtype "F33"/, withHeader((h) => { h.a.dtype = 'F33'; })],
  ['dtype-unknown', /"a": dtype is number 32/, withHeader((h) => { h.a.dtype = 32; })],
  ...['F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64'].map(
    (code): Case => ['dtype-unsupported', new RegExp(`"b": unsupported dtype ${code}$`), withHeader((h) => { h.b.dtype = code; })],
  ),
  ['shape-negative', /"a": negative dimension -2 at shape\[0\]/, withHeader((h) => { h.a.shape = [-2, -3]; })],
  ['shape-invalid', /"a": shape\[1\] is number 1.5/, withHeader((h) => { h.a.shape = [4, 1.5]; })],
  // serde_json reads -0 as a float, so the reference refuses it as a dimension.
  ['shape-invalid', /"a": shape\[0\] is number -0/, (b) => assemble(JSON.stringify(b.header).replace('"shape":[2,3]', '"shape":[-0,3]'), b.data)],
  ['shape-invalid', /"a": shape is the string/, withHeader((h) => { h.a.shape = '2,3'; })],
  ['offsets-invalid', /"a": data_offsets is an array \[0\]/, withHeader((h) => { h.a.data_offsets = [0]; })],
  ['offsets-invalid', /"a": data_offsets is an array \[-8,16\]/, withHeader((h) => { h.a.data_offsets = [-8, 16]; })],
  ['offsets-reversed', /"a": data_offsets end 8 is before begin 32/, withHeader((h) => { h.a.data_offsets = [32, 8]; })],
  ['size-overflow', /"a": shape \[1099511627776, 1099511627776\] × 4 bytes overflows/, withHeader((h) => { h.a.shape = [2 ** 40, 2 ** 40]; })],
  ['tensor-size-mismatch', /"a": F32 shape \[2, 2\] needs 16 bytes but data_offsets \[8, 32\] span 24/, withHeader((h) => { h.a.shape = [2, 2]; })],
  ['gap-before-data', /"n": data_offsets begin at 8, but the first tensor must begin at 0/, withHeader((h) => {
    for (const k of ['n', 'a', 'b']) h[k].data_offsets = h[k].data_offsets.map((x: number) => x + 8);
  }, 8)],
  ['gap', /"a": data_offsets begin at 16, leaving a gap after the previous tensor's end 8/, withHeader((h) => {
    for (const k of ['a', 'b']) h[k].data_offsets = h[k].data_offsets.map((x: number) => x + 8);
  }, 8)],
  ['overlap', /"b": data_offsets begin at 30, overlapping the previous tensor, which ends at 32/, withHeader((h) => {
    h.b.data_offsets = [30, 34];
  }, -2)],
  ['truncated', /file is truncated: the header describes 36 data bytes, so the file needs \d+ bytes, but it has/, (b) => assemble(JSON.stringify(b.header), b.data.subarray(0, 33))],
  ['trailing-bytes', /file has 5 bytes after the last tensor's data/, (b) => assemble(JSON.stringify(b.header), Buffer.concat([b.data, Buffer.alloc(5)]))],
];

describe('readSafetensorsHeader refuses each broken rule with its own id', () => {
  it('accepts the unmutated base file (so every failure below comes from its mutation)', async () => {
    const b = await baseFile();
    const path = join(dir, 'base-reassembled.safetensors');
    await writeFile(path, assemble(JSON.stringify(b.header), b.data));
    const c = await readSafetensorsHeader(path);
    expect(c.tensors.map((t) => t.name)).toEqual(['n', 'a', 'b']);
  });

  it.each(CASES.map((c, i) => [`${c[0]} #${i}`, c] as const))('%s', async (_label, [rule, fragment, make]) => {
    const b = await baseFile();
    const path = join(dir, `bad-${rule}-${Math.random().toString(36).slice(2)}.safetensors`);
    await writeFile(path, make(b));
    await expectInputError(readSafetensorsHeader(path), rule, path, fragment);
  });

  it('reports a missing file and a directory as unreadable', async () => {
    const missing = join(dir, 'nope.safetensors');
    await expectInputError(readSafetensorsHeader(missing), 'unreadable', missing, /ENOENT/);
    await expectInputError(readSafetensorsHeader(dir), 'unreadable', dir, /not a regular file/);
  });

  it('accepts "__metadata__": null, zero-size tensors and extra entry keys, as the reference does', async () => {
    const path = join(dir, 'lenient.safetensors');
    const header = '{"__metadata__":null,"e":{"dtype":"F32","shape":[0,5],"data_offsets":[0,0],"extra":1},"s":{"dtype":"I8","shape":[],"data_offsets":[0,1]}}';
    await writeFile(path, assemble(header, new Uint8Array([200])));
    const c = await readSafetensorsHeader(path);
    expect(c.metadata).toEqual({});
    expect(c.tensors.map((t) => [t.name, t.spans[0].length])).toEqual([['e', 0], ['s', 1]]);
  });
});

// ------------------------------------------------------------------------- shards

describe('readShardedSafetensors', () => {
  async function makeShards(folder: string): Promise<{ original: TensorToWrite[]; shardOf: Map<string, string> }> {
    await mkdir(folder, { recursive: true });
    const original = await loadTensors(await readSafetensorsHeader(fixture(1)));
    const shardOf = new Map<string, string>();
    const names = ['model-00001-of-00003.safetensors', 'model-00002-of-00003.safetensors', 'model-00003-of-00003.safetensors'];
    const groups: TensorToWrite[][] = [[], [], []];
    original.forEach((t, i) => groups[i % 3].push(t));
    for (let s = 0; s < 3; s++) {
      const meta: Record<string, string> = s === 0 ? { format: 'pt', epoch: '1' } : { format: 'pt', shard: String(s) };
      await writeSafetensors(join(folder, names[s]), groups[s], meta);
      for (const t of groups[s]) shardOf.set(t.name, names[s]);
    }
    return { original, shardOf };
  }

  async function writeIndex(folder: string, weightMap: Record<string, string>, file = 'model.safetensors.index.json'): Promise<string> {
    const path = join(folder, file);
    await writeFile(path, JSON.stringify({ metadata: { total_size: 1105184 }, weight_map: weightMap }));
    return path;
  }

  it('reads a checkpoint split into three shards as one', async () => {
    const folder = join(dir, 'sharded');
    const { original, shardOf } = await makeShards(folder);
    // Mention shard 3 first, so it comes first in the result.
    const entries = [...shardOf].sort(([a, sa], [b, sb]) => (sb === sa ? a.localeCompare(b) : sb.localeCompare(sa)));
    const index = await writeIndex(folder, Object.fromEntries(entries));
    const c = await readShardedSafetensors(index);

    expect(c.format).toBe('safetensors');
    expect(c.files).toEqual([index, ...['00003', '00002', '00001'].map((k) => join(folder, `model-${k}-of-00003.safetensors`))]);
    expect(c.metadata).toEqual({ format: 'pt', shard: '2', epoch: '1' });
    expect(c.extras).toEqual({ indexMetadata: { total_size: 1105184 } });
    expect(c.tensors.map((t) => t.name).sort()).toEqual(original.map((t) => t.name).sort());
    const shardSeq = c.tensors.map((t) => shardOf.get(t.name));
    expect(shardSeq).toEqual([...shardSeq].sort().reverse());
    for (const t of c.tensors) expect(t.spans[0].path).toBe(join(folder, shardOf.get(t.name)!));
    // Within a shard, data-offset order.
    for (let i = 1; i < c.tensors.length; i++) {
      const [p, q] = [c.tensors[i - 1].spans[0], c.tensors[i].spans[0]];
      if (p.path === q.path) expect(q.offset).toBe(p.offset + p.length);
    }
    const back = await loadTensors(c);
    for (const t of back) {
      const o = original.find((x) => x.name === t.name)!;
      expect(t.dtype).toBe(o.dtype);
      expect(t.shape).toEqual(o.shape);
      expect(Buffer.compare(t.data, o.data)).toBe(0);
    }
  });

  it('refuses shard paths that leave the index folder', async () => {
    const folder = join(dir, 'escape');
    const { shardOf } = await makeShards(folder);
    const outside = join(dir, 'outside.safetensors');
    await writeSafetensors(outside, [{ name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    await symlink(outside, join(folder, 'link.safetensors'));
    const [first] = shardOf.keys();
    for (const [shard, why] of [
      ['../outside.safetensors', /contains "\.\."/],
      [outside, /is absolute/],
      ['sub/../../outside.safetensors', /contains "\.\."/],
      ['link.safetensors', /symlink leading outside/],
    ] as const) {
      const index = await writeIndex(folder, { ...Object.fromEntries(shardOf), [first]: shard });
      const e = await expectInputError(readShardedSafetensors(index), 'shard-path-escape', index, why);
      expect(e.message).toContain(JSON.stringify(shard));
    }
  });

  it('checks that the shards hold exactly the weight_map, each tensor where the map says', async () => {
    const folder = join(dir, 'mismatch');
    const { shardOf } = await makeShards(folder);
    const map = Object.fromEntries(shardOf);
    const [a, b] = Object.keys(map).filter((k) => map[k].includes('00001'));
    const wrong = await writeIndex(folder, { ...map, [a]: 'model-00002-of-00003.safetensors' }, 'wrong.index.json');
    await expectInputError(readShardedSafetensors(wrong), 'shard-mismatch', wrong, new RegExp(`"${a}" is in shard "model-00001`));
    const extra = await writeIndex(folder, { ...map, ghost: 'model-00001-of-00003.safetensors' }, 'ghost.index.json');
    await expectInputError(readShardedSafetensors(extra), 'shard-missing-tensor', extra, /"ghost"/);
    const { [b]: _dropped, ...fewer } = map;
    const missing = await writeIndex(folder, fewer, 'fewer.index.json');
    await expectInputError(readShardedSafetensors(missing), 'shard-extra-tensor', missing, new RegExp(`"${b}", which weight_map does not list`));
    const gone = await writeIndex(folder, { ...map, [a]: 'model-00009-of-00009.safetensors' }, 'gone.index.json');
    await expectInputError(readShardedSafetensors(gone), 'unreadable', join(folder, 'model-00009-of-00009.safetensors'), /ENOENT/);
    const bad = join(folder, 'bad.index.json');
    await writeFile(bad, '{"weight_map": [1]}');
    await expectInputError(readShardedSafetensors(bad), 'index-weight-map-invalid', bad);
    await writeFile(bad, '{"weight_map": ');
    await expectInputError(readShardedSafetensors(bad), 'index-json', bad);
  });
});
