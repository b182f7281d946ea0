/**
 * fitAssignFromSource: the WebAssembly kernel's panels filled by a source (in the pipeline,
 * positioned reads straight from the checkpoints, docs/performance.md) instead of copied from a
 * chunk buffer. Same panel contents, so modes, a, b and every accumulated sum must be
 * bit-identical to fitAssign on the same values — including chunks of several panels, a last
 * partial block, M below and above the float32 pre-pass threshold, and a constant parameter.
 * assignModesFromSource (the online warm-up) likewise against assignModes: modes and shifted sums.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { assignModes, assignModesFromSource, createAccumulators, fitAssign, fitAssignFromSource, prepareReferences } from '../../src/core/fit.ts';
import { setKernel } from '../../src/core/kernel-choice.ts';
import { createRng } from '../../src/core/rng.ts';

function chunk(seed: number, M: number, T: number, n: number): { refs: Float64Array; values: Float32Array } {
  const rng = createRng(seed);
  const refs = new Float64Array(M * T);
  for (let m = 0; m < M; m++) {
    let x = 0;
    for (let t = 0; t < T; t++) refs[m * T + t] = x += rng.nextFloat() - 0.5;
  }
  const values = new Float32Array(T * n);
  for (let i = 0; i < n; i++) {
    const m = i % M;
    const a = (rng.nextFloat() - 0.5) * 0.2;
    const b = rng.nextFloat() - 0.5;
    for (let t = 0; t < T; t++) values[t * n + i] = i === 7 ? 0.25 : a * refs[m * T + t] + b + 0.02 * (rng.nextFloat() - 0.5);
  }
  return { refs, values };
}

function run(values: Float32Array, n: number, refs: Float64Array, M: number, T: number, fromSource: boolean) {
  const stats = prepareReferences(refs, M, T);
  const out = { mode: new Uint8Array(n), a: new Float32Array(n), b: new Float32Array(n) };
  const acc = createAccumulators(M, T);
  let calls = 0;
  if (fromSource) {
    const used = fitAssignFromSource(
      (p0, pw, into, at, stride) => {
        calls++;
        for (let t = 0; t < T; t++) into.set(values.subarray(t * n + p0, t * n + p0 + pw), at + t * stride);
      },
      n,
      stats,
      out,
      acc,
    );
    expect(used).toBe(true);
  } else fitAssign(values, n, stats, out, acc);
  return { out, acc, calls };
}

describe('fitAssignFromSource', () => {
  afterEach(() => setKernel('auto'));

  for (const [M, T, n] of [
    [10, 40, 20_003],
    [3, 25, 30_001],
    [20, 7, 160_000],
  ] as const) {
    it(`M = ${M}, T = ${T}, n = ${n}: bit-identical to fitAssign`, () => {
      const { refs, values } = chunk(M * 100 + T, M, T, n);
      const a = run(values, n, refs, M, T, false);
      const b = run(values, n, refs, M, T, true);
      expect(b.calls).toBeGreaterThan(1); // several panels
      const same = (x: ArrayBufferView, y: ArrayBufferView) => Buffer.compare(Buffer.from(x.buffer, x.byteOffset, x.byteLength), Buffer.from(y.buffer, y.byteOffset, y.byteLength));
      expect(same(b.out.mode, a.out.mode)).toBe(0);
      expect(same(b.out.a, a.out.a)).toBe(0);
      expect(same(b.out.b, a.out.b)).toBe(0);
      for (const k of ['errSq', 'normSq', 'modeCount', 'r2Sum'] as const) expect(Array.from(b.acc[k])).toEqual(Array.from(a.acc[k]));
    });
  }

  it('declines (returns false, calls nothing) on the JavaScript kernel', () => {
    setKernel('js');
    const { refs, values } = chunk(1, 4, 10, 100);
    const stats = prepareReferences(refs, 4, 10);
    let calls = 0;
    const used = fitAssignFromSource(() => calls++, 100, stats, { mode: new Uint8Array(100), a: new Float32Array(100), b: new Float32Array(100) }, createAccumulators(4, 10));
    expect(used).toBe(false);
    expect(calls).toBe(0);
    expect(values.length).toBe(1000);
  });
});

describe('assignModesFromSource', () => {
  afterEach(() => setKernel('auto'));

  for (const [M, T, n] of [
    [10, 21, 40_003],
    [3, 6, 100_001],
  ] as const) {
    it(`M = ${M}, T = ${T}, n = ${n}: modes and shifted sums bit-identical to assignModes`, () => {
      const { refs, values } = chunk(M * 1000 + T, M, T, n);
      const stats = prepareReferences(refs, M, T);
      const sums = () => ({ shift: new Float64Array(n), S1: new Float64Array(n), S2: new Float64Array(n), P: new Float64Array(n) });
      const copied = { mode: new Uint16Array(n), sums: sums() };
      assignModes(values, n, stats, copied.mode, copied.sums);
      const direct = { mode: new Uint16Array(n), sums: sums() };
      let calls = 0;
      const used = assignModesFromSource(
        (p0, pw, into, at, stride) => {
          calls++;
          for (let t = 0; t < T; t++) into.set(values.subarray(t * n + p0, t * n + p0 + pw), at + t * stride);
        },
        n,
        stats,
        direct.mode,
        direct.sums,
      );
      expect(used).toBe(true);
      expect(calls).toBeGreaterThan(1);
      expect(Buffer.from(direct.mode.buffer).equals(Buffer.from(copied.mode.buffer))).toBe(true);
      for (const k of ['shift', 'S1', 'S2', 'P'] as const) expect(Buffer.from(direct.sums[k].buffer).equals(Buffer.from(copied.sums[k].buffer)), k).toBe(true);
      // A parameter of each mode at least: the test covers every mode's constants.
      expect(new Set(direct.mode).size).toBe(M);
    });
  }

  it('declines on the JavaScript kernel', () => {
    setKernel('js');
    const stats = prepareReferences(chunk(2, 4, 10, 10).refs, 4, 10);
    const s = { shift: new Float64Array(10), S1: new Float64Array(10), S2: new Float64Array(10), P: new Float64Array(10) };
    expect(assignModesFromSource(() => expect.unreachable(), 10, stats, new Uint8Array(10), s)).toBe(false);
  });
});
