import { describe, expect, it } from 'vitest';
import { createRng, sampleDistinct } from '../../src/core/rng.ts';

describe('createRng', () => {
  it('is deterministic per seed and differs between seeds', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const sa = Array.from({ length: 20 }, () => a.nextUint32());
    const sb = Array.from({ length: 20 }, () => b.nextUint32());
    const sc = Array.from({ length: 20 }, () => c.nextUint32());
    expect(sa).toEqual(sb);
    expect(sa).not.toEqual(sc);
    expect(Array.from({ length: 5 }, () => createRng(1).nextUint32())).not.toEqual(
      Array.from({ length: 5 }, () => createRng(2 ** 32 + 1).nextUint32()),
    );
  });

  it('produces uint32, floats in [0,1) and ints in [0,n)', () => {
    const r = createRng(7);
    for (let k = 0; k < 2000; k++) {
      const u = r.nextUint32();
      expect(Number.isInteger(u) && u >= 0 && u < 2 ** 32).toBe(true);
      const f = r.nextFloat();
      expect(f >= 0 && f < 1).toBe(true);
      const i = r.nextInt(7);
      expect(Number.isInteger(i) && i >= 0 && i < 7).toBe(true);
      const big = r.nextInt(3e12);
      expect(Number.isInteger(big) && big >= 0 && big < 3e12).toBe(true);
    }
  });

  it('nextInt is roughly uniform (chi-square over 10 bins)', () => {
    const r = createRng(123);
    const bins = new Array(10).fill(0);
    const draws = 100_000;
    for (let k = 0; k < draws; k++) bins[r.nextInt(10)]++;
    const expected = draws / 10;
    const chi2 = bins.reduce((s, o) => s + (o - expected) ** 2 / expected, 0);
    expect(chi2).toBeLessThan(30); // 9 dof, p ≈ 4e-4
  });

  it('rejects bad arguments', () => {
    expect(() => createRng(Number.NaN)).toThrow(RangeError);
    expect(() => createRng(1).nextInt(0)).toThrow(RangeError);
    expect(() => createRng(1).nextInt(2.5)).toThrow(RangeError);
  });
});

describe('sampleDistinct', () => {
  it('draws k distinct values inside the range, deterministically', () => {
    const s1 = sampleDistinct(createRng(5), 100, 1_000_000_100, 1000);
    const s2 = sampleDistinct(createRng(5), 100, 1_000_000_100, 1000);
    expect(s1).toEqual(s2);
    expect(new Set(s1).size).toBe(1000);
    for (const v of s1) expect(v >= 100 && v < 1_000_000_100).toBe(true);
  });

  it('draws the whole range as a permutation when k equals its size', () => {
    const s = sampleDistinct(createRng(9), 10, 30, 20);
    expect([...s].sort((a, b) => a - b)).toEqual(Array.from({ length: 20 }, (_, i) => 10 + i));
    expect(s).not.toEqual([...s].sort((a, b) => a - b)); // draw order, not sorted
  });

  it('is uniform over positions for a small range', () => {
    const counts = new Array(5).fill(0);
    for (let seed = 0; seed < 20_000; seed++) counts[sampleDistinct(createRng(seed), 0, 5, 2)[1]]++;
    for (const c of counts) expect(Math.abs(c - 4000)).toBeLessThan(300);
  });

  it('refuses more values than the range holds', () => {
    expect(() => sampleDistinct(createRng(1), 0, 3, 4)).toThrow(RangeError);
  });
});
