import { Matrix, pseudoInverse } from 'ml-matrix';
import { afterEach, describe, expect, it } from 'vitest';
import {
  activeFitKernel,
  createAccumulators,
  fitAssign,
  fitFixedModes,
  mergeAccumulators,
  prepareReferences,
  type FitAccumulators,
  type FitKernel,
  type FitOutput,
  type ReferenceStats,
} from '../../src/core/fit.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { createRng, type Rng } from '../../src/core/rng.ts';

function gauss(rng: Rng): number {
  return Math.sqrt(-2 * Math.log(1 - rng.nextFloat())) * Math.cos(2 * Math.PI * rng.nextFloat());
}

function randomWalk(rng: Rng, T: number): number[] {
  const r: number[] = [];
  let x = gauss(rng);
  for (let t = 0; t < T; t++) r.push((x += gauss(rng)));
  return r;
}

/** Chunk layout T × n from per-parameter trajectories. */
function toChunk(trajs: number[][], T: number, Ctor: Float32ArrayConstructor | Float64ArrayConstructor = Float64Array) {
  const n = trajs.length;
  const v = new Ctor(T * n);
  trajs.forEach((w, i) => w.forEach((x, t) => (v[t * n + i] = x)));
  return v;
}

function outputs(n: number): Required<Omit<FitOutput, 'offset'>> & { mode: Uint16Array; a: Float64Array; b: Float64Array; r2: Float64Array } {
  return { mode: new Uint16Array(n), a: new Float64Array(n), b: new Float64Array(n), r2: new Float64Array(n) };
}

/** Minimum-norm least squares [a, b] = x W̃ᵀ (W̃W̃ᵀ)⁺ with ml-matrix, as the official calc_AB_vec. */
function pinvFit(w: number[], r: number[]): [number, number] {
  const Wt = new Matrix([r, r.map(() => 1)]);
  const G = Wt.mmul(Wt.transpose());
  const h = new Matrix([w]).mmul(Wt.transpose());
  const ab = h.mmul(pseudoInverse(G));
  return [ab.get(0, 0), ab.get(0, 1)];
}

/** Exact least squares in rational arithmetic (BigInt), rounded to float64 at the end. */
function exactFit(w: number[], r: number[]): [number, number] {
  const S = 200;
  const big = (x: number) => {
    const y = x * 2 ** S;
    if (!Number.isInteger(y)) throw new Error('value too small for the fixed scale');
    return BigInt(y);
  };
  const T = BigInt(w.length);
  let sw = 0n, sr = 0n, swr = 0n, srr = 0n;
  w.forEach((x, t) => {
    const W = big(x);
    const R = big(r[t]);
    sw += W; sr += R; swr += W * R; srr += R * R;
  });
  const N = T * swr - sw * sr;
  const D = T * srr - sr * sr;
  const toNum = (num: bigint, den: bigint) => {
    const neg = (num < 0n) !== (den < 0n);
    const q = ((num < 0n ? -num : num) << 80n) / (den < 0n ? -den : den);
    return (neg ? -1 : 1) * Number(q) / 2 ** 80;
  };
  const a = toNum(N, D);
  const b = toNum(sw * D - N * sr, T * D * (1n << BigInt(S)));
  return [a, b];
}

/** Planted-mode population: per mode a reference and members a·(r + noise) + b. */
function planted(seed: number, T: number) {
  const rng = createRng(seed);
  const refs = [randomWalk(rng, T), randomWalk(rng, T), randomWalk(rng, T)];
  const trajs: number[][] = [];
  const truth: number[] = [];
  const sizes = [60, 25, 9]; // unequal mode sizes
  sizes.forEach((sz, m) => {
    const sd = Math.sqrt(refs[m].reduce((s, x, _, arr) => s + (x - arr.reduce((p, q) => p + q, 0) / T) ** 2, 0) / T);
    for (let k = 0; k < sz; k++) {
      const a = (k % 3 === 0 ? -1 : 1) * (0.1 + rng.nextFloat()); // a third anti-correlated
      const b = 5 * gauss(rng);
      trajs.push(refs[m].map((x) => a * (x + 0.45 * sd * gauss(rng)) + b)); // |ρ| ≈ 0.9
      truth.push(m);
    }
  });
  return { refs, trajs, truth };
}

