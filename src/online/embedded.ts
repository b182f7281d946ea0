/**
 * Embedded CMD as a SIMULATION over a recorded run (docs/method.md §13). The official
 * code freezes a growing set E of parameters onto their affine model a_old·r(t) + b_old and then
 * retrains the network with them overwritten after every epoch. Here nothing is retrained: w(t)
 * is always the stored checkpoint, and the published freezing schedule is replayed on the online
 * coefficients, to measure how much of the network it would freeze, how far the embedded model
 * w_emb(t) (w(t) with E replaced by the frozen model) is from w(t), and what a federated client
 * would send per round.
 *
 * Schedule, per checkpoint position t > F (positions count from 0 in the selected list, exactly
 * like F and like the official epoch index):
 *   1. the online a(t), b(t) come from the engine (already applied);
 *   2. w_emb(t) = w(t) with i ∈ E replaced by a_old_i·r_{m(i)}(t) + b_old_i (E as it stands
 *      before this checkpoint's embedding step);
 *   3. if t % L === 0: diff_i = sqrt((a_old_i − a_i)² + (b_old_i − b_i)²) for i ∉ E;
 *      a_old ← a, b_old ← b for i ∉ E (E keeps its frozen values); the num = ⌈tot·(P/100)⌉
 *      smallest diffs (tot = N, or N − |E| when relative; ties → lowest index) join E; then
 *      every reference index leaves E again (references take part in the selection, as in the
 *      official code, and are never embedded).
 * a_old, b_old start as the warm-up fit at F.
 *
 * State is per chunk on disk (chunks of the online state), never N-sized in memory:
 *   <dir>/emb-<c>.g<t>.bin    a_old, b_old (float64), mode (u8/u16), embedded flag (u8)
 *   <dir>/step-<c>.bin        during an embedding step only: a(t), b(t), diff (float64)
 * The global selection reads the diff files in a few passes (embedded-select.ts).
 */
import fs from 'node:fs';
import { readAllSync, readChunk, writeAllSync } from './chunk-files.ts';
import path from 'node:path';
import { CancelledError } from '../errors.ts';
import { num, type RunReport } from '../output/report-schema.ts';
import { planChunks, type Chunk } from '../pipeline/chunks.ts';
import { TrajectoryReader } from '../trajectory/trajectory-reader.ts';
import type { NewCheckpoint, OnlineEngine } from './engine.ts';
import type { EmbedOptions } from './embedded-flags.ts';
import { findThreshold, ThresholdSelector, type ValueSource } from './embedded-select.ts';
import { modeFit, solveChunk, type ModeFit } from './kernel.ts';

export type { EmbedOptions } from './embedded-flags.ts';

/** Bytes per transmitted weight value (float32). */
export const VALUE_BYTES = 4;

/** True when checkpoint position t is an embedding step (official: epoch > F and epoch % L == 0). */
export function isEmbeddingCheckpoint(t: number, warmup: number, window: number): boolean {
  return t > warmup && t % window === 0;
}

/** num = ⌈tot·(P/100)⌉ with tot = N (absolute) or N − |E| (relative); P/100 first, as numpy does. */
export function embedCount(N: number, embedded: number, options: EmbedOptions): number {
  const tot = options.relative ? N - embedded : N;
  return Math.ceil(tot * (options.percent / 100));
}

/**
 * Bytes a federated client sends in one round (our cost model, docs/method.md §13: the published code has no federated part):
 *   full     = 4·N
 *   embedded = 4·(N − |E_t|) + c·n_new(t)
 * with E_t the set embedded during round t (the M references are never embedded, so their
 * values are among the N − |E_t| sent), and, at an embedding round,
 * the one-off (mode, a, b) of the n_new parameters embedded at its end: c = mode bytes (1 for
 * M ≤ 256, else 2) + 2 float32 = 9 or 10 bytes.
 */
export function roundBytes(N: number, _M: number, embedded: number, newlyEmbedded: number, modeBytes: 1 | 2): { sent: number; full: number } {
  return { sent: VALUE_BYTES * (N - embedded) + (modeBytes + 2 * VALUE_BYTES) * newlyEmbedded, full: VALUE_BYTES * N };
}

