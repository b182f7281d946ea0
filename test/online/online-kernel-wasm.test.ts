import { describe, expect, it } from 'vitest';
import { openChunkKernel, type ChunkKernel } from '../../src/online/chunk-kernel.ts';
import { xorshift32 } from '../helpers/random.ts';
import { activeFitKernel, assignModes, prepareReferences } from '../../src/core/fit.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { accumulateCheckpoint, addReferences, createChunkSums, createModeSums, fitTable, flatRows, modeFit, type ModeFit } from '../../src/online/kernel.ts';

/** Uniform in [-1, 1); deterministic per seed. */
function rng(seed: number): () => number {
  const u = xorshift32(seed);
  return () => 2 * u() - 1;
}

const snapshot = (k: ChunkKernel) => ({
  sums: { shift: k.sums.shift.slice(), mode: k.sums.mode.slice(), S1: k.sums.S1.slice(), S2: k.sums.S2.slice(), P: k.sums.P.slice() },
  a: k.a.slice(),
  b: k.b.slice(),
  stats: { modeCount: k.stats.modeCount.slice(), r2Sum: k.stats.r2Sum.slice() },
});

describe('WebAssembly online kernel', () => {
  // Odd sizes and odd range boundaries: the SIMD pairs/quads and their one-at-a-time tails.
  for (const M of [3, 300]) {
    it(`the warm-up solve and two update batches are bit-identical to the JavaScript kernels (M = ${M})`, () => {
      const r = rng(M);
      const n = 1003;
      const F = 6;
      const K1 = 4;
      const K2 = 3;
      const T = F + 1 + K1 + K2;
      const w = new Float32Array(T * n).map(() => 5 + r());
      const modes = Array.from({ length: n }, (_, i) => (i * 7) % M);
      // Mode 1 is constant (the pinv branch); the others drift.
      const refRows = Array.from({ length: T }, (_, t) => Float64Array.from({ length: M }, (_, m) => (m === 1 ? 2 : 3 + r() * t)));
      let ms = createModeSums(refRows[0]);
      for (let t = 0; t <= F; t++) ms = addReferences(ms, refRows[t]);
      const fit0 = modeFit(ms);
      const shifted = (row: Float64Array, s: typeof ms) => row.map((v, m) => v - s.shift[m]);
      const rs0 = flatRows(refRows.slice(0, F + 1).map((x) => shifted(x, ms)), M);
      const batches: { fits: ModeFit[]; rs: Float64Array[]; rows: number[] }[] = [];
      for (const [t0, t1] of [[F + 1, F + 1 + K1], [F + 1 + K1, T]]) {
        const b = { fits: [] as ModeFit[], rs: [] as Float64Array[], rows: [] as number[] };
        for (let t = t0; t < t1; t++) {
          ms = addReferences(ms, refRows[t]);
          b.fits.push(modeFit(ms));
          b.rs.push(shifted(refRows[t], ms));
          b.rows.push(t);
        }
        batches.push(b);
      }
      const ranges: [number, number][] = [[0, 401], [401, 402], [402, 1003]];
      // The warm-up sums, accumulated checkpoint by checkpoint.
      const start = createChunkSums(w.subarray(0, n), M > 256 ? Uint16Array.from(modes) : Uint8Array.from(modes));
      for (let t = 0; t <= F; t++) accumulateCheckpoint(start, w, t * n, rs0.subarray(t * M, (t + 1) * M));
      const run = (js: boolean) => {
        setKernel(js ? 'js' : 'auto');
        const k = openChunkKernel(n, Math.max(F + 1, K1), M, M > 256 ? 2 : 1, { float64: false });
        for (const key of ['shift', 'mode', 'S1', 'S2', 'P'] as const) k.sums[key].set(start[key]);
        k.values(F + 1).set(w.subarray(0, (F + 1) * n));
        const out: unknown[] = [k.solveWarmup(F + 1, fit0, refRows[F], ranges), snapshot(k)];
        for (const b of batches) {
          const v = k.values(b.rows.length);
          for (const [j, t] of b.rows.entries()) v.set(w.subarray(t * n, (t + 1) * n), j * n);
          out.push(k.update(flatRows(b.rs, M), flatRows(b.rows.map((t) => refRows[t]), M), fitTable(b.fits), ranges), snapshot(k));
        }
        return out;
      };
      const js = run(true);
      const wasm = run(false);
      expect(wasm).toEqual(js);
      if (M === 3) expect(batches[0].fits[0].constant[1]).toBe(1); // the constant-reference branch is covered
    });
  }

  it('uses WebAssembly for float32 values (the comparison above is not JS against JS)', () => {
    const k = openChunkKernel(10, 2, 3, 1, { float64: false });
    expect(k.values(2).buffer).toBeInstanceOf(ArrayBuffer);
    expect(k.constructor.name).toBe('WasmChunk');
  });
});

describe('shifted sums from the mode assignment (the online warm-up sums)', () => {
  it('equal the sums accumulated checkpoint by checkpoint, also for |mean| ≫ spread, bit-identical with both assignment kernels', () => {
    const r = rng(7);
    const n = 501;
    const T = 9;
    const M = 4;
    const refs = Array.from({ length: M }, (_, m) => Float64Array.from({ length: T }, (_, t) => 10 * m + Math.sin(t + m) + 0.3 * t));
    const w = new Float32Array(T * n);
    for (let i = 0; i < n; i++) {
      // Every third parameter is BatchNorm-like: a large mean with a tiny drift.
      const base = i % 3 === 0 ? 1000 + r() : r();
      const scale = i % 3 === 0 ? 1e-3 : 1;
      for (let t = 0; t < T; t++) w[t * n + i] = base + scale * (refs[i % M][t] * (1 + 0.1 * r()) + 0.05 * r());
    }
    const stats = prepareReferences(Float64Array.from(refs.flatMap((x) => Array.from(x))), M, T);
    const derivedWith = (kernel: 'wasm' | 'js') => {
      const previous = setKernel(kernel);
      try {
        expect(activeFitKernel()).toBe(kernel);
        const sums = createChunkSums(new Float64Array(n), new Uint8Array(n));
        assignModes(w, n, stats, sums.mode, sums);
        return sums;
      } finally {
        setKernel(previous);
      }
    };
    const derived = derivedWith('wasm');
    expect(derivedWith('js')).toEqual(derived);
    let ms = createModeSums(refs.map((x) => x[0]));
    for (let t = 0; t < T; t++) ms = addReferences(ms, refs.map((x) => x[t]));
    const direct = createChunkSums(w.subarray(0, n), derived.mode);
    for (let t = 0; t < T; t++) accumulateCheckpoint(direct, w, t * n, Float64Array.from(refs, (x, m) => x[t] - ms.shift[m]));
    let worst = 0;
    for (const key of ['S1', 'S2', 'P'] as const) {
      for (let i = 0; i < n; i++) {
        const scale = Math.abs(direct[key][i]) + 1e-300;
        worst = Math.max(worst, Math.abs(derived[key][i] - direct[key][i]) / scale);
      }
    }
    expect(Array.from(derived.shift)).toEqual(Array.from(direct.shift));
    expect(new Set(derived.mode).size).toBe(M);
    expect(worst).toBeLessThan(1e-12);
  });
});