describe('fitAssign on planted modes', () => {
  const T = 40;
  const { refs, trajs, truth } = planted(11, T);
  // Parameters 0..2 are the references themselves; add two constant parameters at the end.
  const all = [...refs, ...trajs, Array(T).fill(0.3125), Array(T).fill(-7.1)];
  const n = all.length;
  const stats = prepareReferences(Float64Array.from(refs.flat()), 3, T);
  const out = outputs(n);
  const acc = createAccumulators(3, T);
  fitAssign(toChunk(all, T), n, stats, out, acc);

  it('assigns members to their planted mode, anti-correlated ones included', () => {
    const got = truth.map((_, k) => out.mode[3 + k]);
    const wrong = got.filter((m, k) => m !== truth[k]).length;
    expect(wrong).toBe(0);
    truth.forEach((m, k) => {
      if (k % 3 === 0 && m === 0) expect(out.a[3 + k]).toBeLessThan(0);
    });
    for (let k = 0; k < truth.length; k++) expect(out.r2[3 + k]).toBeGreaterThan(0.5);
  });

  it('fits each reference to itself with a = 1, b = 0, R² = 1', () => {
    for (let m = 0; m < 3; m++) {
      expect(out.mode[m]).toBe(m);
      expect(Math.abs(out.a[m] - 1)).toBeLessThan(1e-12);
      expect(Math.abs(out.b[m])).toBeLessThan(1e-12);
      expect(out.r2[m]).toBeCloseTo(1, 12);
    }
  });

  it('puts constant parameters in mode 0 with a = 0 and b = the constant, exactly', () => {
    for (const [i, c] of [[n - 2, 0.3125], [n - 1, -7.1]] as const) {
      expect(out.mode[i]).toBe(0);
      expect(out.a[i]).toBe(0);
      expect(out.b[i]).toBe(c);
      expect(out.r2[i]).toBe(0);
    }
  });

  it('agrees with the pseudo-inverse least squares of the official code to 1e-10', () => {
    for (let i = 0; i < n; i++) {
      const [a, b] = pinvFit(all[i], refs[out.mode[i]]);
      expect(Math.abs(out.a[i] - a)).toBeLessThan(1e-10 * Math.max(1, Math.abs(a)));
      expect(Math.abs(out.b[i] - b)).toBeLessThan(1e-10 * Math.max(1, Math.abs(b)));
    }
  });

  it('accumulates errors of the float32-rounded model, norms, counts and R² sums', () => {
    const errSq = new Float64Array(T);
    const normSq = new Float64Array(T);
    for (let i = 0; i < n; i++) {
      const a = Math.fround(out.a[i]);
      const b = Math.fround(out.b[i]);
      for (let t = 0; t < T; t++) {
        const w = all[i][t];
        errSq[t] += (w - (a * refs[out.mode[i]][t] + b)) ** 2;
        normSq[t] += w * w;
      }
    }
    for (let t = 0; t < T; t++) {
      expect(acc.errSq[t]).toBeCloseTo(errSq[t], 9);
      expect(Math.abs(acc.normSq[t] - normSq[t])).toBeLessThan(1e-12 * normSq[t]);
    }
    expect(Array.from(acc.modeCount)).toEqual([0, 1, 2].map((m) => Array.from(out.mode).filter((x) => x === m).length));
    const r2Sum = [0, 0, 0];
    out.r2.forEach((r2, i) => (r2Sum[out.mode[i]] += r2));
    r2Sum.forEach((s, m) => expect(acc.r2Sum[m]).toBeCloseTo(s, 10));
  });

  it('gives the same results per chunk (with offsets and merged accumulators) and from float32 data', () => {
    const chunked = outputs(n);
    const acc1 = createAccumulators(3, T);
    const acc2 = createAccumulators(3, T);
    const cut = 37;
    fitAssign(toChunk(all.slice(0, cut), T), cut, stats, chunked, acc1);
    fitAssign(toChunk(all.slice(cut), T), n - cut, stats, { ...chunked, offset: cut }, acc2);
    mergeAccumulators(acc1, acc2);
    expect(Array.from(chunked.mode)).toEqual(Array.from(out.mode));
    expect(Array.from(chunked.a)).toEqual(Array.from(out.a));
    expect(Array.from(chunked.b)).toEqual(Array.from(out.b));
    for (let t = 0; t < T; t++) expect(acc1.errSq[t]).toBeCloseTo(acc.errSq[t], 9);

    const f32 = toChunk(all, T, Float32Array);
    const o32 = { mode: new Uint8Array(n), a: new Float32Array(n), b: new Float32Array(n) };
    fitAssign(f32, n, stats, o32, createAccumulators(3, T));
    const wrong = truth.filter((m, k) => o32.mode[3 + k] !== m).length;
    expect(wrong).toBe(0);
  });

  it('fitFixedModes reproduces fitAssign when given its modes', () => {
    const fixed = outputs(n);
    const acc2 = createAccumulators(3, T);
    fitFixedModes(toChunk(all, T), n, stats, out.mode, 0, fixed, acc2);
    expect(Array.from(fixed.a)).toEqual(Array.from(out.a));
    expect(Array.from(fixed.b)).toEqual(Array.from(out.b));
    for (let i = 0; i < n; i++) expect(fixed.r2[i]).toBeCloseTo(out.r2[i], 12);
    for (let t = 0; t < T; t++) expect(acc2.errSq[t]).toBeCloseTo(acc.errSq[t], 9);
    expect(() => fitFixedModes(toChunk(all, T), n, stats, new Uint8Array(n).fill(3), 0, fixed, acc2)).toThrow(RangeError);
  });
});