/** One checkpoint after warm-up. */
export interface EmbeddedRow {
  index: number;
  step: number;
  name: string;
  /** An embedding step ran at the end of this checkpoint. */
  embedding: boolean;
  /** |E_t|: parameters embedded in w_emb(t) (before this checkpoint's embedding step). */
  embedded: number;
  /** Parameters added to E by this checkpoint's embedding step. */
  newlyEmbedded: number;
  /** |E_t| / N. */
  embeddedFraction: number;
  /** ‖w(t) − w_emb(t)‖ / ‖w(t)‖. */
  relativeError: number;
  bytesSent: number;
  bytesFull: number;
}

export type EmbeddedReport = NonNullable<RunReport['embedded']>;

interface EmbedChunk {
  aOld: Float64Array;
  bOld: Float64Array;
  mode: Uint8Array | Uint16Array;
  flags: Uint8Array;
}

/** Embedded-state files live and die with one offline run: no fsync. */
function writeParts(file: string, parts: ArrayBufferView[]): void {
  writeAllSync(file, parts, false);
}

/** Σ (w_i − (a_old_i·r_{m(i)} + b_old_i))² over the embedded parameters of a chunk (float64). */
function embeddedErrorSq(emb: EmbedChunk, w: ArrayLike<number>, r: ArrayLike<number>): number {
  let e = 0;
  for (let i = 0; i < emb.flags.length; i++) {
    if (!emb.flags[i]) continue;
    const d = w[i] - (emb.aOld[i] * r[emb.mode[i]] + emb.bOld[i]);
    e += d * d;
  }
  return e;
}

export interface SimulationTuning {
  /** Where the state goes (default `<engine state>/embedded`); emptied first. */
  dir?: string;
  /** Values held in memory at once by the selection (default 2^20). */
  selectionCap?: number;
  signal?: AbortSignal;
}

/** The embedded-CMD simulation alongside an {@link OnlineEngine}; call {@link step} after each `engine.apply`. */
export class EmbeddedSimulation {
  readonly options: EmbedOptions;
  readonly dir: string;
  readonly rows: EmbeddedRow[] = [];
  private readonly engine: OnlineEngine;
  private readonly chunks: Chunk[];
  /** Global index of each chunk's first parameter. */
  private readonly starts: number[];
  /** Local indices of the references, per chunk. */
  private readonly refsIn: number[][];
  /** |E ∩ chunk|. */
  private readonly counts: number[];
  private readonly cap: number;
  private readonly signal?: AbortSignal;
  private gen: number;
  private t: number;
  private sumEmbedded = 0;

  private constructor(engine: OnlineEngine, options: EmbedOptions, tuning: SimulationTuning) {
    this.engine = engine;
    this.options = options;
    this.dir = tuning.dir ?? path.join(engine.stateDir, 'embedded');
    this.cap = tuning.selectionCap ?? 1 << 20;
    this.signal = tuning.signal;
    this.chunks = planChunks(engine.meta.tensors, engine.meta.chunkSize);
    this.starts = [];
    let s = 0;
    for (const c of this.chunks) {
      this.starts.push(s);
      s += c.count;
    }
    this.refsIn = this.chunks.map((c, k) => engine.meta.refIndex.filter((g) => g >= this.starts[k] && g < this.starts[k] + c.count).map((g) => g - this.starts[k]));
    this.counts = this.chunks.map(() => 0);
    this.gen = engine.meta.warmup;
    this.t = engine.meta.warmup;
  }

  /**
   * Starts right after the engine's warm-up commit (t = F): a_old, b_old = the warm-up fit,
   * E empty.
   */
  static async start(engine: OnlineEngine, options: EmbedOptions, tuning: SimulationTuning = {}): Promise<EmbeddedSimulation> {
    if (engine.commit.t !== engine.meta.warmup) throw new Error(`embedded simulation must start at the warm-up commit (t = ${engine.meta.warmup}), engine is at ${engine.commit.t}`);
    const sim = new EmbeddedSimulation(engine, options, tuning);
    fs.rmSync(sim.dir, { recursive: true, force: true });
    fs.mkdirSync(sim.dir, { recursive: true });
    const fit = modeFit(engine.commit.modeSums);
    for (const chunk of sim.chunks) {
      await sim.yieldCheck();
      const { a, b, mode } = sim.solve(chunk, fit, engine.commit.t);
      sim.writeEmb(chunk.index, sim.gen, { aOld: a, bOld: b, mode, flags: new Uint8Array(chunk.count) });
    }
    return sim;
  }

