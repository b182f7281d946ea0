import { Matrix, SingularValueDecomposition } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import {
  accumulateBaselines,
  accumulateGram,
  accumulateSmoothing,
  createSmoothing,
  createBaselineAccumulators,
  createGram,
  finalizeBaselines,
  finalizeDmd,
  finalizePca,
  finalizeSmoothing,
  isometricSnapshots,
  mergeBaselineAccumulators,
  rawGram,
  type BaselineAccumulators,
  type GramAccumulator,
} from '../../src/baselines/index.ts';
import { cmdModelBytes } from '../../src/baselines/storage.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { symmetricEigen } from '../../src/baselines/pca.ts';
import { errorSeries } from '../../src/baselines/series.ts';
import { xorshift32 } from '../helpers/random.ts';

// ---------------------------------------------------------------- synthetic trajectories

/** Uniform in [-0.5, 0.5); deterministic per seed. */
function rng(seed: number): () => number {
  const u = xorshift32(seed);
  return () => u() - 0.5;
}

interface Trajectory {
  N: number;
  T: number;
  /** Checkpoint-major: values[t·N + i]. */
  values: Float32Array | Float64Array;
}

/**
 * Parameters driven by a few smooth latent curves (like training dynamics) plus per-parameter
 * noise; `centre`/`spread` set the per-parameter means, `scale` the size of the motion.
 */
function trajectory(N: number, T: number, seed: number, opts: { centre?: number; spread?: number; scale?: number; noise?: number; f32?: boolean } = {}): Trajectory {
  const { centre = 0, spread = 1, scale = 1, noise = 0.05, f32 = false } = opts;
  const r = rng(seed);
  const L = 3;
  const curves: number[][] = [];
  for (let l = 0; l < L; l++) {
    const rate = 0.05 + 0.3 * (r() + 0.5);
    const freq = 0.2 + r();
    curves.push(Array.from({ length: T }, (_, t) => (l === 0 ? 1 - Math.exp(-rate * t) : l === 1 ? Math.sin(freq * t) * Math.exp(-0.02 * t) : t / T)));
  }
  const values = f32 ? new Float32Array(N * T) : new Float64Array(N * T);
  for (let i = 0; i < N; i++) {
    const mean = centre + spread * r();
    const w = Array.from({ length: L }, () => r());
    for (let t = 0; t < T; t++) {
      let v = 0;
      for (let l = 0; l < L; l++) v += w[l] * curves[l][t];
      values[t * N + i] = mean + scale * (v + noise * r());
    }
  }
  return { N, T, values };
}

/** Copies parameters [a, b) into a chunk laid out values[t·n + i]. */
function chunkOf(tr: Trajectory, a: number, b: number): Float32Array | Float64Array {
  const n = b - a;
  const out = tr.values instanceof Float32Array ? new Float32Array(n * tr.T) : new Float64Array(n * tr.T);
  for (let t = 0; t < tr.T; t++) for (let i = 0; i < n; i++) out[t * n + i] = tr.values[t * tr.N + a + i];
  return out;
}

/** Splits [0, N) at the given cut points, accumulates each chunk separately and merges in order. */
function accumulateSplit(tr: Trajectory, cuts: number[], options = {}): BaselineAccumulators {
  const total = createBaselineAccumulators(tr.T, options);
  const bounds = [0, ...cuts, tr.N];
  for (let k = 0; k + 1 < bounds.length; k++) {
    const part = createBaselineAccumulators(tr.T, options);
    accumulateBaselines(chunkOf(tr, bounds[k], bounds[k + 1]), bounds[k + 1] - bounds[k], tr.T, part);
    mergeBaselineAccumulators(total, part);
  }
  return total;
}

function gramOf(tr: Trajectory): GramAccumulator {
  const g = createGram(tr.T);
  accumulateGram(tr.values, tr.N, tr.T, g);
  return g;
}

// ---------------------------------------------------------------- dense references

