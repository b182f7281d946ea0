import { describe, expect, it } from 'vitest';
import { addReferences, createChunkSums, createModeSums, fitTable, flatRows, initFused, modeFit, updateFused, type ChunkSums, type ModeFit } from '../../src/online/kernel.ts';
import { initWasm, updateWasm } from '../../src/online/wasm/online-kernel.ts';

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32) * 2 - 1;
}

const clone = (s: ChunkSums): ChunkSums => ({ shift: s.shift.slice(), mode: s.mode.slice(), S1: s.S1.slice(), S2: s.S2.slice(), P: s.P.slice() });

describe('WebAssembly online kernel', () => {
  for (const M of [3, 300]) {
    it(`init and update are bit-identical to the JavaScript kernels (M = ${M})`, () => {
      const r = rng(M);
      const n = 1000;
      const F = 6;
      const K = 4;
      const T = F + 1 + K;
      const w = new Float32Array(T * n).map(() => 5 + r());
      const mode = M > 255 ? new Uint16Array(n).map((_, i) => i % M) : new Uint8Array(n).map((_, i) => i % M);
      const refRows = Array.from({ length: T }, (_, t) => Float64Array.from({ length: M }, (_, m) => (m === 1 ? 2 : 3 + r() * t)));
      let ms = createModeSums(refRows[0]);
      for (let t = 0; t <= F; t++) ms = addReferences(ms, refRows[t]);
      const fit0 = modeFit(ms);
      const shifted = (row: Float64Array, s: typeof ms) => row.map((v, m) => v - s.shift[m]);
      const rs0 = flatRows(refRows.slice(0, F + 1).map((x) => shifted(x, ms)), M);
      const ranges: [number, number][] = [[0, 400], [400, 1000]];
      const stats = () => ({ modeCount: new Float64Array(M), r2Sum: new Float64Array(M) });

      const jsSums = createChunkSums(w.subarray(0, n), mode);
      const jsA = new Float64Array(n), jsB = new Float64Array(n), jsStats = stats();
      const jsErr: number[][] = [];
      for (const [i0, i1] of ranges) {
        const err = new Float64Array(2);
        initFused(jsSums, w, 0, n, F + 1, rs0, fit0, refRows[F], jsA, jsB, i0, i1, err, jsStats);
        jsErr.push(Array.from(err));
      }
      const wSums = createChunkSums(new Float32Array(n), mode);
      const wA = new Float64Array(n), wB = new Float64Array(n), wStats = stats();
      const wErr: number[][] = [];
      expect(initWasm(wSums, w.subarray(0, (F + 1) * n), n, F + 1, rs0, fit0, refRows[F], wA, wB, ranges, wStats, (_, e, q) => wErr.push([e, q]))).toBe(true);
      expect(wSums).toEqual(jsSums);
      expect([wA, wB, wStats, wErr]).toEqual([jsA, jsB, jsStats, jsErr]);

      const fits: ModeFit[] = [];
      const rsRows: Float64Array[] = [];
      for (let t = F + 1; t < T; t++) {
        ms = addReferences(ms, refRows[t]);
        fits.push(modeFit(ms));
        rsRows.push(shifted(refRows[t], ms));
      }
      const table = fitTable(fits);
      const rs = flatRows(rsRows, M);
      const rf = flatRows(refRows.slice(F + 1), M);
      const values = w.slice((F + 1) * n);
      const js2 = clone(jsSums), js2Stats = stats();
      const w2 = clone(wSums), w2Stats = stats();
      const jsOut: number[][] = [];
      for (const [i0, i1] of ranges) {
        const e = new Float64Array(K), q = new Float64Array(K);
        updateFused(js2, values, 0, n, rs, rf, table, jsA, jsB, i0, i1, e, q, js2Stats);
        jsOut.push([...e, ...q]);
      }
      const wOut: number[][] = [];
      expect(updateWasm(w2, values, n, rs, rf, table, wA, wB, ranges, w2Stats, (_, e, q) => wOut.push([...e, ...q]))).toBe(true);
      expect(w2).toEqual(js2);
      expect([wA, wB, w2Stats, wOut]).toEqual([jsA, jsB, js2Stats, jsOut]);
      if (M === 3) expect(fits[0].constant[1]).toBe(1); // the constant-reference branch is covered
    });
  }
});
