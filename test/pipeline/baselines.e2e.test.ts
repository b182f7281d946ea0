/**
 * Baselines in the same pass as CMD (`--baselines`): they appear in the report beside CMD, and
 * their numbers match a direct computation on the whole (small, real) trajectory.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { TrajectoryReader } from '../../src/trajectory/trajectory-reader.ts';
import { planTrajectory } from '../../src/trajectory/plan-trajectory.ts';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

describe('--baselines', () => {
  it('runs the cheap baselines alone, without the Gram matrix', () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(['analyze', fixture('lenet5-fmnist', 'npz'), '-o', out, '--to', '6', '--samples', '300', '--modes', '4', '--baselines', 'avg-last-k,ema', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.baselines.map((b: { name: string }) => b.name)).toEqual(['avg-last-5', 'ema-0.9']);
  });

  it('reports avg-last-k, EMA, PCA and DMD beside CMD, matching direct computations', async () => {
    const out = path.join(tempDir(), 'out');
    const input = fixture('lenet5-fmnist', 'npz');
    const r = runCli(['analyze', input, '-o', out, '--to', '12', '--samples', '500', '--modes', '5', '--baselines', 'all', '--avg-last', '3', '--ema-beta', '0.8', '--chunk-size', '7000', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    const names = report.baselines.map((b: { name: string }) => b.name);
    expect(names).toEqual(expect.arrayContaining(['avg-last-3', 'ema-0.8', 'pca-rank-5', 'dmd-rank-5']));
    expect(names.some((n: string) => n.startsWith('pca-same-storage-rank-'))).toBe(true);

    // The whole trajectory (12 × 61,706 values) read directly.
    const set = await loadCheckpointSet(input, { to: 12 });
    const T = 12;
    const N = set.space.total;
    const W = new Float64Array(T * N);
    const reader = new TrajectoryReader(planTrajectory(set));
    reader.readRange(0, N, W);
    reader.close();
    const avg = new Float64Array(N);
    for (let t = T - 3; t < T; t++) for (let i = 0; i < N; i++) avg[i] += W[t * N + i] / 3;
    const ema = Float64Array.from(W.subarray(0, N));
    const normSq: number[] = [];
    const byName = (n: string) => report.baselines.find((b: { name: string }) => b.name === n);
    for (let t = 0; t < T; t++) {
      let e = 0;
      let w = 0;
      let ee = 0;
      if (t > 0) for (let i = 0; i < N; i++) ema[i] = 0.8 * ema[i] + 0.2 * W[t * N + i];
      for (let i = 0; i < N; i++) {
        const x = W[t * N + i];
        e += (x - avg[i]) ** 2;
        ee += (x - ema[i]) ** 2;
        w += x * x;
      }
      normSq.push(w);
      expect(byName('avg-last-3').checkpoints[t].relativeError).toBeCloseTo(Math.sqrt(e / w), 9);
      expect(byName('ema-0.8').checkpoints[t].relativeError).toBeCloseTo(Math.sqrt(ee / w), 9);
      expect(byName('ema-0.8').checkpoints[t].step).toBe(t + 1);
    }
    // PCA at rank M is the best rank-M-plus-offset fit, and CMD is one such fit: its total error is no larger.
    const total = (series: { relativeError: number }[]) => series.reduce((s, c, t) => s + c.relativeError ** 2 * normSq[t], 0);
    expect(total(byName('pca-rank-5').checkpoints)).toBeLessThanOrEqual(total(report.checkpoints) * (1 + 1e-9));
    expect(total(byName('pca-rank-5').checkpoints)).toBeGreaterThan(0);
    for (const b of report.baselines) for (const c of b.checkpoints) expect(Number.isFinite(c.relativeError)).toBe(true);
    // The PCA and DMD final models, as weights over the checkpoints, reproduce their reported
    // error at the last checkpoint when built from the raw trajectory.
    for (const name of ['pca-rank-5', 'dmd-rank-5']) {
      const w = byName(name).finalWeights as number[];
      expect(w).toHaveLength(T);
      let e = 0;
      let n = 0;
      for (let i = 0; i < N; i++) {
        let x = 0;
        for (let s = 0; s < T; s++) x += w[s] * W[s * N + i];
        const y = W[(T - 1) * N + i];
        e += (y - x) ** 2;
        n += y * y;
      }
      expect(Math.sqrt(e / n)).toBeCloseTo(byName(name).checkpoints[T - 1].relativeError, 6);
    }
  });
});
