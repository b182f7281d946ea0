/**
 * Seeded mutation fuzzing of .npy and .npz headers: every mutated file must either read
 * successfully (with spans inside their files) or fail with an InputError — never another
 * exception, never a hang.
 */
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { DTYPES, elementCount } from '../../src/formats/dtype.ts';
import { npyTensor, readFlatNpyCheckpoint } from '../../src/formats/npy.ts';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { cleanupScratch } from '../../src/formats/scratch.ts';
import type { StoredTensor } from '../../src/formats/types.ts';

const EXTRA = fileURLToPath(new URL('../../fixtures/npy-extra', import.meta.url));
const NPY_BASES = ['le_f4.npy', 'fortran_3d_be_f8.npy', 'fortran_2d_f4.npy', 'v2_f4.npy', 'v3_i2.npy', 'be_i8.npy', 'scalar_f8.npy', 'le_b1.npy'];
const NPZ_BASES = ['stored.npz', 'compressed.npz'];
const NPY_CASES = 1200;
const NPZ_CASES = 500;
const SEED = Number(process.env.FUZZ_SEED ?? 0x5eed1234);

/** mulberry32: small, fast, good enough to drive mutations reproducibly. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

let tmp: string;
let rand: () => number;
const int = (n: number) => Math.floor(rand() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];

beforeAll(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'npy-fuzz-'));
  rand = rng(SEED);
});
afterAll(async () => {
  await rm(tmp, { recursive: true, force: true });
  cleanupScratch();
});

const DESCRS = ["'<f4'", "'>f8'", "'|u1'", "'<i8'", "'|O'", "'<c8'", "'<U3'", "'f4'", "'<f2'", "'>i2'", "'|b1'", "[('a', '<f4')]", '"<f4"', "'<M8[D]'", "'V4'", '3'];
const FLAGS = ['True', 'False', '0', 'None', "'False'"];
const DIMS = ['0', '1', '2', '3', '4', '5', '7', '100', '2147483648', '1152921504606846976', '-1', '99999999999999999999', '3L', '2.0'];
const CHARS = "'\"(),:{}[]<>|= \nTrueFalse0123456789fOiubL";

function randomShape(): string {
  const r = int(8);
  if (r === 0) return pick(DIMS);
  if (r === 1) return `[${pick(DIMS)}]`;
  const n = int(5);
  const dims = Array.from({ length: n }, () => (rand() < 0.7 ? pick(DIMS.slice(0, 7)) : pick(DIMS)));
  return n === 1 && rand() < 0.8 ? `(${dims[0]},)` : `(${dims.join(', ')})`;
}

function randomDict(): string {
  // Mostly well-formed values, so that mutations also reach the checks behind the parser.
  const flag = rand() < 0.8 ? pick(FLAGS.slice(0, 2)) : pick(FLAGS);
  const entries = [`'descr': ${pick(DESCRS)}`, `'fortran_order': ${flag}`, `'shape': ${randomShape()}`];
  if (rand() < 0.1) entries.splice(int(3), 1);
  if (rand() < 0.1) entries.push(`'extra': ${pick(DIMS)}`);
  for (let i = entries.length - 1; i > 0; i--) {
    const j = int(i + 1);
    [entries[i], entries[j]] = [entries[j], entries[i]];
  }
  return `{${entries.join(', ')}${rand() < 0.5 ? ', ' : ''}}`;
}

/** Replaces the header dict of an .npy, keeping the data; usually with a consistent length field. */
function rewriteHeader(b: Buffer): Buffer {
  const v1 = b[6] === 1;
  const pre = v1 ? 10 : 12;
  const oldLen = v1 ? b.readUInt16LE(8) : b.readUInt32LE(8);
  const data = b.subarray(Math.min(b.length, pre + oldLen));
  let text = randomDict();
  if (rand() < 0.7) text = text.padEnd(Math.min(oldLen, 4096) - 1) + '\n';
  const head = Buffer.from(text, 'latin1');
  const prefix = Buffer.from(b.subarray(0, pre));
  const len = rand() < 0.9 ? head.length : int(70000);
  if (v1) prefix.writeUInt16LE(len & 0xffff, 8);
  else prefix.writeUInt32LE(len, 8);
  return Buffer.concat([prefix, head, data]);
}

function mutateNpy(src: Buffer): Buffer {
  let b: Buffer = Buffer.from(src);
  const rounds = 1 + int(3);
  for (let r = 0; r < rounds; r++) {
    const headerEnd = Math.min(b.length, 140);
    switch (int(7)) {
      case 0: if (headerEnd > 0) b[int(headerEnd)] ^= 1 + int(255); break;
      case 1: if (headerEnd > 10) b[10 + int(headerEnd - 10)] = CHARS.charCodeAt(int(CHARS.length)); break;
      case 2: b = b.subarray(0, int(b.length + 1)); break;
      case 3: if (b.length >= 12) { if (rand() < 0.5) b.writeUInt16LE(int(65536), 8); else b.writeUInt32LE(int(2 ** 32), 8); } break;
      case 4: if (b.length >= 8) { b[6] = int(6); b[7] = int(2); } break;
      case 5: if (b.length >= 12 && b[6] >= 1 && b[6] <= 3) b = rewriteHeader(b); break;
      default: {
        const at = int(headerEnd + 1);
        b = rand() < 0.5
          ? Buffer.concat([b.subarray(0, at), Buffer.from(CHARS[int(CHARS.length)].repeat(1 + int(4))), b.subarray(at)])
          : Buffer.concat([b.subarray(0, at), b.subarray(Math.min(b.length, at + 1 + int(4)))]);
      }
    }
  }
  return b;
}