/** N × T matrix (parameters are rows) in float64. */
function dense(tr: Trajectory): Matrix {
  const m = new Matrix(tr.N, tr.T);
  for (let t = 0; t < tr.T; t++) for (let i = 0; i < tr.N; i++) m.set(i, t, tr.values[t * tr.N + i]);
  return m;
}

function colNormSq(W: Matrix): Float64Array {
  const out = new Float64Array(W.columns);
  for (let t = 0; t < W.columns; t++) {
    let s = 0;
    for (let i = 0; i < W.rows; i++) s += W.get(i, t) ** 2;
    out[t] = s;
  }
  return out;
}

/** PCA residuals from the SVD of the explicitly centred N × T matrix. */
function densePca(W: Matrix, r: number): Float64Array {
  const Xc = W.clone();
  for (let i = 0; i < W.rows; i++) {
    let s = 0;
    for (let t = 0; t < W.columns; t++) s += W.get(i, t);
    const mu = s / W.columns;
    for (let t = 0; t < W.columns; t++) Xc.set(i, t, W.get(i, t) - mu);
  }
  const U = new SingularValueDecomposition(Xc).leftSingularVectors.subMatrix(0, W.rows - 1, 0, r - 1);
  const resid = Xc.sub(U.mmul(U.transpose().mmul(Xc)));
  return colNormSq(resid);
}

/** Rank-r DMD residuals, computed directly in N dimensions. */
function denseDmd(W: Matrix, r: number): Float64Array {
  const T = W.columns;
  const X1 = W.subMatrix(0, W.rows - 1, 0, T - 2);
  const X2 = W.subMatrix(0, W.rows - 1, 1, T - 1);
  const svd = new SingularValueDecomposition(X1);
  const U = svd.leftSingularVectors.subMatrix(0, W.rows - 1, 0, r - 1);
  const V = svd.rightSingularVectors.subMatrix(0, T - 2, 0, r - 1);
  const Sinv = Matrix.diag(svd.diagonal.slice(0, r).map((s) => 1 / s));
  const A = U.transpose().mmul(X2).mmul(V).mmul(Sinv);
  let y = U.transpose().mmul(W.getColumnVector(0));
  const recon = new Matrix(W.rows, T);
  for (let t = 0; t < T; t++) {
    if (t > 0) y = A.mmul(y);
    recon.setColumn(t, U.mmul(y).getColumn(0));
  }
  return colNormSq(W.clone().sub(recon));
}

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rel: number, abs = 0): void {
  expect(actual.length).toBe(expected.length);
  for (let k = 0; k < expected.length; k++) {
    const tol = rel * Math.abs(expected[k]) + abs;
    if (!(Math.abs(actual[k] - expected[k]) <= tol)) {
      throw new Error(`entry ${k}: ${actual[k]} vs ${expected[k]} (|diff| ${Math.abs(actual[k] - expected[k])} > ${tol})`);
    }
  }
}

function maxRelDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let k = 0; k < a.length; k++) m = Math.max(m, Math.abs(a[k] - b[k]) / Math.abs(b[k]));
  return m;
}

// ---------------------------------------------------------------- tests

