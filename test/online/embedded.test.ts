/**
 * Embedded-CMD simulation: the chunked, on-disk replay of the published freezing schedule
 * against a straightforward in-memory implementation (full N × T matrix, direct centred least
 * squares at every t with the frozen modes, the schedule written out literally as
 * train_cmd.py does it: max(diff)+1 for E, argsort, ceil(tot·(P/100)), references removed).
 */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpointSet, type CheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { OnlineEngine } from '../../src/online/engine.ts';
import { EmbeddedSimulation, embedCount, isEmbeddingCheckpoint, roundBytes, type EmbedOptions, type EmbeddedRow } from '../../src/online/embedded.ts';
import { findThreshold, ThresholdSelector, type ValueSource } from '../../src/online/embedded-select.ts';
import { checkEmbedFlags, resolveEmbedOptions } from '../../src/online/embedded-flags.ts';
import { newCheckpoint, onlineOptions } from '../../src/online/run-online.ts';
import { RunReportSchema } from '../../src/output/report-schema.ts';
import { TrajectoryReader } from '../../src/trajectory/trajectory-reader.ts';
import { planTrajectory } from '../../src/trajectory/plan-trajectory.ts';
import { UsageError } from '../../src/errors.ts';
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

/** Centred least squares of every parameter on its mode's reference over checkpoints 0..t. */
function directFit(v: Float64Array, N: number, t: number, refIndex: number[], mode: ArrayLike<number>): { a: Float64Array; b: Float64Array } {
  const n = t + 1;
  const ref = refIndex.map((g) => {
    let s = 0;
    for (let k = 0; k < n; k++) s += v[k * N + g];
    const mean = s / n;
    let q = 0;
    for (let k = 0; k < n; k++) q += (v[k * N + g] - mean) ** 2;
    return { mean, ss: q, g };
  });
  const a = new Float64Array(N);
  const b = new Float64Array(N);
  for (let i = 0; i < N; i++) {
    const R = ref[mode[i]];
    let s = 0;
    for (let k = 0; k < n; k++) s += v[k * N + i];
    const wm = s / n;
    if (R.ss === 0) {
      // pinv minimum-norm solution for a constant reference c: a = c·x̄/(c²+1), b = x̄/(c²+1).
      a[i] = (R.mean * wm) / (R.mean ** 2 + 1);
      b[i] = wm / (R.mean ** 2 + 1);
      continue;
    }
    let c = 0;
    for (let k = 0; k < n; k++) c += (v[k * N + i] - wm) * (v[k * N + R.g] - R.mean);
    a[i] = c / R.ss;
    b[i] = wm - a[i] * R.mean;
  }
  return { a, b };
}

interface DirectRun {
  rows: { t: number; embedding: boolean; pre: number; newly: number; relativeError: number }[];
  /** E after each embedding checkpoint. */
  sets: Map<number, number[]>;
  saved: number;
  /** Smallest relative gap between the last selected and the first unselected diff (how clear-cut each cut was). */
  gaps: number[];
}

