import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { absCorrelation, condensedIndex, rowDistances, rowDistancesBlock, splitRowsByPairs } from '../../src/core/correlation.ts';
import { fclusterMaxclust } from '../../src/core/fcluster.ts';
import { linkageComplete } from '../../src/core/linkage.ts';

interface GoldenCase {
  name: string;
  K: number;
  T?: number;
  X_f32_b64?: string;
  A?: number[];
  d?: number[];
  Z_ids: number[];
  Z_height: number[];
  Z_size: number[];
  maxclust: Record<string, number[]>;
}

function load(file: string): GoldenCase[] {
  const path = fileURLToPath(new URL(`../../fixtures/scipy/${file}`, import.meta.url));
  return (JSON.parse(readFileSync(path, 'utf8')) as { cases: GoldenCase[] }).cases;
}

function decodeX(c: GoldenCase): Float64Array {
  const bytes = Buffer.from(c.X_f32_b64!, 'base64');
  const f32 = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return Float64Array.from(f32);
}

function expectLinkageMatches(Z: Float64Array, c: GoldenCase): void {
  const n = c.K;
  expect(Z.length).toBe((n - 1) * 4);
  for (let r = 0; r < n - 1; r++) {
    expect([Z[r * 4], Z[r * 4 + 1]], `merge ${r} pair`).toEqual([c.Z_ids[2 * r], c.Z_ids[2 * r + 1]]);
    expect(Math.abs(Z[r * 4 + 2] - c.Z_height[r]), `merge ${r} height`).toBeLessThanOrEqual(1e-9);
    expect(Z[r * 4 + 3], `merge ${r} size`).toBe(c.Z_size[r]);
  }
}

function expectLabelsMatch(Z: Float64Array, c: GoldenCase): void {
  for (const [M, labels] of Object.entries(c.maxclust)) {
    expect(Array.from(fclusterMaxclust(Z, c.K, Number(M))), `${c.name} maxclust ${M}`).toEqual(labels);
  }
}

/** A partition as sorted member lists, independent of label numbering. */
function canonical(labels: ArrayLike<number>): number[][] {
  const groups = new Map<number, number[]>();
  Array.from(labels).forEach((l, i) => groups.set(l, [...(groups.get(l) ?? []), i]));
  return [...groups.values()].sort((a, b) => a[0] - b[0]);
}

const planted = load('planted-small.json');
const big = load('planted-K1000.json');
const ties = load('ties.json');

describe('absCorrelation and rowDistances vs numpy/scipy', () => {
  const c = planted.find((x) => x.name === 'planted-K50')!;
  const A = absCorrelation(decodeX(c), c.K, c.T!);
  it('matches |corrcoef| with NaN → 0 to 1e-12', () => {
    let worst = 0;
    for (let p = 0; p < A.length; p++) worst = Math.max(worst, Math.abs(A[p] - c.A![p]));
    expect(worst).toBeLessThan(1e-12);
  });
  it('matches pdist(A) to 1e-12, in condensed order', () => {
    const d = rowDistances(A, c.K);
    expect(d.length).toBe(c.d!.length);
    let worst = 0;
    for (let p = 0; p < d.length; p++) worst = Math.max(worst, Math.abs(d[p] - c.d![p]));
    expect(worst).toBeLessThan(1e-12);
  });
  it('gives the same result when split into row blocks', () => {
    const whole = rowDistances(A, c.K);
    const parts = new Float64Array(whole.length).fill(Number.NaN);
    const bounds = splitRowsByPairs(c.K, 3);
    expect(bounds[0]).toBe(0);
    expect(bounds[3]).toBe(c.K);
    for (let p = 0; p < 3; p++) rowDistancesBlock(A, c.K, bounds[p], bounds[p + 1], parts);
    expect(Array.from(parts)).toEqual(Array.from(whole));
    expect(condensedIndex(c.K, 3, 1)).toBe(condensedIndex(c.K, 1, 3));
  });
});

describe('linkageComplete + fclusterMaxclust vs scipy', () => {
  for (const c of [...planted, ...big]) {
    it(`${c.name}: from the data matrix through our |corr| and pdist`, () => {
      const A = absCorrelation(decodeX(c), c.K, c.T!);
      const Z = linkageComplete(rowDistances(A, c.K), c.K);
      expectLinkageMatches(Z, c);
      expectLabelsMatch(Z, c);
    });
  }
  for (const c of ties) {
    if (c.d) {
      it(`${c.name}: from scipy's exact distances (ties)`, () => {
        const d = Float64Array.from(c.d!);
        const Z = linkageComplete(d, c.K);
        expect(Array.from(d)).toEqual(c.d); // input untouched without overwrite
        expectLinkageMatches(Z, c);
        expectLabelsMatch(Z, c);
      });
    }
    if (c.X_f32_b64) {
      // numpy's corrcoef is not bitwise symmetric for duplicated rows (its distances between
      // duplicates are 0 or ~1e-16), ours gives exact zeros, so the order of the ≈0-height merges
      // cannot match pair for pair. Heights and the flat partitions must.
      it(`${c.name}: from the data matrix (duplicate and constant rows): heights and partitions`, () => {
        const A = absCorrelation(decodeX(c), c.K, c.T!);
        const d = rowDistances(A, c.K);
        for (let i = 0; i < c.K; i++) {
          for (let j = i + 1; j < c.K; j++) {
            const p = condensedIndex(c.K, i, j);
            if (c.d![p] === 0) expect(d[p], `duplicates ${i}, ${j}`).toBe(0);
          }
        }
        const Z = linkageComplete(d, c.K, { overwrite: true });
        for (let r = 0; r < c.K - 1; r++) expect(Math.abs(Z[r * 4 + 2] - c.Z_height[r])).toBeLessThanOrEqual(1e-9);
        for (const [M, labels] of Object.entries(c.maxclust)) {
          expect(canonical(fclusterMaxclust(Z, c.K, Number(M))), `maxclust ${M}`).toEqual(canonical(labels));
        }
      });
    }
  }

  it('gives fewer clusters than asked on tied heights (4 points on a line, M = 3 → 2)', () => {
    const d = Float64Array.from([1, 2, 3, 1, 2, 1]);
    const labels = fclusterMaxclust(linkageComplete(d, 4), 4, 3);
    expect(Array.from(labels)).toEqual([1, 1, 2, 2]);
  });

  it('rejects non-finite distances and wrong lengths', () => {
    expect(() => linkageComplete(Float64Array.from([1, Number.NaN, 1]), 3)).toThrow(RangeError);
    expect(() => linkageComplete(Float64Array.from([1, 1]), 3)).toThrow(RangeError);
  });
});
