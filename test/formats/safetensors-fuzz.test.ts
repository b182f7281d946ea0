/**
 * Randomized robustness test of the safetensors header reader: seeded mutations of valid
 * files must either read with consistent results or fail with InputError, never anything
 * else, and never hang.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InputError } from '../../src/errors.ts';
import { DTYPES, elementCount, type DType } from '../../src/formats/dtype.ts';
import { planSafetensors, readSafetensorsHeader } from '../../src/formats/safetensors.ts';

const SEED = 0x5afe7e45;
const CASES = 3000;
/**
 * A hang guard, not a speed check (no test asserts on wall-clock time): a case still running
 * after this long is a reader stuck on its input. Generous so a loaded machine never trips it.
 */
const CASE_TIME_LIMIT_MS = 30_000;

/** mulberry32: small, fast, good enough to drive mutations reproducibly. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cmd-safetensors-fuzz-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function buildFile(tensors: { name: string; dtype: DType; shape: number[] }[], metadata?: Record<string, string>): Buffer {
  const plan = planSafetensors(tensors, metadata);
  const data = Buffer.alloc(plan.totalBytes - plan.header.length);
  for (let i = 0; i < data.length; i++) data[i] = (i * 37 + 11) & 0xff;
  return Buffer.concat([plan.header, data]);
}

function split(file: Buffer): { n: number; json: string; data: Buffer } {
  const n = Number(file.readBigUInt64LE(0));
  return { n, json: file.subarray(8, 8 + n).toString(), data: file.subarray(8 + n) };
}

function join8(json: string | Buffer, data: Buffer, prefix?: bigint): Buffer {
  const h = typeof json === 'string' ? Buffer.from(json) : json;
  const p = Buffer.alloc(8);
  p.writeBigUInt64LE(prefix ?? BigInt(h.length));
  return Buffer.concat([p, h, data]);
}

type Rand = () => number;
const pick = <T,>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
const int = (r: Rand, lo: number, hi: number) => lo + Math.floor(r() * (hi - lo + 1));

const DTYPE_STRINGS = [...Object.keys(DTYPES), 'F8_E4M3FNUZ', 'F8_E5M2FNUZ', 'F8_E8M0', 'F4', 'F6_E2M3', 'F6_E3M2', 'C64', 'f32', 'F33', '', 'FLOAT', 'I128'];
const WEIRD_NUMBERS: unknown[] = [-1, -8, 0, 1, 3, 7, 8, 1.5, 2 ** 53, 2 ** 60, 1e300, '8', null, true, [], {}];

/** Semantic edits on the parsed header, re-serialized with a correct length prefix. */
function editJson(r: Rand, h: Record<string, any>): void {
  const names = Object.keys(h).filter((k) => k !== '__metadata__');
  const name = names.length ? pick(r, names) : 'x';
  const e = h[name];
  const op = int(r, 0, 15);
  if (typeof e !== 'object' || e === null) {
    h[name] = { dtype: 'F32', shape: [1], data_offsets: [0, 4] };
    return;
  }
  switch (op) {
    case 0: e.dtype = pick(r, DTYPE_STRINGS); break;
    case 1: if (Array.isArray(e.shape) && e.shape.length) e.shape[int(r, 0, e.shape.length - 1)] = pick(r, WEIRD_NUMBERS); else e.shape = [pick(r, WEIRD_NUMBERS)]; break;
    case 2: if (Array.isArray(e.shape) && e.shape.length) e.shape[int(r, 0, e.shape.length - 1)] += pick(r, [-1, 1, 2]); break;
    case 3: if (Array.isArray(e.data_offsets)) e.data_offsets[int(r, 0, 1)] += pick(r, [-8, -1, 1, 4, 8]); break;
    case 4: if (Array.isArray(e.data_offsets)) e.data_offsets[int(r, 0, 1)] = pick(r, WEIRD_NUMBERS); break;
    case 5: e.data_offsets = pick(r, [[0], [0, 1, 2], 'x', null, [8, 0]]); break;
    case 6: delete e[pick(r, ['dtype', 'shape', 'data_offsets'])]; break;
    case 7: h.__metadata__ = pick(r, [{ epoch: 1 }, { a: 'b', c: { d: 'e' } }, ['x'], 'meta', null, { ok: 'yes' }, { n: [1] }]); break;
    case 8: h[name] = pick(r, [null, 5, 'str', [1, 2], {}]); break;
    case 9: { // swap the offsets of two tensors
      const other = h[pick(r, names)];
      if (other && typeof other === 'object') [e.data_offsets, other.data_offsets] = [other.data_offsets, e.data_offsets];
      break;
    }
    case 10: h[pick(r, ['', 'new', '__metadata__', name + '_copy'])] = structuredClone(e); break;
    case 11: delete h[name]; break;
    case 12: e.shape = pick(r, [[], [0], [2 ** 40, 2 ** 40], [-1], 'shape', [1, 2, 3, 4]]); break;
    case 13: e.extra = pick(r, WEIRD_NUMBERS); break; // unknown keys are allowed
    case 14: if (Array.isArray(e.data_offsets)) e.data_offsets = [e.data_offsets[0] + 8, e.data_offsets[1] + 8]; break;
    default: if (Array.isArray(e.shape)) e.shape = [...e.shape].reverse(); break;
  }
}