describe('fitAssign special cases', () => {
  it('puts everyone in mode 0 when M = 1', () => {
    const rng = createRng(2);
    const T = 12;
    const ref = randomWalk(rng, T);
    const trajs = Array.from({ length: 9 }, () => randomWalk(rng, T));
    const out = outputs(9);
    fitAssign(toChunk(trajs, T), 9, prepareReferences(Float64Array.from(ref), 1, T), out, createAccumulators(1, T));
    expect(Array.from(out.mode)).toEqual(Array(9).fill(0));
    trajs.forEach((w, i) => {
      const [a, b] = pinvFit(w, ref);
      expect(out.a[i]).toBeCloseTo(a, 10);
      expect(out.b[i]).toBeCloseTo(b, 10);
    });
  });

  it('uses the pinv minimum-norm solution for a constant reference and never assigns to it', () => {
    const T = 10;
    const x = Array.from({ length: T }, (_, t) => t);
    const walk = randomWalk(createRng(4), T);
    const stats = prepareReferences(Float64Array.from([...walk, ...Array(T).fill(2)]), 2, T);
    expect(Array.from(stats.constant)).toEqual([0, 1]);
    const out = outputs(2);
    fitAssign(toChunk([x, walk.map((v) => -3 * v + 1)], T), 2, stats, out, createAccumulators(2, T));
    expect(Array.from(out.mode)).toEqual([0, 0]);
    // Fixed to the constant mode: official example c = 2, x = 0..9 → a = 1.8, b = 0.9.
    const fixed = outputs(1);
    fitFixedModes(toChunk([x], T), 1, stats, [1], 0, fixed, createAccumulators(2, T));
    expect(fixed.a[0]).toBeCloseTo(1.8, 14);
    expect(fixed.b[0]).toBeCloseTo(0.9, 14);
    const [a, b] = pinvFit(x, Array(T).fill(2));
    expect(fixed.a[0]).toBeCloseTo(a, 12);
    expect(fixed.b[0]).toBeCloseTo(b, 12);
  });

  it('treats a reference as constant exactly when numpy pinv would (rcond 1e-15)', () => {
    const T = 8;
    const tiny = (eps: number) => Float64Array.from(Array.from({ length: T }, (_, t) => 1 + (t % 2 ? eps : -eps)));
    // var = eps², s2/s1 ≈ var/(1+c²)² = eps²/4: constant below eps ≈ 6.3e-8.
    expect(prepareReferences(tiny(1e-9), 1, T).constant[0]).toBe(1);
    expect(prepareReferences(tiny(1e-6), 1, T).constant[0]).toBe(0);
  });

  it('fits a BatchNorm running-var-like parameter (mean 1e3, std 1e-4) to full precision', () => {
    const rng = createRng(8);
    const T = 50;
    const ref = randomWalk(rng, T).map((v) => 0.01 * v);
    const w = ref.map((r) => 1000 + 1e-4 * (0.7 * r * 100 + 0.3 * gauss(rng)));
    const [aE, bE] = exactFit(w, ref);
    const out = outputs(1);
    fitFixedModes(toChunk([w], T), 1, prepareReferences(Float64Array.from(ref), 1, T), [0], 0, out, createAccumulators(1, T));
    expect(Math.abs(out.a[0] - aE)).toBeLessThan(1e-10 * Math.abs(aE));
    expect(Math.abs(out.b[0] - bE)).toBeLessThan(1e-14 * Math.abs(bE));
    // The unshifted float64 closed form loses most digits of a here.
    let sw = 0, sr = 0, swr = 0, srr = 0;
    w.forEach((x, t) => { sw += x; sr += ref[t]; swr += x * ref[t]; srr += ref[t] ** 2; });
    const naiveA = (T * swr - sw * sr) / (T * srr - sr * sr);
    expect(Math.abs(naiveA - aE)).toBeGreaterThan(1e3 * Math.abs(out.a[0] - aE));
  });

  it('matches ml-matrix pseudoInverse on random data', () => {
    const rng = createRng(99);
    const T = 25;
    for (let k = 0; k < 50; k++) {
      const r = Array.from({ length: T }, () => gauss(rng) * 3 + 1);
      const w = Array.from({ length: T }, () => gauss(rng) * 0.2 - 0.5);
      const out = outputs(1);
      fitFixedModes(toChunk([w], T), 1, prepareReferences(Float64Array.from(r), 1, T), [0], 0, out, createAccumulators(1, T));
      const [a, b] = pinvFit(w, r);
      expect(Math.abs(out.a[0] - a)).toBeLessThan(1e-10);
      expect(Math.abs(out.b[0] - b)).toBeLessThan(1e-10);
    }
  });

  it('validates shapes', () => {
    const stats = prepareReferences(new Float64Array(6).map((_, i) => i), 2, 3);
    expect(() => fitAssign(new Float64Array(5), 2, stats, outputs(2), createAccumulators(2, 3))).toThrow(RangeError);
    expect(() => fitAssign(new Float64Array(6), 2, stats, outputs(1), createAccumulators(2, 3))).toThrow(RangeError);
    expect(() => prepareReferences(new Float64Array(5), 2, 3)).toThrow(RangeError);
  });
});

