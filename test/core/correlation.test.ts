import { afterEach, describe, expect, it } from 'vitest';
import {
  absCorrelation,
  activeDistanceKernel,
  condensedIndex,
  condensedLength,
  rowDistances,
  rowDistancesBlock,
  splitRowsByPairs,
} from '../../src/core/correlation.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { xorshift32 } from '../helpers/random.ts';

const rng = xorshift32;

/** A random symmetric K × K matrix in [0, 1] with unit diagonal, like |corr|. */
function randomMatrix(K: number, seed: number): Float64Array {
  const r = rng(seed);
  const A = new Float64Array(K * K);
  for (let i = 0; i < K; i++) {
    A[i * K + i] = 1;
    for (let j = i + 1; j < K; j++) A[i * K + j] = A[j * K + i] = r();
  }
  return A;
}

/**
 * A |corr| matrix full of ties: trajectories copied from a few originals (duplicated rows), a
 * few constant ones (zero rows and columns), and sign flips (|corr| = 1 exactly or nearly).
 */
function tieMatrix(K: number, T: number, seed: number): Float64Array {
  const r = rng(seed);
  const originals = 5;
  const X = new Float64Array(K * T);
  for (let i = 0; i < K; i++) {
    const kind = i % 7;
    for (let t = 0; t < T; t++) {
      if (i < originals) X[i * T + t] = r() - 0.5;
      else if (kind === 0) X[i * T + t] = 3; // constant
      else if (kind === 1) X[i * T + t] = -X[(i % originals) * T + t]; // sign flip
      else X[i * T + t] = X[(i % originals) * T + t]; // duplicate
    }
  }
  return absCorrelation(X, K, T);
}

/** The definition, one pair at a time: √Σ_l (a_il − a_jl)², l in increasing order. */
function reference(A: Float64Array, K: number): Float64Array {
  const d = new Float64Array(condensedLength(K));
  for (let i = 0; i < K; i++) {
    for (let j = i + 1; j < K; j++) {
      let s = 0;
      for (let l = 0; l < K; l++) {
        const x = A[i * K + l] - A[j * K + l];
        s += x * x;
      }
      d[condensedIndex(K, i, j)] = Math.sqrt(s);
    }
  }
  return d;
}

function withKernel(kernel: 'js' | 'auto', A: Float64Array, K: number): Float64Array {
  setKernel(kernel);
  return rowDistances(A, K);
}

/** Index of the first slot where a and b differ bitwise (NaN = NaN), or -1. */
function firstDifference(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return -2;
  for (let p = 0; p < a.length; p++) if (!Object.is(a[p], b[p])) return p;
  return -1;
}

afterEach(() => {
  setKernel('auto');
});

describe('distance kernels', () => {
  it('runs WebAssembly SIMD by default on this engine, JavaScript when asked', () => {
    expect(setKernel('auto')).toBe('wasm');
    expect(setKernel('js')).toBe('js');
    expect(activeDistanceKernel()).toBe('js');
    expect(setKernel('wasm')).toBe('wasm');
  });

  // Sizes around the kernel's group (8 rows), pair (2 rows) and column chunk (256) boundaries;
  // 600 spans three i tiles (256 rows) and two j tiles (512 rows).
  for (const K of [2, 3, 5, 8, 9, 15, 16, 17, 31, 64, 255, 257, 300, 600]) {
    it(`random K = ${K}: wasm, JavaScript and the definition agree bitwise`, () => {
      const A = randomMatrix(K, 1000 + K);
      const js = withKernel('js', A, K);
      const wasm = withKernel('auto', A, K);
      expect(firstDifference(wasm, js)).toBe(-1);
      if (K <= 300) expect(firstDifference(wasm, reference(A, K))).toBe(-1);
      expect(wasm.every((v) => Number.isFinite(v) && v > 0)).toBe(true);
    });
  }

  for (const K of [7, 40, 129, 261]) {
    it(`tie-heavy K = ${K}: bitwise equal, exact zeros between duplicated rows`, () => {
      const A = tieMatrix(K, 12, K);
      const js = withKernel('js', A, K);
      const wasm = withKernel('auto', A, K);
      expect(firstDifference(wasm, js)).toBe(-1);
      expect(firstDifference(wasm, reference(A, K))).toBe(-1);
      let zeros = 0;
      for (let i = 0; i < K; i++) {
        for (let j = i + 1; j < K; j++) {
          let same = true;
          for (let l = 0; l < K && same; l++) same = A[i * K + l] === A[j * K + l];
          const v = wasm[condensedIndex(K, i, j)];
          if (same) {
            expect(v, `rows ${i}, ${j}`).toBe(0);
            zeros++;
          } else {
            expect(v, `rows ${i}, ${j}`).toBeGreaterThan(0);
          }
        }
      }
      expect(zeros).toBeGreaterThan(K < 40 ? 1 : K); // the matrix really is tie-heavy
    });
  }

  it('leaves +0 (not −0) and handles an all-zero matrix', () => {
    const K = 11;
    const wasm = withKernel('auto', new Float64Array(K * K), K);
    expect(wasm.every((v) => Object.is(v, 0))).toBe(true);
  });
});