describe('accumulateGram', () => {
  it('gives the raw Gram matrix and column sums of the trajectory', () => {
    const tr = trajectory(300, 12, 1, { centre: 0.5 });
    const W = dense(tr);
    const G = W.transpose().mmul(W);
    const { G: g, colSums } = rawGram(gramOf(tr));
    for (let t = 0; t < tr.T; t++) {
      let s = 0;
      for (let i = 0; i < tr.N; i++) s += W.get(i, t);
      expect(colSums[t]).toBeCloseTo(s, 10);
      for (let u = 0; u < tr.T; u++) expect(Math.abs(g[t * tr.T + u] - G.get(t, u))).toBeLessThan(1e-10 * G.get(t, t));
    }
  });

  it('does not depend on how the parameters are split into chunks (1 vs 7 chunks, 1e-12)', () => {
    const tr = trajectory(1003, 17, 2, { centre: 3 });
    const one = accumulateSplit(tr, []);
    const seven = accumulateSplit(tr, [1, 150, 151, 400, 777, 1000]);
    expect(seven.gram.count).toBe(tr.N);
    for (const key of ['C', 's', 'zSum', 'q', 'muSum', 'normSq'] as const) {
      const a = one.gram[key];
      const b = seven.gram[key];
      const scale = Math.max(...Array.from(a, Math.abs));
      for (let k = 0; k < a.length; k++) expect(Math.abs(a[k] - b[k])).toBeLessThanOrEqual(1e-12 * scale);
    }
    const r1 = finalizeBaselines(one, { modes: 3, cmdBytes: cmdModelBytes({ parameters: tr.N, modes: 3, checkpoints: tr.T }) });
    const r7 = finalizeBaselines(seven, { modes: 3, cmdBytes: cmdModelBytes({ parameters: tr.N, modes: 3, checkpoints: tr.T }) });
    for (const key of ['pca', 'dmd'] as const) {
      r1[key].forEach((e, k) => expectClose(r7[key][k].result.errors.relativeError, e.result.errors.relativeError, 1e-9));
    }
    expectClose(r7.average.errors.errSq, r1.average.errors.errSq, 1e-12);
    expectClose(r7.ema.errors.errSq, r1.ema.errors.errSq, 1e-12);
  });

  it('the WebAssembly kernel agrees with the JavaScript one (Gram to 1e-13 of its diagonal, sums to 1e-13)', () => {
    const tr = trajectory(1003, 23, 5, { centre: 2, f32: true });
    const viaWasm = gramOf(tr);
    const previous = setKernel('js');
    let viaJs: GramAccumulator;
    try {
      viaJs = gramOf(tr);
    } finally {
      setKernel(previous);
    }
    const T = tr.T;
    let worst = 0;
    for (let t = 0; t < T; t++) {
      for (let u = t; u < T; u++) {
        const scale = Math.sqrt(viaJs.C[t * T + t] * viaJs.C[u * T + u]);
        worst = Math.max(worst, Math.abs(viaWasm.C[t * T + u] - viaJs.C[t * T + u]) / scale);
      }
    }
    expect(worst).toBeLessThan(1e-13);
    expect(worst).toBeGreaterThan(0); // the two really ran different code (sums grouped differently)
    for (const key of ['s', 'zSum', 'q', 'muSum', 'normSq'] as const) {
      const scale = Math.max(...Array.from(viaJs[key], Math.abs));
      expectClose(viaWasm[key], viaJs[key], 0, 1e-13 * scale);
    }
    expect(viaWasm.count).toBe(viaJs.count);
  });

  it('the WebAssembly smoothing sums and models agree with the JavaScript ones (odd n: the padded column adds nothing)', () => {
    const tr = trajectory(1001, 19, 6, { centre: 1, f32: true });
    const run = () => {
      const acc = createSmoothing(tr.T, { lastK: 4, beta: 0.8 });
      const models = { average: new Float64Array(tr.N), ema: new Float64Array(tr.N) };
      accumulateSmoothing(tr.values, tr.N, tr.T, acc, models);
      return { acc, models };
    };
    const viaWasm = run();
    const previous = setKernel('js');
    let viaJs: ReturnType<typeof run>;
    try {
      viaJs = run();
    } finally {
      setKernel(previous);
    }
    // Per parameter the same operations: the models are bit-identical.
    expect(viaWasm.models).toEqual(viaJs.models);
    for (const key of ['normSq', 'avgErrSq', 'emaErrSq'] as const) expectClose(viaWasm.acc[key], viaJs.acc[key], 1e-13);
    expect(viaWasm.acc.count).toBe(tr.N);
  });

  it('accepts float32 chunks and rejects mismatched shapes', () => {
    const tr = trajectory(50, 6, 3, { f32: true });
    const g = gramOf(tr);
    expect(g.count).toBe(50);
    expect(() => accumulateGram(tr.values, 60, 6, createGram(6))).toThrow(/T·n/);
    expect(() => accumulateGram(tr.values, 50, 6, createGram(5))).toThrow(/T = 5/);
  });
});