/**
 * The math of fit.ts written plainly, one parameter at a time, in the operation order its comments
 * specify (shift by w(0), centre, sums over t in order, score |T·P − S1·R1|·(1/sqrt(varR)), closed-form
 * fit, errors of the float32-rounded model). Both kernels must reproduce its modes, a, b and R²
 * bit for bit.
 */
function referenceFit(values: ArrayLike<number>, n: number, stats: ReferenceStats, fixedModes?: ArrayLike<number>) {
  const { T, M, centred, mean, sum1, varScaled, constant } = stats;
  const mode = new Int32Array(n);
  const a = new Float64Array(n);
  const b = new Float64Array(n);
  const r2 = new Float64Array(n);
  const errSq = new Float64Array(T);
  const normSq = new Float64Array(T);
  for (let i = 0; i < n; i++) {
    const w = Array.from({ length: T }, (_, t) => values[t * n + i]);
    const x = w.map((v) => v - w[0]);
    const mu = x.reduce((s, v) => s + v, 0) / T;
    const z = x.map((v) => v - mu);
    const cw = w[0] + mu;
    const s1 = z.reduce((s, v) => s + v, 0);
    const s2 = z.reduce((s, v) => s + v * v, 0);
    const cross = (m: number) => z.reduce((s, v, t) => s + v * centred[m * T + t], 0);
    const varW = T * s2 - s1 * s1;
    let m = 0;
    if (fixedModes) m = fixedModes[i];
    else if (varW > 0) {
      let best = 0;
      for (let k = 0; k < M; k++) {
        // fit.ts multiplies by a precomputed 1/sqrt(varR): near-ties round the same way only so.
        const score = constant[k] ? 0 : Math.abs(T * cross(k) - s1 * sum1[k]) * (1 / Math.sqrt(varScaled[k]));
        if (score > best) [best, m] = [score, k];
      }
    }
    mode[i] = m;
    if (constant[m]) {
      const xbar = cw + s1 / T;
      a[i] = (mean[m] * xbar) / (mean[m] ** 2 + 1);
      b[i] = xbar / (mean[m] ** 2 + 1);
    } else {
      const num = T * cross(m) - s1 * sum1[m];
      a[i] = num / varScaled[m];
      b[i] = (s1 - a[i] * sum1[m]) / T + cw - a[i] * mean[m];
      if (varW > 0) r2[i] = Math.min((num / (Math.sqrt(varW) * Math.sqrt(varScaled[m]))) ** 2, 1);
    }
    const fa = Math.fround(a[i]);
    const fb = Math.fround(b[i]);
    for (let t = 0; t < T; t++) {
      errSq[t] += (z[t] - fa * centred[m * T + t] + (cw - fa * mean[m] - fb)) ** 2;
      normSq[t] += w[t] ** 2;
    }
  }
  return { mode, a, b, r2, errSq, normSq };
}

