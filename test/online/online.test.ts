/**
 * Online CMD: the running-sums a(t), b(t) against an independent least-squares solve on the raw
 * values over 0..t (same frozen modes and references), at every checkpoint after warm-up; the
 * final model against the post-hoc fixed-mode fit; crash recovery of the on-disk state.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { Matrix, pseudoInverse } from 'ml-matrix';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpointSet, type CheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { createAccumulators, fitFixedModes, prepareReferences } from '../../src/core/fit.ts';
import { writeSafetensors } from '../../src/formats/safetensors.ts';
import { openCmdModel } from '../../src/output/model-reader.ts';
import { MODEL_FILE } from '../../src/pipeline/model-file.ts';
import { TrajectoryReader } from '../../src/trajectory/trajectory-reader.ts';
import { planTrajectory } from '../../src/trajectory/plan-trajectory.ts';
import { OnlineEngine } from '../../src/online/engine.ts';
import { createChunkSums, accumulateCheckpoint, createModeSums, addReferences, modeFit, solveChunk } from '../../src/online/kernel.ts';
import { reconstruct } from '../../src/run/reconstruct.ts';
import { newCheckpoint, onlineAnalysis, onlineOptions } from '../../src/online/run-online.ts';
import { readReport } from '../../src/output/report.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

/** All values, checkpoint-major: v[t·N + i]. */
function readAll(set: CheckpointSet): Float64Array {
  const N = set.space.total;
  const T = set.checkpoints.length;
  const v = new Float64Array(N * T);
  const r = new TrajectoryReader(planTrajectory(set));
  r.readRange(0, N, v, 0, T);
  r.close();
  return v;
}

/**
 * The reference solve: for each mode, the Moore–Penrose pseudo-inverse (SVD, ml-matrix) of the
 * design matrix X = [r_m(s), 1], s = 0..t, applied to each member's raw values w_i(0..t). The
 * published formula takes pinv of the Gram matrix XᵀX with rcond 1e-15; its singular values are
 * X's squared, so the same truncation on X is σ₂ ≤ sqrt(1e-15)·σ₁ (ml-matrix scales its threshold
 * by max(rows, cols)).
 */
function directFit(values: Float64Array, N: number, t: number, refIndex: number[], mode: ArrayLike<number>): { a: Float64Array; b: Float64Array } {
  const pinvs = refIndex.map((g) => {
    const X = new Matrix(t + 1, 2);
    for (let s = 0; s <= t; s++) {
      X.set(s, 0, values[s * N + g]);
      X.set(s, 1, 1);
    }
    return pseudoInverse(X, Math.sqrt(1e-15) / Math.max(t + 1, 2)).to2DArray();
  });
  const a = new Float64Array(N);
  const b = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const P = pinvs[mode[i]];
    let sa = 0;
    let sb = 0;
    for (let s = 0; s <= t; s++) {
      const w = values[s * N + i];
      sa += P[0][s] * w;
      sb += P[1][s] * w;
    }
    a[i] = sa;
    b[i] = sb;
  }
  return { a, b };
}

/**
 * Largest error of the online model against the direct solve, relative to the size of what
 * the coefficient contributes: |Δa|·(|r̄| + sd(r)) + |Δb| over |a|·(|r̄| + sd(r)) + |b| + sd(w).
 * A plain |Δa|/|a| is meaningless for a ≈ 0 (an uncorrelated parameter).
 */
function worstRelative(values: Float64Array, N: number, t: number, refIndex: number[], mode: ArrayLike<number>, online: { a: Float64Array; b: Float64Array }, direct: { a: Float64Array; b: Float64Array }): number {
  const stat = (g: number) => {
    let s = 0;
    let q = 0;
    for (let k = 0; k <= t; k++) s += values[k * N + g];
    const mean = s / (t + 1);
    for (let k = 0; k <= t; k++) q += (values[k * N + g] - mean) ** 2;
    return { mean, sd: Math.sqrt(q / (t + 1)) };
  };
  const refScale = refIndex.map((g) => {
    const { mean, sd } = stat(g);
    return Math.abs(mean) + sd;
  });
  let worst = 0;
  for (let i = 0; i < N; i++) {
    const rs = refScale[mode[i]];
    const num = Math.abs(online.a[i] - direct.a[i]) * rs + Math.abs(online.b[i] - direct.b[i]);
    const den = Math.abs(direct.a[i]) * rs + Math.abs(direct.b[i]) + stat(i).sd;
    if (den === 0) {
      if (num !== 0) return Infinity;
      continue;
    }
    worst = Math.max(worst, num / den);
  }
  return worst;
}