describe('PCA baseline', () => {
  it('matches the SVD of the explicitly centred matrix (1e-8 relative)', () => {
    for (const [N, T, seed] of [[2000, 30, 4], [700, 9, 5], [40, 25, 6]] as const) {
      const tr = trajectory(N, T, seed, { centre: 0.2, noise: 0.1 });
      const W = dense(tr);
      const ranks = [1, 2, 3, 5, T - 2];
      const res = finalizePca(gramOf(tr), ranks);
      const normSq = colNormSq(W);
      expectClose(res.ranks[0].errors.normSq, normSq, 1e-12);
      ranks.forEach((r, k) => {
        const ref = densePca(W, r);
        expectClose(res.ranks[k].errors.errSq, ref, 1e-8);
        expectClose(res.ranks[k].errors.relativeError, Array.from(ref, (e, t) => Math.sqrt(e / normSq[t])), 1e-8);
      });
    }
  });

  it('rank 0 is the time mean; rank ≥ T − 1 reconstructs exactly', () => {
    const tr = trajectory(200, 8, 7);
    const W = dense(tr);
    const res = finalizePca(gramOf(tr), [0, 7, 50]);
    const mean0 = new Float64Array(tr.T);
    for (let i = 0; i < tr.N; i++) {
      let s = 0;
      for (let t = 0; t < tr.T; t++) s += W.get(i, t);
      for (let t = 0; t < tr.T; t++) mean0[t] += (W.get(i, t) - s / tr.T) ** 2;
    }
    expectClose(res.ranks[0].errors.errSq, mean0, 1e-10);
    expect(res.ranks[1].rank).toBe(7);
    expect(res.ranks[2].rank).toBe(7);
    for (const e of res.ranks[2].errors.relativeError) expect(e).toBeLessThan(1e-6);
    expect(res.ranks[0].explained).toBe(0);
    expect(res.ranks[1].explained).toBeCloseTo(1, 12);
  });

  it('keeps 1e-8 when |mean| ≫ std (BN running-var-like rows near 1e3) where a raw Gram loses digits', () => {
    const tr = trajectory(1500, 20, 8, { centre: 1000, spread: 100, scale: 0.01, noise: 0.2, f32: true });
    const W = dense(tr);
    const g = gramOf(tr);
    const ranks = [1, 2, 4];
    const res = finalizePca(g, ranks);
    // The naive route: raw G = WᵀW, then double-centre it, C = (I − J/T) G (I − J/T).
    const { G } = rawGram(g);
    const T = tr.T;
    const rowMean = new Float64Array(T);
    let all = 0;
    for (let t = 0; t < T; t++) {
      for (let u = 0; u < T; u++) rowMean[t] += G[t * T + u] / T;
      all += rowMean[t] / T;
    }
    const naive = new Float64Array(T * T);
    for (let t = 0; t < T; t++) for (let u = 0; u < T; u++) naive[t * T + u] = G[t * T + u] - rowMean[t] - rowMean[u] + all;
    const { values, vectors } = symmetricEigen(naive, T);
    ranks.forEach((r, k) => {
      const ref = densePca(W, r);
      expectClose(res.ranks[k].errors.errSq, ref, 1e-8);
      const naiveErr = new Float64Array(T);
      for (let j = r; j < T; j++) for (let t = 0; t < T; t++) naiveErr[t] += Math.max(values[j], 0) * vectors[t * T + j] ** 2;
      expect(maxRelDiff(naiveErr, ref)).toBeGreaterThan(1e-4);
    });
  });
});