/** References and a chunk with every special case: constant and duplicate references, constant, huge-offset and reference-copy parameters. */
function hardCase(seed: number, M: number, T: number, n: number, Ctor: Float32ArrayConstructor | Float64ArrayConstructor) {
  const rng = createRng(seed);
  const refs: number[][] = [];
  for (let m = 0; m < M; m++) {
    if (m === 2) refs.push(Array(T).fill(1.5)); // constant reference
    else if (m === 3) refs.push(refs[1].map((v) => -2 * v + 0.25)); // affine copy of reference 1: ties
    else refs.push(randomWalk(rng, T).map((v) => v * 10 ** (m % 3 - 1)));
  }
  const values = new Ctor(T * n);
  for (let i = 0; i < n; i++) {
    const kind = i % 11;
    const m = Math.floor(rng.nextFloat() * M);
    const a = gauss(rng);
    const off = kind === 5 ? 1e3 : 5 * gauss(rng); // BatchNorm-like offset
    for (let t = 0; t < T; t++) {
      let v: number;
      if (kind === 0) v = -0.75; // constant parameter
      else if (kind === 1) v = refs[m][t]; // exactly a reference
      else v = a * refs[m][t] + off + (kind === 5 ? 1e-4 : 0.5) * gauss(rng);
      values[t * n + i] = v;
    }
  }
  return { refs: Float64Array.from(refs.flat()), values };
}

function runKernel(kernel: FitKernel, values: Float32Array | Float64Array, n: number, stats: ReferenceStats, fixed?: ArrayLike<number>, offset = 0) {
  expect(setKernel(kernel)).toBe(kernel);
  const out = { mode: new Uint16Array(n + offset), a: new Float64Array(n + offset), b: new Float64Array(n + offset), r2: new Float64Array(n + offset), offset };
  const acc = createAccumulators(stats.M, stats.T);
  if (fixed) fitFixedModes(values, n, stats, fixed, 0, out, acc);
  else fitAssign(values, n, stats, out, acc);
  const cut = <A extends { subarray(a: number): A }>(x: A) => x.subarray(offset);
  return { mode: cut(out.mode), a: cut(out.a), b: cut(out.b), r2: cut(out.r2), acc };
}

function expectSameSums(got: FitAccumulators, want: { errSq: Float64Array; normSq: Float64Array }, rel: number) {
  for (let t = 0; t < want.errSq.length; t++) {
    expect(Math.abs(got.errSq[t] - want.errSq[t])).toBeLessThanOrEqual(rel * want.errSq[t]);
    expect(Math.abs(got.normSq[t] - want.normSq[t])).toBeLessThanOrEqual(rel * want.normSq[t]);
  }
}