/** The schedule of docs/method.md §13 written out literally, on the full matrix. */
function directSchedule(v: Float64Array, N: number, T: number, F: number, refIndex: number[], mode: ArrayLike<number>, o: EmbedOptions): DirectRun {
  const E = new Uint8Array(N);
  const start = directFit(v, N, F, refIndex, mode);
  let aOld = start.a;
  let bOld = start.b;
  const rows: DirectRun['rows'] = [];
  const sets = new Map<number, number[]>();
  const gaps: number[] = [];
  let sumEmbed = 0;
  const sumAll = N * T;
  const count = () => E.reduce((s, x) => s + x, 0);
  for (let t = F + 1; t < T; t++) {
    const { a, b } = directFit(v, N, t, refIndex, mode);
    for (let i = 0; i < N; i++) {
      if (E[i]) {
        a[i] = aOld[i];
        b[i] = bOld[i];
      }
    }
    // w_emb = w(t) with E replaced by a·r + b (a, b restored to the frozen values for E).
    let e = 0;
    let w2 = 0;
    for (let i = 0; i < N; i++) {
      const w = v[t * N + i];
      w2 += w * w;
      if (E[i]) e += (w - (a[i] * v[t * N + refIndex[mode[i]]] + b[i])) ** 2;
    }
    const pre = count();
    const embedding = t % o.window === 0;
    if (embedding) {
      const diff = new Float64Array(N);
      for (let i = 0; i < N; i++) diff[i] = Math.sqrt(Math.abs(aOld[i] - a[i]) ** 2 + Math.abs(bOld[i] - b[i]) ** 2);
      aOld = a.slice();
      bOld = b.slice();
      let mx = -Infinity;
      for (let i = 0; i < N; i++) mx = Math.max(mx, diff[i]);
      for (let i = 0; i < N; i++) if (E[i]) diff[i] = mx + 1;
      const tot = o.relative ? N - pre : N;
      const num = Math.ceil(tot * (o.percent / 100));
      const order = Array.from({ length: N }, (_, i) => i).sort((x, y) => diff[x] - diff[y] || x - y);
      for (const i of order.slice(0, num)) E[i] = 1;
      for (const g of refIndex) E[g] = 0;
      if (num < N && diff[order[num]] < mx + 1) gaps.push((diff[order[num]] - diff[order[num - 1]]) / Math.max(diff[order[num]], 1e-300));
      sets.set(t, Array.from(E.keys()).filter((i) => E[i]));
    }
    const post = count();
    sumEmbed += post;
    rows.push({ t, embedding, pre, newly: post - pre, relativeError: Math.sqrt(e / w2) });
  }
  return { rows, sets, saved: sumEmbed / sumAll, gaps };
}

function mismatches(x: number[], y: number[]): number {
  const sx = new Set(x);
  const sy = new Set(y);
  let bad = 0;
  for (const i of sx) if (!sy.has(i)) bad++;
  for (const i of sy) if (!sx.has(i)) bad++;
  return bad;
}

describe('exact global selection over chunk files', () => {
  it('selects the k smallest (ties by global index) for any k and memory cap', () => {
    let seed = 99;
    const rand = () => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed / 2 ** 31;
    };
    const special = [0, 5e-324, 1e-300, 1, 1 + 2 ** -52, 1 + 2 * 2 ** -52, 2, 1e300, Infinity, NaN];
    const values: number[] = [];
    for (let i = 0; i < 3000; i++) {
      const u = rand();
      if (u < 0.15) values.push(-1);
      else if (u < 0.35) values.push(special[Math.floor(rand() * special.length)]);
      else if (u < 0.6) values.push(Math.floor(rand() * 20) / 7);
      else values.push(rand() * 10 ** Math.floor(rand() * 8 - 4));
    }
    const sizes = [1, 700, 13, 1000, 286, 1000];
    const chunks: Float64Array[] = [];
    let off = 0;
    for (const s of sizes) {
      chunks.push(Float64Array.from(values.slice(off, off + s)));
      off += s;
    }
    expect(off).toBe(values.length);
    const sources: ValueSource[] = chunks.map((c) => ({ count: c.length, read: () => c.slice() }));
    // Expected: candidates ordered by value (NaN last), then index.
    const key = (x: number) => (Number.isNaN(x) ? Infinity : x);
    const cand = values.map((x, i) => ({ x, i })).filter((c) => !(c.x < 0));
    cand.sort((p, q) => (key(p.x) === key(q.x) ? (Number.isNaN(p.x) ? 1 : 0) - (Number.isNaN(q.x) ? 1 : 0) || p.i - q.i : key(p.x) - key(q.x)));
    const C = cand.length;
    for (const cap of [1, 3, 50, 1 << 20]) {
      for (const k of [0, 1, 2, 17, Math.floor(C / 3), Math.floor(C / 2), C - 1, C, C + 10]) {
        const th = findThreshold(sources, k, cap);
        const sel = new ThresholdSelector(th);
        const got: number[] = [];
        let base = 0;
        for (const c of chunks) {
          sel.select(c, (i) => got.push(base + i));
          base += c.length;
        }
        const want = cand
          .slice(0, Math.min(k, C))
          .map((c) => c.i)
          .sort((p, q) => p - q);
        expect(got, `cap ${cap} k ${k}`).toEqual(want);
        expect(th.selected).toBe(Math.min(k, C));
      }
    }
    // A small cap forces the deeper digit passes.
    expect(findThreshold(sources, Math.floor(C / 2), 1).passes).toBeGreaterThan(findThreshold(sources, Math.floor(C / 2)).passes);
  });
});