describe('DMD baseline', () => {
  it('matches DMD computed directly on the N × T matrix (1e-8 relative)', () => {
    for (const [N, T, seed] of [[2000, 30, 9], [500, 12, 10], [25, 20, 11]] as const) {
      const tr = trajectory(N, T, seed, { centre: 0.3, noise: 0.1 });
      const W = dense(tr);
      const ranks = [1, 2, 3, 6];
      const res = finalizeDmd(gramOf(tr), ranks);
      ranks.forEach((r, k) => {
        expect(res.ranks[k].effectiveRank).toBe(r);
        expectClose(res.ranks[k].errors.errSq, denseDmd(W, r), 1e-8);
      });
    }
  });

  it('recovers a linear system exactly, including a complex-conjugate eigenvalue pair', () => {
    const N = 400;
    const T = 25;
    const r = rng(12);
    const lambdas = [1, 0.9, 0.7];
    const theta = 0.6;
    const rho = 0.95;
    const phi = Array.from({ length: 5 }, () => Array.from({ length: N }, () => r()));
    const values = new Float64Array(N * T);
    for (let t = 0; t < T; t++) {
      for (let i = 0; i < N; i++) {
        let v = 0;
        lambdas.forEach((l, k) => (v += phi[k][i] * l ** t));
        v += rho ** t * (phi[3][i] * Math.cos(theta * t) + phi[4][i] * Math.sin(theta * t));
        values[t * N + i] = v;
      }
    }
    const res = finalizeDmd(gramOf({ N, T, values }), [5, 2]);
    for (const e of res.ranks[0].errors.relativeError) expect(e).toBeLessThan(1e-9);
    const eig = res.ranks[0].eigenvalues;
    expect(eig).toHaveLength(5);
    const expected = [
      { re: 1, im: 0 },
      { re: rho * Math.cos(theta), im: rho * Math.sin(theta) },
      { re: rho * Math.cos(theta), im: -rho * Math.sin(theta) },
      { re: 0.9, im: 0 },
      { re: 0.7, im: 0 },
    ];
    for (const ex of expected) expect(eig.some((e) => Math.hypot(e.re - ex.re, e.im - ex.im) < 1e-8)).toBe(true);
    // A truncated rank cannot: the error must be visible.
    expect(Math.max(...res.ranks[1].errors.relativeError)).toBeGreaterThan(1e-3);
  });

  it('the isometric small snapshots have the trajectory’s Gram matrix', () => {
    const tr = trajectory(300, 10, 13, { centre: 50, scale: 0.1 });
    const g = gramOf(tr);
    const { Ws, p } = isometricSnapshots(g);
    const W = dense(tr);
    const G = W.transpose().mmul(W);
    for (let t = 0; t < tr.T; t++) {
      for (let u = 0; u < tr.T; u++) {
        let s = 0;
        for (let k = 0; k < p; k++) s += Ws[k * tr.T + t] * Ws[k * tr.T + u];
        expect(Math.abs(s - G.get(t, u))).toBeLessThan(1e-12 * G.get(t, t));
      }
    }
  });

  it('keeps 1e-8 when |mean| ≫ std (rows near 1e3)', () => {
    const tr = trajectory(1500, 20, 14, { centre: 1000, spread: 100, scale: 0.01, noise: 0.2, f32: true });
    const W = dense(tr);
    const ranks = [2, 3, 5];
    const res = finalizeDmd(gramOf(tr), ranks);
    ranks.forEach((r, k) => {
      const ref = denseDmd(W, r);
      expectClose(res.ranks[k].errors.errSq, ref, 1e-8);
      // Sanity: the fluctuations are tiny relative to the weights, so the errors are not trivially 0.
      expect(Math.max(...res.ranks[k].errors.relativeError)).toBeGreaterThan(1e-9);
    });
  });

  it('needs two checkpoints and positive ranks', () => {
    expect(() => finalizeDmd(createGram(1), [1])).toThrow(/2 checkpoints/);
    expect(() => finalizeDmd(createGram(3), [0])).toThrow(/positive/);
  });
});