describe('WebAssembly and JavaScript kernels against the plain reference', () => {
  afterEach(() => setKernel('auto'));

  it('runs the WebAssembly kernel by default on Node and can switch to JavaScript', () => {
    expect(setKernel('auto')).toBe('wasm');
    expect(activeFitKernel()).toBe('wasm');
    expect(setKernel('js')).toBe('js');
    expect(activeFitKernel()).toBe('js');
    expect(setKernel('wasm')).toBe('wasm');
  });

  const cases: [number, number, number][] = [
    [1, 12, 9], [2, 25, 1000], [3, 1, 17], [4, 2, 33], [5, 40, 2600], [10, 40, 3001], [20, 25, 515], [7, 100, 77], [33, 7, 130],
  ];
  for (const [M, T, n] of cases) {
    for (const Ctor of [Float32Array, Float64Array]) {
      it(`fitAssign and fitFixedModes agree bit for bit: M = ${M}, T = ${T}, n = ${n}, ${Ctor.name}`, () => {
        const { refs, values } = hardCase(M * 1000 + T, M, T, n, Ctor);
        const stats = prepareReferences(refs, M, T);
        if (M > 2) expect(stats.constant[2]).toBe(1);
        const want = referenceFit(values, n, stats);
        const fixedModes = Int32Array.from({ length: n }, (_, i) => (i * 7) % M);
        const wantFixed = referenceFit(values, n, stats, fixedModes);
        for (const kernel of ['wasm', 'js'] as const) {
          const got = runKernel(kernel, values, n, stats, undefined, 5);
          expect(Array.from(got.mode)).toEqual(Array.from(want.mode));
          expect(Array.from(got.a)).toEqual(Array.from(want.a));
          expect(Array.from(got.b)).toEqual(Array.from(want.b));
          expect(Array.from(got.r2)).toEqual(Array.from(want.r2));
          expectSameSums(got.acc, want, 1e-12);
          const fixed = runKernel(kernel, values, n, stats, fixedModes);
          expect(Array.from(fixed.mode)).toEqual(Array.from(fixedModes));
          expect(Array.from(fixed.a)).toEqual(Array.from(wantFixed.a));
          expect(Array.from(fixed.b)).toEqual(Array.from(wantFixed.b));
          expect(Array.from(fixed.r2)).toEqual(Array.from(wantFixed.r2));
          expectSameSums(fixed.acc, wantFixed, 1e-12);
        }
      });
    }
  }

  it('covers the special cases it claims: ties, constant parameters, constant reference', () => {
    const M = 5, T = 40, n = 2600;
    const { refs, values } = hardCase(5040, M, T, n, Float32Array);
    const stats = prepareReferences(refs, M, T);
    const got = runKernel('wasm', values, n, stats);
    for (let i = 0; i < n; i += 11) expect(got.mode[i]).toBe(0); // constant parameters
    expect(Array.from(got.mode).some((m) => m === 3 || m === 1)).toBe(true);
    expect(Array.from(got.mode).includes(2)).toBe(false); // the constant reference attracts nobody
  });

  it('writes float32 outputs and Uint8 modes as the float64 results rounded, without r2', () => {
    const M = 10, T = 40, n = 700;
    const { refs, values } = hardCase(77, M, T, n, Float32Array);
    const stats = prepareReferences(refs, M, T);
    const want = referenceFit(values, n, stats);
    for (const kernel of ['wasm', 'js'] as const) {
      setKernel(kernel);
      const out = { mode: new Uint8Array(n), a: new Float32Array(n), b: new Float32Array(n) };
      const acc = createAccumulators(M, T);
      fitAssign(values, n, stats, out, acc);
      expect(Array.from(out.mode)).toEqual(Array.from(want.mode));
      expect(Array.from(out.a)).toEqual(Array.from(want.a, Math.fround));
      expect(Array.from(out.b)).toEqual(Array.from(want.b, Math.fround));
      const count = new Float64Array(M);
      const r2Sum = new Float64Array(M);
      want.mode.forEach((m, i) => {
        count[m]++;
        r2Sum[m] += want.r2[i];
      });
      expect(Array.from(acc.modeCount)).toEqual(Array.from(count));
      expect(Array.from(acc.r2Sum)).toEqual(Array.from(r2Sum));
    }
  });

  it('rejects a bad fixed mode in either kernel', () => {
    const stats = prepareReferences(Float64Array.from([0, 1, 3, 2, 5, 1]), 2, 3);
    for (const kernel of ['wasm', 'js'] as const) {
      setKernel(kernel);
      expect(() => fitFixedModes(new Float64Array(6), 2, stats, [0, 2], 0, outputs(2), createAccumulators(2, 3))).toThrow(/mode 2 of parameter 1/);
      expect(() => fitFixedModes(new Float64Array(6), 2, stats, [0.5, 1], 0, outputs(2), createAccumulators(2, 3))).toThrow(RangeError);
    }
  });
});