function mutateNpz(src: Buffer): Buffer {
  let b: Buffer = Buffer.from(src);
  const eocd = b.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const cd = b.readUInt32LE(eocd + 16);
  const rounds = 1 + int(3);
  for (let r = 0; r < rounds; r++) {
    if (b.length < 4) break;
    switch (int(6)) {
      case 0: b[int(Math.min(b.length, 400))] ^= 1 + int(255); break; // first local header + npy header
      case 1: { // a central-directory or end-record byte
        const lo = Math.min(cd, b.length - 1);
        b[lo + int(b.length - lo)] ^= 1 + int(255);
        break;
      }
      case 2: { // a whole 32-bit field somewhere in the central directory
        const lo = Math.min(cd, b.length - 4);
        b.writeUInt32LE(pick([0, 1, 100, 0xffffffff, int(2 ** 32), int(b.length)]), lo + int(b.length - 4 - lo + 1));
        break;
      }
      case 3: b = b.subarray(0, int(b.length + 1)); break;
      case 4: b[int(b.length)] ^= 1 + int(255); break;
      default: { // an npy header byte of a random member (found by its magic)
        const hits: number[] = [];
        for (let i = b.indexOf('\x93NUMPY', 0, 'latin1'); i >= 0; i = b.indexOf('\x93NUMPY', i + 1, 'latin1')) hits.push(i);
        if (hits.length) b[pick(hits) + int(128)] = CHARS.charCodeAt(int(CHARS.length));
      }
    }
  }
  return b;
}

async function checkSpans(tensors: StoredTensor[]): Promise<void> {
  for (const t of tensors) {
    expect(t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)).toBe(true);
    const total = t.spans.reduce((s, x) => s + x.length, 0);
    expect(total).toBe(elementCount(t.shape) * DTYPES[t.encoding.dtype].bytes);
    for (const s of t.spans) {
      const size = (await stat(s.path)).size;
      expect(s.offset).toBeGreaterThanOrEqual(0);
      expect(s.offset + s.length).toBeLessThanOrEqual(size);
    }
  }
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`hang: ${what}`)), 5000);
  });
  return Promise.race([p, hang]).finally(() => clearTimeout(timer));
}

it(`survives ${NPY_CASES + NPZ_CASES} seeded header mutations with InputErrors only`, async () => {
  const rules = new Map<string, number>();
  let ok = 0;
  const bases = new Map<string, Buffer>();
  for (const f of [...NPY_BASES, ...NPZ_BASES]) bases.set(f, await readFile(join(EXTRA, f)));

  for (let i = 0; i < NPY_CASES + NPZ_CASES; i++) {
    const isNpz = i >= NPY_CASES;
    const base = isNpz ? pick(NPZ_BASES) : pick(NPY_BASES);
    const bytes = isNpz ? mutateNpz(bases.get(base)!) : mutateNpy(bases.get(base)!);
    const path = join(tmp, isNpz ? `case-${i}.npz` : `case-${i}.npy`);
    await writeFile(path, bytes);
    const what = `case ${i} (${base}, seed ${SEED})`;
    try {
      const tensors = isNpz
        ? (await withTimeout(readNpzCheckpoint(path), what)).tensors
        : rand() < 0.8
          ? [await withTimeout(npyTensor(path, 'x'), what)]
          : (await withTimeout(readFlatNpyCheckpoint(path, [['a', [1]], ['b', [2]]]), what)).tensors;
      await checkSpans(tensors);
      ok++;
    } catch (e) {
      if (!(e instanceof InputError)) throw new Error(`${what}: ${e instanceof Error ? e.stack : String(e)}`);
      expect(e.message.startsWith(`${path}: `), e.message).toBe(true);
      expect(e.message).not.toContain('\n');
      rules.set(e.rule, (rules.get(e.rule) ?? 0) + 1);
    }
    await rm(path);
  }
  const summary = [...rules.entries()].sort(([a], [b]) => a.localeCompare(b));
  console.log(`fuzz: ${ok} read fine; InputError rules hit:`, Object.fromEntries(summary));
  expect(ok).toBeGreaterThan(0);
  for (const rule of [
    'npy-magic', 'npy-version', 'npy-header', 'npy-header-length', 'npy-truncated', 'npy-shape',
    'npy-dtype-unsupported', 'npy-object-dtype', 'npz-corrupt', 'npz-member-corrupt', 'npz-crc',
  ]) {
    expect(rules.has(rule), `rule ${rule} was never hit`).toBe(true);
  }
});
