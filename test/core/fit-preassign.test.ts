/**
 * The float32 pre-pass of the mode choice (docs/performance.md, "Float32 pre-pass"): parameters
 * whose best and second-best |ρ| are closer than the proven bound fall back to the float64 path,
 * the others take the float32 choice and the chosen mode's float64 cross sum. Either way modes,
 * a, b and R² must be bit-identical to the JavaScript kernel, which has no pre-pass.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { createAccumulators, fitAssign, preassignStats, prepareReferences, type ReferenceStats } from '../../src/core/fit.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { createRng } from '../../src/core/rng.ts';

function walks(seed: number, M: number, T: number): Float64Array {
  const rng = createRng(seed);
  const refs = new Float64Array(M * T);
  for (let m = 0; m < M; m++) {
    let x = 0;
    for (let t = 0; t < T; t++) refs[m * T + t] = x += rng.nextFloat() - 0.5;
  }
  return refs;
}

/** Unit-variance centred copy of reference m. */
function unit(refs: Float64Array, m: number, T: number): Float64Array {
  const r = refs.subarray(m * T, (m + 1) * T);
  const mean = r.reduce((s, x) => s + x, 0) / T;
  const sd = Math.sqrt(r.reduce((s, x) => s + (x - mean) ** 2, 0) / T);
  return r.map((x) => (x - mean) / sd);
}

/**
 * n parameters, checkpoint-major: the first `clear` follow one reference plus noise; the rest are
 * near-ties, scale·(u_a + (1 + ε)·u_b) with ε from 1e-2 down to 1e-9, so |ρ_a| and |ρ_b| differ by
 * about ε (below float32 resolution for the smallest).
 */
function values(seed: number, refs: Float64Array, M: number, T: number, n: number, clear: number, scale: number): Float32Array {
  const rng = createRng(seed);
  const v = new Float32Array(T * n);
  const units = Array.from({ length: M }, (_, m) => unit(refs, m, T));
  for (let i = 0; i < n; i++) {
    const base = (rng.nextFloat() - 0.5) * scale;
    const a = Math.floor(rng.nextFloat() * M);
    if (i < clear) {
      for (let t = 0; t < T; t++) v[t * n + i] = base + scale * 0.1 * (units[a][t] + 0.3 * (rng.nextFloat() - 0.5));
    } else {
      const b = (a + 1 + Math.floor(rng.nextFloat() * (M - 1))) % M;
      const eps = (rng.nextFloat() < 0.5 ? -1 : 1) * 10 ** -(2 + Math.floor(rng.nextFloat() * 8));
      for (let t = 0; t < T; t++) v[t * n + i] = base + scale * 0.1 * (units[a][t] + (1 + eps) * units[b][t]);
    }
  }
  return v;
}

function run(kernel: 'wasm' | 'js', v: Float32Array, n: number, stats: ReferenceStats) {
  setKernel(kernel);
  const out = { mode: new Uint8Array(n), a: new Float64Array(n), b: new Float64Array(n), r2: new Float64Array(n) };
  const acc = createAccumulators(stats.M, stats.T);
  fitAssign(v, n, stats, out, acc);
  return { out, acc };
}

describe('float32 pre-pass of the mode choice', () => {
  afterEach(() => setKernel('auto'));

  for (const [M, T, scale] of [[10, 40, 1], [20, 25, 1e-3], [10, 40, 1e-36], [12, 40, 1e15], [9, 300, 1], [10, 40, 1e25]] as const) {
    it(`settles clear parameters, falls back on near-ties, and matches the float64 kernel: M = ${M}, T = ${T}, scale ${scale}`, () => {
      const n = 4000;
      const refs = walks(M * 100 + T, M, T);
      const stats = prepareReferences(refs, M, T);
      const v = values(M + T, refs, M, T, n, 2000, scale);
      const before = preassignStats();
      const wasm = run('wasm', v, n, stats);
      const after = preassignStats();
      const js = run('js', v, n, stats);
      expect(Array.from(wasm.out.mode)).toEqual(Array.from(js.out.mode));
      expect(Array.from(wasm.out.a)).toEqual(Array.from(js.out.a));
      expect(Array.from(wasm.out.b)).toEqual(Array.from(js.out.b));
      expect(Array.from(wasm.out.r2)).toEqual(Array.from(js.out.r2));
      expect(Array.from(wasm.acc.modeCount)).toEqual(Array.from(js.acc.modeCount));
      expect(Array.from(wasm.acc.r2Sum)).toEqual(Array.from(js.acc.r2Sum));
      // Both paths ran: blocks of clear parameters settled, blocks of near-ties fell back.
      const blocks = after.blocks - before.blocks;
      const fallbacks = after.fallbackBlocks - before.fallbackBlocks;
      expect(blocks).toBeGreaterThan(0);
      expect(fallbacks).toBeGreaterThan(0);
      // Beyond ‖z‖ = 1e20 nothing settles (the bound's range condition): all float64.
      if (scale > 1e20) expect(fallbacks).toBe(blocks);
      else expect(fallbacks).toBeLessThan(blocks);
      // The near-ties really are ties in float32 terms: many land on either of their two modes.
      expect(new Set(wasm.out.mode.subarray(2000)).size).toBeGreaterThan(1);
    });
  }

  it('is not used below 8 modes (the float64 cross sums are cheaper there)', () => {
    const M = 5, T = 40, n = 500;
    const refs = walks(5, M, T);
    const stats = prepareReferences(refs, M, T);
    const before = preassignStats();
    run('wasm', values(1, refs, M, T, n, 250, 1), n, stats);
    expect(preassignStats().blocks).toBe(before.blocks);
  });
});