describe('rowDistancesBlock row ranges', () => {
  for (const K of [37, 300]) {
    it(`K = ${K}: blocks from splitRowsByPairs fill a shared vector exactly like the whole`, () => {
      const A = randomMatrix(K, 7 * K);
      const whole = withKernel('js', A, K);
      setKernel('auto');
      const out = new Float64Array(new SharedArrayBuffer(condensedLength(K) * 8)).fill(Number.NaN);
      const bounds = splitRowsByPairs(K, 5);
      for (let p = 0; p < 5; p++) rowDistancesBlock(A, K, bounds[p], bounds[p + 1], out);
      expect(firstDifference(out, whole)).toBe(-1);
    });
  }

  it('writes exactly the pairs (i, j > i) of its rows and nothing else', () => {
    const K = 45;
    const A = randomMatrix(K, 99);
    const whole = withKernel('js', A, K);
    for (const [i0, i1] of [
      [0, 1],
      [3, 12],
      [9, 10],
      [20, 45],
      [44, 45],
      [5, 5],
    ]) {
      for (const kernel of ['js', 'auto'] as const) {
        setKernel(kernel);
        const out = new Float64Array(condensedLength(K)).fill(Number.NaN);
        rowDistancesBlock(A, K, i0, i1, out);
        for (let i = 0; i < K; i++) {
          for (let j = i + 1; j < K; j++) {
            const p = condensedIndex(K, i, j);
            if (i >= i0 && i < i1) expect(Object.is(out[p], whole[p]), `${kernel} [${i0}, ${i1}) pair ${i}, ${j}`).toBe(true);
            else expect(out[p], `${kernel} [${i0}, ${i1}) pair ${i}, ${j}`).toBeNaN();
          }
        }
      }
    }
  });

  it('rejects bad shapes and ranges', () => {
    const A = randomMatrix(6, 1);
    const out = new Float64Array(condensedLength(6));
    expect(() => rowDistancesBlock(A, 5, 0, 5, out)).toThrow(RangeError);
    expect(() => rowDistancesBlock(A, 6, 0, 6, out.subarray(1))).toThrow(RangeError);
    expect(() => rowDistancesBlock(A, 6, 4, 3, out)).toThrow(RangeError);
    expect(() => rowDistancesBlock(A, 6, 0, 7, out)).toThrow(RangeError);
  });
});

describe('absCorrelation into a caller-supplied array', () => {
  it('fills a SharedArrayBuffer-backed array exactly like the returned one, stale values cleared', () => {
    const K = 30;
    const T = 9;
    const r = rng(5);
    const X = new Float64Array(K * T).map(() => r());
    for (let t = 0; t < T; t++) X[4 * T + t] = 2; // a constant row: zeros in A
    const plain = absCorrelation(X, K, T);
    const shared = new Float64Array(new SharedArrayBuffer(K * K * 8)).fill(7);
    const A = absCorrelation(X, K, T, shared);
    expect(A).toBe(shared);
    expect(firstDifference(A, plain)).toBe(-1);
    expect(A[4 * K + 4]).toBe(0);
    expect(() => absCorrelation(X, K, T, new Float64Array(K * K - 1))).toThrow(RangeError);
  });
});