describe('embedded CMD simulation on real data (LeNet-5 / Fashion-MNIST, 25 checkpoints, F = 5, L = 3, P = 20)', () => {
  let set: CheckpointSet;
  beforeAll(async () => {
    set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'));
  });

  it('matches a literal in-memory implementation: embedded sets, errors, saved, bytes (absolute and relative)', async () => {
    const F = 5;
    const T = set.checkpoints.length;
    const N = set.space.total;
    const dir = tempDir('cmd-embed-');
    const opts = { ...onlineOptions({ modes: 6, samples: 400, seed: 3, workers: 1 }, F, undefined, N), chunkSize: 4096 };
    const { engine } = await OnlineEngine.start(path.join(dir, 'state'), set, opts);
    const absolute: EmbedOptions = { window: 3, percent: 20, relative: false };
    const relative: EmbedOptions = { window: 3, percent: 20, relative: true };
    try {
      // Two simulations on the same engine; the tiny selection caps force every radix level.
      const simA = await EmbeddedSimulation.start(engine, absolute, { dir: path.join(dir, 'abs'), selectionCap: 1 });
      const simR = await EmbeddedSimulation.start(engine, relative, { dir: path.join(dir, 'rel'), selectionCap: 64 });
      const setsA = new Map<number, number[]>();
      const setsR = new Map<number, number[]>();
      for (let t = F + 1; t < T; t++) {
        const c = newCheckpoint(set, set.checkpoints[t]);
        await engine.apply(c);
        const ra = await simA.step(c);
        const rr = await simR.step(c);
        if (ra.embedding) setsA.set(t, simA.embeddedIndices());
        if (rr.embedding) setsR.set(t, simR.embeddedIndices());
      }
      const v = readAll(set);
      const { refIndex, M } = engine.meta;
      const { mode } = engine.coefficients();
      const embeddingTs = [6, 9, 12, 15, 18, 21, 24];
      for (const [sim, o, sets] of [
        [simA, absolute, setsA],
        [simR, relative, setsR],
      ] as const) {
        const direct = directSchedule(v, N, T, F, refIndex, mode, o);
        const rows: EmbeddedRow[] = sim.rows;
        expect(rows.map((r) => r.index)).toEqual(direct.rows.map((r) => r.t));
        expect(rows.filter((r) => r.embedding).map((r) => r.index)).toEqual(embeddingTs);
        expect([...sets.keys()]).toEqual(embeddingTs);
        for (const t of embeddingTs) {
          const mine = sets.get(t)!;
          const theirs = direct.sets.get(t)!;
          expect(mine.length, `|E| after ${t}`).toBe(theirs.length);
          expect(mismatches(mine, theirs), `E after ${t}`).toBe(0);
          for (const g of refIndex) expect(mine.includes(g)).toBe(false);
        }
        let worst = 0;
        rows.forEach((r, k) => {
          const d = direct.rows[k];
          expect(r.step).toBe(set.checkpoints[d.t].step);
          expect(r.embedded).toBe(d.pre);
          expect(r.newlyEmbedded).toBe(d.newly);
          expect(r.embeddedFraction).toBe(d.pre / N);
          worst = Math.max(worst, Math.abs(r.relativeError - d.relativeError));
          // Bytes: 4 per float32 value not embedded, 4 per reference value, 9 per newly embedded (u8 mode + 2 float32).
          expect(r.bytesFull).toBe(4 * N);
          expect(r.bytesSent).toBe(4 * (N - d.pre) + 9 * d.newly);
          if (k > 0) expect(r.embeddedFraction).toBeGreaterThanOrEqual(rows[k - 1].embeddedFraction);
        });
        expect(worst).toBeLessThan(1e-9);
        // Before the first embedding nothing is frozen; afterwards the error is real.
        expect(rows.filter((r) => r.index <= 6).every((r) => r.relativeError === 0 && r.embedded === 0)).toBe(true);
        expect(rows.filter((r) => r.index > 6).every((r) => r.relativeError > 0)).toBe(true);
        expect(sim.saved()).toBeCloseTo(direct.saved, 14);
        console.log(`embedded ${o.relative ? 'relative' : 'absolute'}: |E| after ${embeddingTs.join(',')} = ${embeddingTs.map((t) => direct.sets.get(t)!.length).join(',')}; smallest relative gap at a cut ${Math.min(...direct.gaps).toExponential(2)}; worst error difference ${worst.toExponential(2)}`);
      }
      // Absolute: ceil(0.2·N) per step until everything but the references is frozen.
      const step = embedCount(N, 0, absolute);
      expect(setsA.get(6)!.length).toBeGreaterThanOrEqual(step - M);
      expect(setsA.get(24)!.length).toBe(N - M);
      // Relative: each step freezes about 20% of what is left.
      expect(setsR.get(24)!.length).toBeLessThan(N - M);
      expect(setsR.get(9)!.length).toBeGreaterThan(setsR.get(6)!.length);
      // The report section validates and carries the rows.
      const report = { ...(await engine.buildReport()), embedded: simA.report() };
      const parsed = RunReportSchema.parse(report);
      expect(parsed.embedded!.checkpoints).toHaveLength(T - F - 1);
      expect(parsed.embedded!.saved).toBe(simA.saved());
      expect(parsed.embedded!.bytesSentTotal).toBe(simA.rows.reduce((s, r) => s + r.bytesSent, 0));
      simA.dispose();
      simR.dispose();
    } finally {
      await engine.close();
    }
  }, 60_000);
});