function mutate(r: Rand, base: Buffer): { bytes: Buffer; ops: string[] } {
  let bytes: Buffer = Buffer.from(base);
  const ops: string[] = [];
  const count = int(r, 1, 3);
  for (let k = 0; k < count; k++) {
    const op = int(r, 0, 9);
    ops.push(String(op));
    if (bytes.length < 8) {
      bytes = Buffer.concat([bytes, Buffer.alloc(int(r, 0, 12))]);
      continue;
    }
    const n = Number(bytes.readBigUInt64LE(0));
    const jsonEnd = Math.min(bytes.length, 8 + Math.min(n, bytes.length));
    switch (op) {
      case 0: bytes[int(r, 0, 7)] ^= 1 << int(r, 0, 7); break; // flip a bit of the length
      case 1: { // set the length to an edge value or nudge it
        const nudged = bytes.readBigUInt64LE(0) + BigInt(int(r, -9, 9));
        const clamped = nudged < 0n ? 0n : nudged >= 2n ** 64n ? 2n ** 64n - 1n : nudged;
        bytes.writeBigUInt64LE(pick(r, [0n, 1n, 2n ** 64n - 1n, 100_000_001n, 100_000_000n, clamped, BigInt(bytes.length)]), 0);
        break;
      }
      case 2: case 3: { // flip, insert or delete a byte inside the JSON, maybe fixing the prefix
        if (jsonEnd <= 8) break;
        const at = int(r, 8, jsonEnd - 1);
        const kind = int(r, 0, 2);
        if (kind === 0) bytes[at] = int(r, 0, 255);
        else if (kind === 1) bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([pick(r, [0x20, 0x7b, 0x7d, 0x22, 0x2c, 0x30, 0x31, 0xc3, 0xff, int(r, 0, 255)])]), bytes.subarray(at)]);
        else bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)]);
        if (op === 3 && kind !== 0 && n > 0 && n < 2 ** 40) bytes.writeBigUInt64LE(BigInt(n + (kind === 1 ? 1 : -1)), 0);
        break;
      }
      case 4: case 5: case 6: { // semantic JSON edit with a consistent prefix
        if (8 + n > bytes.length) break;
        const { json, data } = split(bytes);
        let h: unknown;
        try {
          h = JSON.parse(json);
        } catch {
          break;
        }
        if (typeof h !== 'object' || h === null || Array.isArray(h)) break;
        editJson(r, h as Record<string, any>);
        bytes = join8(JSON.stringify(h) + ' '.repeat(int(r, 0, 7)), data);
        break;
      }
      case 7: { // rewrite one number in the JSON text
        const text = bytes.subarray(8, jsonEnd).toString('latin1');
        const nums = [...text.matchAll(/\d+/g)];
        if (!nums.length) break;
        const m = pick(r, nums);
        const repl = String(pick(r, [0, 1, Number(m[0]) + 1, Number(m[0]) * 2, '-' + m[0], m[0] + '.5', '1e3', '99999999999999999999']));
        const edited = text.slice(0, m.index) + repl + text.slice(m.index! + m[0].length);
        bytes = join8(Buffer.from(edited, 'latin1'), bytes.subarray(jsonEnd));
        break;
      }
      case 8: bytes = bytes.subarray(0, int(r, 0, bytes.length)); break; // truncate
      default: bytes = Buffer.concat([bytes, Buffer.alloc(int(r, 1, 64), int(r, 0, 255))]); break; // extend
    }
  }
  return { bytes, ops };
}