async function checkEveryCheckpoint(set: CheckpointSet, F: number, modes: number, samples: number): Promise<{ worst: number[]; engine: OnlineEngine; values: Float64Array }> {
  const T = set.checkpoints.length;
  const N = set.space.total;
  const values = readAll(set);
  const dir = tempDir('cmd-online-');
  const opts = onlineOptions({ modes, samples, seed: 0, workers: 1 }, F, undefined, N);
  const { engine } = await OnlineEngine.start(path.join(dir, 'state'), set, { ...opts, chunkSize: 4096 });
  const worst: number[] = [];
  for (let t = F; t < T; t++) {
    if (t > F) await engine.apply(newCheckpoint(set, set.checkpoints[t]));
    expect(engine.commit.t).toBe(t);
    const online = engine.coefficients();
    const direct = directFit(values, N, t, engine.meta.refIndex, online.mode);
    worst.push(worstRelative(values, N, t, engine.meta.refIndex, online.mode, online, direct));
  }
  return { worst, engine, values };
}

describe('online CMD on real data (LeNet-5 / Fashion-MNIST, 25 checkpoints, F = 10)', () => {
  let set: CheckpointSet;
  beforeAll(async () => {
    set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'));
  });

  it('a(t), b(t) equal a direct least-squares solve over 0..t at every t ≥ F', async () => {
    const { worst, engine, values } = await checkEveryCheckpoint(set, 10, 10, 1000);
    try {
      expect(worst).toHaveLength(25 - 10);
      for (const w of worst) expect(w).toBeLessThan(1e-9);

      // The final online model equals a post-hoc fit over 0..T−1 with modes and references frozen at F.
      const N = set.space.total;
      const T = set.checkpoints.length;
      const M = engine.meta.M;
      const refs = new Float64Array(M * T);
      engine.meta.refIndex.forEach((g, m) => {
        for (let t = 0; t < T; t++) refs[m * T + t] = values[t * N + g];
      });
      const online = engine.coefficients();
      const out = { a: new Float64Array(N), b: new Float64Array(N), mode: new Uint16Array(N) };
      fitFixedModes(values, N, prepareReferences(refs, M, T), online.mode, 0, out, createAccumulators(M, T));
      let worstA = 0;
      for (let i = 0; i < N; i++) {
        const scale = Math.abs(out.a[i]) + Math.abs(out.b[i]) + 1e-30;
        worstA = Math.max(worstA, (Math.abs(out.a[i] - online.a[i]) + Math.abs(out.b[i] - online.b[i])) / scale);
      }
      expect(worstA).toBeLessThan(1e-9);
    } finally {
      await engine.close();
    }
  });

  it('analyze --online writes the final online model, its report and the same numbers with any worker count', async () => {
    const one = tempDir('cmd-online-a-');
    const two = tempDir('cmd-online-b-');
    const F = 10;
    const N = set.space.total;
    const r1 = await onlineAnalysis(set, { ...onlineOptions({ modes: 10, samples: 1000, seed: 0, workers: 1 }, F, undefined, N), chunkSize: 10_000 }, one, { positions: new Set([15]), dir: path.join(one, 'snap') });
    const r2 = await onlineAnalysis(set, { ...onlineOptions({ modes: 10, samples: 1000, seed: 0, workers: 2 }, F, undefined, N), chunkSize: 10_000 }, two);
    const bytes1 = await fsp.readFile(path.join(one, MODEL_FILE));
    const bytes2 = await fsp.readFile(path.join(two, MODEL_FILE));
    expect(Buffer.compare(bytes1, bytes2)).toBe(0);
    expect(r1.report.checkpoints).toEqual(r2.report.checkpoints);
    expect(r1.report.method.variant).toBe('online');
    expect(r1.report.method.warmup).toBe(F);
    expect(r1.report.checkpoints.slice(0, F).every((c) => c.relativeError === 0)).toBe(true);
    expect(r1.report.checkpoints.slice(F).every((c) => typeof c.relativeError === 'number' && c.relativeError > 0 && c.relativeError < 0.5)).toBe(true);
    // State and warm-up scratch are gone; the model says what it is (run-info.json is the run layer's).
    expect((await fsp.readdir(one)).sort()).toEqual(['cmd-model.safetensors', 'report.json', 'sampled-corr.npy', 'samples.json', 'snap'].sort());
    const model = await openCmdModel(path.join(one, MODEL_FILE));
    try {
      expect(model.params.variant).toBe('online');
      expect(model.params.warmup).toBe(F);
      expect(model.params.window).toEqual({ from: 0, to: 25 });
      expect(model.checkpoints).toHaveLength(25);
      // The stored error at the last checkpoint is the one this model gives (float32 a, b).
      const values = readAll(set);
      const t = 24;
      let e = 0;
      let w = 0;
      let seen = 0;
      for (const ten of set.space.tensors) {
        const a = new Float32Array(ten.count);
        const b = new Float32Array(ten.count);
        const m = new Float64Array(ten.count);
        model.read(ten.name, 'a', 0, ten.count, a);
        model.read(ten.name, 'b', 0, ten.count, b);
        model.read(ten.name, 'mode', 0, ten.count, m);
        for (let i = 0; i < ten.count; i++) {
          const x = values[t * set.space.total + ten.offset + i];
          const r = model.refs[m[i] * 25 + t];
          e += (x - (a[i] * r + b[i])) ** 2;
          w += x * x;
          seen++;
        }
      }
      expect(seen).toBe(N);
      expect(Math.sqrt(e / w)).toBeCloseTo(r1.report.checkpoints[t].relativeError as number, 6);
    } finally {
      model.close();
    }
    // The snapshot at position 15 is the online model fitted on 0..15.
    const snap = await openCmdModel(r1.snapshots.get(15)!);
    try {
      expect(snap.params.window).toEqual({ from: 0, to: 16 });
      expect(snap.refs.length).toBe(snap.params.modes * 16);
    } finally {
      snap.close();
    }
  });
});