describe('last-k average and EMA', () => {
  it('match direct computation, and write the averaged and final-EMA models', () => {
    const tr = trajectory(333, 15, 15, { centre: 1 });
    const W = dense(tr);
    for (const [lastK, beta] of [[5, 0.9], [1, 0.5], [40, 0]] as const) {
      const acc = createBaselineAccumulators(tr.T, { lastK, beta });
      const average = new Float64Array(tr.N + 3);
      const ema = new Float32Array(tr.N + 3);
      accumulateBaselines(tr.values, tr.N, tr.T, acc, { average, ema, offset: 3 });
      const res = finalizeSmoothing(acc.smoothing);
      const k = Math.min(lastK, tr.T);
      expect(res.lastK).toBe(k);
      const avgErr = new Float64Array(tr.T);
      const emaErr = new Float64Array(tr.T);
      for (let i = 0; i < tr.N; i++) {
        let s = 0;
        for (let t = tr.T - k; t < tr.T; t++) s += W.get(i, t);
        const avg = s / k;
        expect(average[3 + i]).toBeCloseTo(avg, 12);
        let e = W.get(i, 0);
        for (let t = 0; t < tr.T; t++) {
          if (t > 0) e = beta * e + (1 - beta) * W.get(i, t);
          avgErr[t] += (W.get(i, t) - avg) ** 2;
          emaErr[t] += (W.get(i, t) - e) ** 2;
        }
        expect(ema[3 + i]).toBe(Math.fround(e));
      }
      expectClose(res.average.errSq, avgErr, 1e-9);
      expectClose(res.ema.errSq, emaErr, 1e-9, 1e-300);
      expectClose(res.average.relativeError, Array.from(avgErr, (v, t) => Math.sqrt(v) / Math.sqrt(colNormSq(W)[t])), 1e-9);
      expect(res.ema.errSq[0]).toBe(0);
    }
  });

  it('rejects bad options', () => {
    expect(() => createBaselineAccumulators(5, { lastK: 0 })).toThrow(/lastK/);
    expect(() => createBaselineAccumulators(5, { beta: 1 })).toThrow(/beta/);
  });
});

describe('finalizeBaselines', () => {
  it('reports PCA/DMD at rank M and at the CMD storage, with storage bytes', () => {
    const tr = trajectory(1000, 20, 16);
    const acc = accumulateSplit(tr, [333, 666]);
    const M = 4;
    const cmdBytes = cmdModelBytes({ parameters: tr.N, modes: M, checkpoints: tr.T, samples: 100 });
    const res = finalizeBaselines(acc, { modes: M, cmdBytes });
    expect(res.sameStorage).toEqual({ pca: 1, dmd: 2 });
    expect(res.pca.map((e) => [e.basis, e.result.rank, e.withinBudget])).toEqual([['modes', 4, false], ['sameStorage', 1, true]]);
    expect(res.dmd.map((e) => [e.basis, e.result.rank, e.withinBudget])).toEqual([['modes', 4, false], ['sameStorage', 2, true]]);
    expect(res.pca[1].bytes).toBe(4 * (2 * tr.N + tr.T));
    expect(res.dmd[1].bytes).toBe(4 * (2 * tr.N + 8));
    const W = dense(tr);
    expectClose(res.pca[0].result.errors.errSq, densePca(W, 4), 1e-8);
    expectClose(res.dmd[1].result.errors.errSq, denseDmd(W, 2), 1e-8);
    // Higher rank never reconstructs worse in total for PCA (nested subspaces).
    const sum = (a: Float64Array) => a.reduce((x, y) => x + y, 0);
    expect(sum(res.pca[0].result.errors.errSq)).toBeLessThan(sum(res.pca[1].result.errors.errSq));
  });

  it('errorSeries follows the report convention for zero norms', () => {
    const e = errorSeries(Float64Array.of(0, 1, -1e-30, 4), Float64Array.of(0, 0, 1, 1));
    expect(Array.from(e.relativeError)).toEqual([0, Infinity, 0, 2]);
  });
});
