/**
 * The run layer's evaluation step: what gets evaluated (by default exactly what was written —
 * the chosen checkpoints, their originals, the averaged model and any baseline models;
 * `evalEvery` widens it), how the results enter the report, and their provenance.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointInfo, CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { UsageError } from '../errors.ts';
import { evaluateRun, evaluationPositions, type EvalSpec } from '../eval/evaluate-run.ts';
import type { CmdModel } from '../output/model-reader.ts';
import type { RunReport } from '../output/report-schema.ts';
import { DEFAULTS } from './defaults.ts';
import type { ResolvedHooks } from './hooks.ts';
import type { ReconstructRunOptions } from './options.ts';
import { fileSha256, sha256 } from './provenance.ts';

export function evalSpec(o: ReconstructRunOptions): EvalSpec | undefined {
  if (o.evalData && o.evalCmd) throw new UsageError('choose one of --eval-data and --eval-cmd');
  if (o.evalData) return { kind: 'tfjs', dataDir: o.evalData };
  if (o.evalCmd) return { kind: 'command', template: o.evalCmd, concurrency: o.evalJobs ?? DEFAULTS.evalJobs, timeoutMs: (o.evalTimeout ?? DEFAULTS.evalTimeoutSeconds) * 1000 };
  if (o.evalEvery !== undefined) throw new UsageError('--eval-every needs --eval-data or --eval-cmd');
  return undefined;
}

/** Positions to evaluate: the written ones, plus every k-th of the window with `evalEvery`. */
export function evaluationScope(written: number[], T: number, evalEvery: number | undefined): number[] {
  const all = new Set(written);
  if (evalEvery !== undefined) for (const p of evaluationPositions(T, evalEvery)) all.add(p);
  return [...all].sort((a, b) => a - b);
}

/** A report without any evaluation numbers (they belong to the run that measured them). */
export function withoutEvaluation(r: RunReport): RunReport {
  const { evaluation: _, ...rest } = r;
  return {
    ...rest,
    ...(r.modeSweep ? { modeSweep: r.modeSweep.map(({ metrics: _m, ...m }) => m) } : {}),
    ...(r.baselines ? { baselines: r.baselines.map(({ metrics: _m, ...b }) => b) } : {}),
  };
}

/** sha256 over the files of an evaluation data folder (x.npy, y.npy, …), sorted by name. */
async function folderSha256(dir: string): Promise<string> {
  const parts: string[] = [];
  for (const name of (await fsp.readdir(dir)).sort()) {
    const p = path.join(dir, name);
    if ((await fsp.stat(p)).isFile()) parts.push(`${name}:${await fileSha256(p)}`);
  }
  return sha256(parts.join('\n'));
}

export interface EvaluationInputs {
  set: CheckpointSet;
  model: CmdModel;
  positions: number[];
  averaged: CheckpointInfo[];
  spec: EvalSpec;
  stagingDir: string;
  /** Written files (relative to the output folder), hashed into the provenance. */
  written: string[];
}

/** What one evaluation measured, before it enters a report (a sharded reconstruct carries it in its shard). */
export type Measured = Awaited<ReturnType<typeof evaluateRun>>;

/** Runs the evaluation of `e` (positions, averaged model, the sweep models, and with `baselines` the report's baseline models). */
export async function measure(report: RunReport, e: EvaluationInputs, hooks: ResolvedHooks, sweepModels: { modesRequested: number; model: CmdModel }[] = [], baselines = true): Promise<Measured> {
  const emaEntry = baselines ? report.baselines?.find((b) => b.name.startsWith('ema-')) : undefined;
  const emaBeta = emaEntry ? Number(emaEntry.name.slice(4)) : undefined;
  const scratchDir = path.join(e.stagingDir, '.eval');
  try {
    return await evaluateRun({
      set: e.set,
      model: e.model,
      positions: e.positions,
      averaged: e.averaged,
      spec: e.spec,
      extras: {
        sweep: sweepModels,
        emaBeta: Number.isFinite(emaBeta) ? emaBeta : undefined,
        weighted: (baselines ? (report.baselines ?? []) : []).filter((b) => b.finalWeights?.length).map((b) => ({ name: b.name, weights: b.finalWeights! })),
      },
      scratchDir,
      signal: hooks.signal,
      log: hooks.log,
    });
  } finally {
    await fsp.rm(scratchDir, { recursive: true, force: true });
  }
}

/**
 * The report with a measured evaluation in it: `evaluation` with its provenance (hashes of the
 * `written` files under `stagingDir`), and the sweep and baseline metrics.
 */
export async function withEvaluation(report: RunReport, measured: Measured, o: { spec: EvalSpec; stagingDir: string; written: string[]; modelPath: string }): Promise<RunReport> {
  const emaEntry = report.baselines?.find((b) => b.name.startsWith('ema-'));
  const { extraMetrics, ...evaluation } = measured;
  const reconstructed: Record<string, string> = {};
  for (const w of o.written) reconstructed[w] = await treeSha256(path.join(o.stagingDir, w));
  const provenance = {
    inputs: report.provenance?.inputs ?? '',
    model: report.provenance?.model ?? (await fileSha256(o.modelPath)),
    checkpoints: evaluation.checkpoints.map((c) => c.name),
    reconstructed,
    ...(o.spec.kind === 'tfjs' ? { evalData: await folderSha256(o.spec.dataDir) } : { evalCommand: o.spec.template }),
  };
  const out: RunReport = { ...report, evaluation: { ...evaluation, provenance } };
  const main = evaluation.final?.cmd;
  if (out.modeSweep) out.modeSweep = out.modeSweep.map((m) => ({ ...m, metrics: m.modesRequested === report.method.modesRequested ? main : extraMetrics?.sweep.get(m.modesRequested) }));
  if (out.baselines) {
    out.baselines = out.baselines.map((b) => {
      if (evaluation.average && b.name === `avg-last-${evaluation.average.lastK}`) return { ...b, metrics: evaluation.average.metrics };
      if (b === emaEntry && extraMetrics?.ema) return { ...b, metrics: extraMetrics.ema };
      const w = extraMetrics?.weighted.get(b.name);
      return w ? { ...b, metrics: w } : b;
    });
  }
  return out;
}

/** Evaluates and returns the report with `evaluation` (and baseline / sweep metrics) filled in. */
export async function evaluateInto(report: RunReport, e: EvaluationInputs, hooks: ResolvedHooks, sweepModels: { modesRequested: number; model: CmdModel }[] = []): Promise<RunReport> {
  const measured = await measure(report, e, hooks, sweepModels);
  return withEvaluation(report, measured, { spec: e.spec, stagingDir: e.stagingDir, written: e.written, modelPath: e.model.path });
}

/** sha256 of a file, or of a folder's files (relative names and contents, sorted). */
export async function treeSha256(p: string): Promise<string> {
  const st = await fsp.stat(p);
  if (!st.isDirectory()) return fileSha256(p);
  const parts: string[] = [];
  for (const name of (await fsp.readdir(p)).sort()) parts.push(`${name}:${await treeSha256(path.join(p, name))}`);
  return sha256(parts.join('\n'));
}