describe('online CMD on a synthetic trajectory (float32 + float64 tensors, |mean| ≫ spread, constant parameters)', () => {
  it('a(t), b(t) equal a direct least-squares solve over 0..t at every t ≥ F', async () => {
    const dir = tempDir('cmd-online-syn-');
    const T = 12;
    let seed = 12345;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31 - 0.5;
    };
    const latent = [0, 1, 2].map((k) => Array.from({ length: T }, (_, t) => Math.exp(-t / (3 + 2 * k)) * (k + 1) + 0.1 * Math.sin(t * (k + 1))));
    const W = Array.from({ length: 600 }, () => ({ k: Math.floor((rand() + 0.5) * 3), a: rand() * 2, b: rand(), noise: 0.01 * rand() }));
    const V = Array.from({ length: 32 }, () => ({ k: Math.floor((rand() + 0.5) * 3), a: 0.5 * rand(), b: 1000 + 10 * rand() }));
    const D = Array.from({ length: 40 }, () => ({ k: Math.floor((rand() + 0.5) * 3), a: rand(), b: rand() }));
    const C = Array.from({ length: 16 }, () => rand());
    for (let t = 0; t < T; t++) {
      const w = Float32Array.from(W, (p, i) => p.a * latent[p.k][t] + p.b + p.noise * Math.cos(t * 7 + i));
      const v = Float32Array.from(V, (p, i) => p.a * latent[p.k][t] + p.b + 1e-4 * Math.sin(t + i));
      const d = Float64Array.from(D, (p, i) => p.a * latent[p.k][t] + p.b + 1e-3 * Math.cos(3 * t + i));
      const c = Float32Array.from(C);
      await writeSafetensors(path.join(dir, `step_${String(t + 1).padStart(3, '0')}.safetensors`), [
        { name: 'layer.weight', dtype: 'F32', shape: [20, 30], data: new Uint8Array(w.buffer) },
        { name: 'bn.running_var', dtype: 'F32', shape: [32], data: new Uint8Array(v.buffer) },
        { name: 'head.weight', dtype: 'F64', shape: [40], data: new Uint8Array(d.buffer) },
        { name: 'frozen.bias', dtype: 'F32', shape: [16], data: new Uint8Array(c.buffer) },
      ]);
    }
    const set = await loadCheckpointSet(dir);
    expect(set.checkpoints).toHaveLength(T);
    const { worst, engine, values } = await checkEveryCheckpoint(set, 4, 3, 200);
    try {
      expect(worst).toHaveLength(T - 4);
      for (const w of worst) expect(w).toBeLessThan(1e-9);
      // Constant parameters are reproduced exactly: a = 0, b = the constant.
      const { a, b } = engine.coefficients();
      const frozen = set.space.tensors.find((t) => t.name === 'frozen.bias')!;
      for (let i = 0; i < frozen.count; i++) {
        expect(a[frozen.offset + i]).toBe(0);
        expect(b[frozen.offset + i]).toBe(values[frozen.offset + i]);
      }
    } finally {
      await engine.close();
    }
  });
});

describe('online kernel', () => {
  it('a constant reference gives numpy pinv’s minimum-norm solution (c = 2, x = 0..9 → a = 1.8, b = 0.9)', () => {
    let modes = createModeSums([2]);
    const sums = createChunkSums([0], new Uint8Array(1));
    for (let t = 0; t < 10; t++) {
      modes = addReferences(modes, [2]);
      accumulateCheckpoint(sums, [t], 0, Float64Array.of(2 - 2));
    }
    const a = new Float64Array(1);
    const b = new Float64Array(1);
    const fit = modeFit(modes);
    expect(fit.constant[0]).toBe(1);
    solveChunk(sums, fit, a, b);
    expect(a[0]).toBeCloseTo(1.8, 12);
    expect(b[0]).toBeCloseTo(0.9, 12);
  });
});