function checkConsistent(file: Buffer, path: string, c: Awaited<ReturnType<typeof readSafetensorsHeader>>): void {
  const dataStart = 8 + Number(file.readBigUInt64LE(0));
  let at = dataStart;
  for (const t of c.tensors) {
    expect(Object.hasOwn(DTYPES, t.dtype)).toBe(true);
    expect(t.spans).toHaveLength(1);
    const s = t.spans[0];
    expect(s.path).toBe(path);
    expect(s.offset).toBe(at);
    expect(s.length).toBe(elementCount(t.shape) * DTYPES[t.dtype].bytes);
    expect(s.offset + s.length).toBeLessThanOrEqual(file.length);
    at += s.length;
  }
  expect(at).toBe(file.length);
  for (const v of Object.values(c.metadata)) expect(typeof v).toBe('string');
}

it(`survives ${CASES} seeded header mutations with either a valid read or an InputError`, async () => {
  const fixture = await readFile(join(import.meta.dirname, '../../fixtures/resnet20-bn-safetensors/epoch_001.safetensors'));
  const bases = [
    buildFile([
      { name: 'a', dtype: 'F32', shape: [2, 3] },
      { name: 'n', dtype: 'I64', shape: [] },
      { name: 'b', dtype: 'U8', shape: [4] },
    ], { epoch: '1' }),
    buildFile((Object.keys(DTYPES) as DType[]).map((dtype, i) => ({ name: `t${i}.${dtype}`, dtype, shape: [i % 3 + 1, 2] })), { format: 'pt', note: 'ünï' }),
    buildFile([{ name: 'empty', dtype: 'F16', shape: [0, 4] }, { name: 's', dtype: 'BF16', shape: [] }, { name: 'v', dtype: 'F64', shape: [3] }]),
    fixture,
  ];
  const r = prng(SEED);
  const rules = new Map<string, number>();
  let ok = 0;
  const started = Date.now();
  for (let i = 0; i < CASES; i++) {
    const base = i % 10 === 9 ? bases[3] : bases[i % 3];
    const { bytes, ops } = mutate(r, base);
    const path = join(dir, `case-${i % 8}.safetensors`);
    await writeFile(path, bytes);
    let timer: NodeJS.Timeout | undefined;
    const outcome = await Promise.race([
      readSafetensorsHeader(path).then((c) => ({ c }), (err: unknown) => ({ err })),
      new Promise<{ hang: true }>((resolve) => { timer = setTimeout(() => resolve({ hang: true }), CASE_TIME_LIMIT_MS); }),
    ]);
    clearTimeout(timer);
    const label = `case ${i} (seed ${SEED}, ops ${ops.join(',')})`;
    expect('hang' in outcome, `${label} was still reading after ${CASE_TIME_LIMIT_MS} ms`).toBe(false);
    if ('c' in outcome) {
      ok++;
      checkConsistent(bytes, path, outcome.c);
    } else if ('err' in outcome) {
      const err = outcome.err;
      if (!(err instanceof InputError)) throw new Error(`${label}: expected InputError, got ${String(err)}`, { cause: err });
      expect(err.rule, label).toMatch(/^[a-z0-9-]+$/);
      expect(err.message.startsWith(`${path}: `), label).toBe(true);
      expect(err.message, label).not.toMatch(/\n/);
      rules.set(err.rule, (rules.get(err.rule) ?? 0) + 1);
    }
  }
  const tally = [...rules].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(' ');
  console.log(`safetensors fuzz: ${CASES} cases in ${Date.now() - started} ms, ${ok} valid reads, ${rules.size} distinct rules: ${tally}`);
  expect(ok).toBeGreaterThan(0);
  expect(rules.size).toBeGreaterThanOrEqual(15);
});