describe('schedule helpers and flags', () => {
  it('embedding positions, counts and bytes follow the official formulas', () => {
    expect([20, 21, 30, 40, 45].map((t) => isEmbeddingCheckpoint(t, 20, 10))).toEqual([false, false, true, true, false]);
    // P/100 first, as numpy: 100·0.07 = 7.000000000000001 → 8.
    expect(embedCount(100, 0, { window: 10, percent: 7, relative: false })).toBe(8);
    expect(embedCount(1000, 400, { window: 10, percent: 10, relative: true })).toBe(60);
    expect(roundBytes(1000, 3, 100, 50, 1)).toEqual({ sent: 4 * 900 + 450, full: 4000 });
    expect(roundBytes(1000, 300, 0, 10, 2)).toEqual({ sent: 4000 + 100, full: 4000 });
  });

  it('the embed flags need --online and valid values', () => {
    expect(resolveEmbedOptions({ online: true })).toBeUndefined();
    expect(resolveEmbedOptions({ online: true, embedRelative: true })).toEqual({ window: 10, percent: 10, relative: true });
    expect(resolveEmbedOptions({ online: true, embedWindow: 3, embedPerc: 20 })).toEqual({ window: 3, percent: 20, relative: false });
    expect(() => checkEmbedFlags({ embedWindow: 3 })).toThrow(UsageError);
    expect(() => resolveEmbedOptions({ online: true, embedWindow: 0 })).toThrow(UsageError);
  });
});