  /** |E| now (after the last embedding step). */
  get embeddedCount(): number {
    return this.counts.reduce((s, c) => s + c, 0);
  }

  private async yieldCheck(): Promise<void> {
    if (this.signal?.aborted) throw new CancelledError();
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private embFile(chunk: number, gen: number): string {
    return path.join(this.dir, `emb-${chunk}.g${gen}.bin`);
  }

  private stepFile(chunk: number): string {
    return path.join(this.dir, `step-${chunk}.bin`);
  }

  private writeEmb(chunk: number, gen: number, e: EmbedChunk): void {
    writeParts(this.embFile(chunk, gen), [e.aOld, e.bOld, e.mode, e.flags]);
  }

  private readEmb(chunk: Chunk): EmbedChunk {
    const n = chunk.count;
    const mb = this.engine.meta.modeBytes;
    const buf = readAllSync(this.embFile(chunk.index, this.gen), n * (17 + mb));
    return {
      aOld: new Float64Array(buf, 0, n),
      bOld: new Float64Array(buf, 8 * n, n),
      mode: mb === 1 ? new Uint8Array(buf, 16 * n, n) : new Uint16Array(buf, 16 * n, n),
      flags: new Uint8Array(buf, (16 + mb) * n, n),
    };
  }

  /** The online a, b of a chunk at committed generation `t`. */
  private solve(chunk: Chunk, fit: ModeFit, t: number): { a: Float64Array; b: Float64Array; mode: Uint8Array | Uint16Array } {
    const { stateDir, meta } = this.engine;
    const sums = readChunk(stateDir, chunk.index, t, chunk.count, meta.modeBytes);
    const a = new Float64Array(chunk.count);
    const b = new Float64Array(chunk.count);
    solveChunk(sums, fit, a, b);
    return { a, b, mode: sums.mode };
  }

  /**
   * Adds checkpoint `c`, which the engine has just applied (engine.commit.t = previous + 1):
   * the embedded model's error at it and, at an embedding position, the embedding step.
   */
  async step(c: NewCheckpoint): Promise<EmbeddedRow> {
    const { engine, options } = this;
    const { meta, commit } = engine;
    const t = commit.t;
    if (t !== this.t + 1) throw new Error(`embedded simulation is at checkpoint ${this.t}; the engine committed ${t}`);
    const N = meta.N;
    const r = commit.refs[t];
    const pre = this.embeddedCount;
    const embedding = isEmbeddingCheckpoint(t, meta.warmup, options.window);
    const reader = new TrajectoryReader({ tensors: meta.tensors, stored: [c.stored], total: N });
    const readValues = (k: number) => {
      const n = this.chunks[k].count;
      const w = meta.float64 ? new Float64Array(n) : new Float32Array(n);
      reader.readRange(this.starts[k], this.starts[k] + n, w, 0, 1);
      return w;
    };
    let errSq = 0;
    try {
      if (!embedding) {
        for (const chunk of this.chunks) {
          if (this.counts[chunk.index] === 0) continue;
          await this.yieldCheck();
          errSq += embeddedErrorSq(this.readEmb(chunk), readValues(chunk.index), r);
        }
      } else {
        errSq = await this.embed(readValues, r, embedCount(N, pre, options), t);
      }
    } finally {
      reader.close();
    }
    this.t = t;
    const post = this.embeddedCount;
    this.sumEmbedded += post;
    const bytes = roundBytes(N, meta.M, pre, post - pre, meta.modeBytes);
    const normSq = commit.errors[t].normSq;
    const relativeError = normSq > 0 ? Math.sqrt(errSq / normSq) : errSq > 0 ? Infinity : 0;
    const cp = commit.checkpoints[t];
    const row: EmbeddedRow = { index: cp.index, step: cp.step, name: cp.name, embedding, embedded: pre, newlyEmbedded: post - pre, embeddedFraction: pre / N, relativeError, bytesSent: bytes.sent, bytesFull: bytes.full };
    this.rows.push(row);
    return row;
  }

  /** The embedding step at checkpoint t; returns the embedded model's Σ err² (with E before the step). */
  private async embed(readValues: (k: number) => ArrayLike<number>, r: ArrayLike<number>, count: number, t: number): Promise<number> {
    const fit = modeFit(this.engine.commit.modeSums);
    let errSq = 0;
    // Pass A: a(t), b(t), the error, and the drift of every non-embedded parameter (−1 = excluded).
    for (const chunk of this.chunks) {
      await this.yieldCheck();
      const { a, b } = this.solve(chunk, fit, t);
      const emb = this.readEmb(chunk);
      if (this.counts[chunk.index] > 0) errSq += embeddedErrorSq(emb, readValues(chunk.index), r);
      const diff = new Float64Array(chunk.count);
      for (let i = 0; i < chunk.count; i++) {
        if (emb.flags[i]) {
          diff[i] = -1;
          continue;
        }
        const da = emb.aOld[i] - a[i];
        const db = emb.bOld[i] - b[i];
        diff[i] = Math.sqrt(da * da + db * db);
      }
      writeParts(this.stepFile(chunk.index), [a, b, diff]);
    }
    const sources: ValueSource[] = this.chunks.map((chunk) => ({ count: chunk.count, read: () => new Float64Array(readAllSync(this.stepFile(chunk.index), 8 * chunk.count, 16 * chunk.count)) }));
    const selector = new ThresholdSelector(findThreshold(sources, count, this.cap));
    // Pass B: the new E (selected ∪ old, minus references) and a_old, b_old ← a, b outside the old E.
    for (const chunk of this.chunks) {
      await this.yieldCheck();
      const n = chunk.count;
      const step = readAllSync(this.stepFile(chunk.index), 24 * n);
      const a = new Float64Array(step, 0, n);
      const b = new Float64Array(step, 8 * n, n);
      const diff = new Float64Array(step, 16 * n, n);
      const emb = this.readEmb(chunk);
      const flags = emb.flags.slice();
      selector.select(diff, (i) => (flags[i] = 1));
      for (const i of this.refsIn[chunk.index]) flags[i] = 0;
      for (let i = 0; i < n; i++) {
        if (emb.flags[i]) continue;
        emb.aOld[i] = a[i];
        emb.bOld[i] = b[i];
      }
      this.writeEmb(chunk.index, t, { ...emb, flags });
      let k = 0;
      for (let i = 0; i < n; i++) k += flags[i];
      this.counts[chunk.index] = k;
      fs.rmSync(this.stepFile(chunk.index), { force: true });
      fs.rmSync(this.embFile(chunk.index, this.gen), { force: true });
    }
    this.gen = t;
    return errSq;
  }

  /** Global indices of E, ascending (N-sized at worst: for tests and small models). */
  embeddedIndices(): number[] {
    const out: number[] = [];
    for (const chunk of this.chunks) {
      if (this.counts[chunk.index] === 0) continue;
      const { flags } = this.readEmb(chunk);
      for (let i = 0; i < chunk.count; i++) if (flags[i]) out.push(this.starts[chunk.index] + i);
    }
    return out;
  }

  /**
   * The official "saved" statistic Σ_t |E_t| / Σ_t N over every checkpoint so far, warm-up
   * included, with E_t the set after checkpoint t's embedding step (as `train_cmd.py` prints it).
   */
  saved(): number {
    return this.sumEmbedded / (this.engine.meta.N * (this.t + 1));
  }

  /** The report section. */
  report(): EmbeddedReport {
    const { options, rows } = this;
    return {
      simulation: true,
      window: options.window,
      percent: options.percent,
      relative: options.relative,
      coefficientBytes: this.engine.meta.modeBytes + 2 * VALUE_BYTES,
      checkpoints: rows.map((r) => ({ ...r, embeddedFraction: num(r.embeddedFraction), relativeError: num(r.relativeError) })),
      saved: num(this.saved()),
      bytesSentTotal: rows.reduce((s, r) => s + r.bytesSent, 0),
      bytesFullTotal: rows.reduce((s, r) => s + r.bytesFull, 0),
    };
  }

  /** Removes the simulation's state folder. */
  dispose(): void {
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}
