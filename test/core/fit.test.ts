import { Matrix, pseudoInverse } from 'ml-matrix';
import { describe, expect, it } from 'vitest';
import { createAccumulators, fitAssign, fitFixedModes, mergeAccumulators, prepareReferences, type FitOutput } from '../../src/core/fit.ts';
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