describe('online run ending at the warm-up (F = T − 1)', () => {
  it('the one-pass run and the engine with state write the same model and errors', async () => {
    const set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'), { to: 6 });
    const F = set.checkpoints.length - 1;
    const opts = { ...onlineOptions({ modes: 4, samples: 200, seed: 2, workers: 2 }, F, undefined, set.space.total), chunkSize: 9000 };
    const a = tempDir('cmd-online-endF-a-');
    const b = tempDir('cmd-online-endF-b-');
    const onePass = await onlineAnalysis(set, opts, a);
    // A snapshot position makes the run keep its state and step (here: only the warm-up).
    const withState = await onlineAnalysis(set, opts, b, { positions: new Set([F]), dir: path.join(b, 'snap') });
    expect(Buffer.compare(await fsp.readFile(path.join(a, MODEL_FILE)), await fsp.readFile(path.join(b, MODEL_FILE)))).toBe(0);
    expect(onePass.report.checkpoints).toEqual(withState.report.checkpoints);
    expect(onePass.report.modes).toEqual(withState.report.modes);
    expect(onePass.report.checkpoints[F].relativeError).toBeGreaterThan(0);
  });
});

describe('online state on disk', () => {
  it('a crash mid-update leaves the committed state; resuming gives the same model as an uninterrupted run', async () => {
    const set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'), { to: 8 });
    const F = 4;
    const N = set.space.total;
    const opts = { ...onlineOptions({ modes: 5, samples: 300, seed: 1, workers: 1 }, F, undefined, N), chunkSize: 8192 };
    const a = tempDir('cmd-online-crash-');
    const { engine } = await OnlineEngine.start(path.join(a, 'state'), set, opts);
    await engine.apply(newCheckpoint(set, set.checkpoints[5]));
    // Simulate a crash while checkpoint 6 was being added: half-written next-generation files, no commit.
    const stateDir = path.join(a, 'state');
    await fsp.writeFile(path.join(stateDir, 'sums-0.t6.bin'), Buffer.alloc(100, 7));
    await fsp.writeFile(path.join(stateDir, '.commit.json.1.abcd.tmp'), '{"t": 6');
    await engine.close();
    const resumed = (await OnlineEngine.resume(stateDir, { workers: 1 }))!;
    expect(resumed.commit.t).toBe(5);
    expect((await fsp.readdir(stateDir)).filter((f) => f.includes('.t6.') || f.endsWith('.tmp'))).toEqual([]);
    for (let t = 6; t < 8; t++) await resumed.apply(newCheckpoint(set, set.checkpoints[t]));
    await resumed.writeModel(path.join(a, 'model.safetensors'));
    await resumed.close();

    const b = tempDir('cmd-online-nocrash-');
    const run = await onlineAnalysis(set, opts, b);
    expect(run.report.checkpoints).toHaveLength(8);
    expect(Buffer.compare(await fsp.readFile(path.join(a, 'model.safetensors')), await fsp.readFile(path.join(b, MODEL_FILE)))).toBe(0);
  });
});

describe('reconstruct --online', () => {
  it('writes the online model at each chosen checkpoint (the checkpoint itself before F), with the reported error', async () => {
    const set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'), { to: 8 });
    const out = path.join(tempDir('cmd-online-rec-'), 'out');
    await reconstruct(fixture('lenet5-fmnist', 'npz'), { to: 8, online: true, out, modes: 5, samples: 300, seed: 0, workers: 1, warmup: 4, checkpoints: '3,6,8', outputFormat: 'same', avgLast: 0 });
    const report = await readReport(path.join(out, 'report.json'));
    expect(report.outputs.reconstructed).toEqual(['reconstructed/epoch_003.npz', 'reconstructed/epoch_006.npz', 'reconstructed/epoch_008.npz']);
    const rec = await loadCheckpointSet(path.join(out, 'reconstructed'));
    const N = set.space.total;
    const original = readAll(set);
    const written = readAll(rec);
    [2, 5, 7].forEach((p, k) => {
      let e = 0;
      let w = 0;
      for (let i = 0; i < N; i++) {
        const x = original[p * N + i];
        e += (written[k * N + i] - x) ** 2;
        w += x * x;
      }
      const expected = report.checkpoints[p].relativeError as number;
      if (p < 4) expect(e).toBe(0);
      else expect(Math.sqrt(e / w)).toBeCloseTo(expected, 5);
      if (p >= 4) expect(expected).toBeGreaterThan(0);
    });
  });
});
