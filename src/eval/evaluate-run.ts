/**
 * Evaluating original vs CMD-reconstructed checkpoints (and the last-k average beside them),
 * either in-process with tfjs for LayersModels or with the user's own command per checkpoint.
 * Every evaluation must succeed: the first failure (command exit ≠ 0, unreadable output, a
 * non-finite accuracy, a tfjs error) is a RuntimeError naming the model, so a broken eval
 * script never reaches a report or a gate as if it were an accuracy (docs/report.md).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointInfo, CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { UsageError } from '../errors.ts';
import { evaluationFailure } from './eval-cmd.ts';
import type { CmdModel } from '../output/model-reader.ts';
import { num, type NumValue, type RunReport } from '../output/report-schema.ts';
import { averagedTensors, emaTensors, originalTensors, reconstructedTensors, tensorValues, weightedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import type { TensorToWrite } from '../formats/types.ts';

export type EvalSpec =
  | { kind: 'tfjs'; dataDir: string }
  | { kind: 'command'; template: string; concurrency: number; timeoutMs: number };

export interface EvalPlan {
  set: CheckpointSet;
  model: CmdModel;
  /** Model window positions to evaluate (original and CMD). */
  positions: number[];
  /** Checkpoints averaged for the baseline (the last k of the window). */
  averaged: CheckpointInfo[];
  spec: EvalSpec;
  /** Extra final models to evaluate: the other models of a mode sweep, the EMA baseline. */
  extras?: { sweep?: { modesRequested: number; model: CmdModel }[]; emaBeta?: number; weighted?: { name: string; weights: number[] }[] };
  /** Scratch folder for checkpoints written only to be evaluated by a command. */
  scratchDir: string;
  /**
   * Files the run has already written (absolute paths, in the input's format): a command scores
   * these very files rather than scratch copies, so the report's numbers belong to what is in
   * `reconstructed/` (docs/report.md, "Evaluation"). Positions are the model window's.
   */
  written?: WrittenFiles;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** The written reconstructions by model window position, and the averaged model. */
export interface WrittenFiles {
  cmd: Map<number, string>;
  avg?: string;
}

type Metrics = { accuracy?: number; loss?: number; error?: string };
type CommandVariant = { key: string; label: string; checkpoint: CheckpointInfo; file?: string; write?: () => Promise<string> };
type Evaluation = NonNullable<RunReport['evaluation']>;

function toReport(m: Metrics): { accuracy?: NumValue; loss?: NumValue; error?: string } {
  return {
    ...(m.accuracy !== undefined ? { accuracy: num(m.accuracy) } : {}),
    ...(m.loss !== undefined ? { loss: num(m.loss) } : {}),
    ...(m.error ? { error: m.error } : {}),
  };
}

/** Positions 0, k, 2k, … of the window, always with the last one. */
export function evaluationPositions(T: number, every: number): number[] {
  const out: number[] = [];
  for (let p = 0; p < T; p += every) out.push(p);
  if (out[out.length - 1] !== T - 1) out.push(T - 1);
  return out;
}

async function evaluateWithTfjs(plan: EvalPlan, variants: { key: string; label: string; tensors: () => TensorToWrite[] }[]): Promise<Map<string, Metrics>> {
  const { set } = plan;
  const extras = set.checkpoints[0].contents.extras as { model?: { modelTopology?: unknown } } | undefined;
  if (set.format !== 'tfjs' || !extras?.model?.modelTopology) {
    throw new UsageError('--eval-data evaluates tfjs LayersModels (model.json with a topology); use --eval-cmd for other checkpoints');
  }
  const [{ loadEvalData }, { createTfjsEvaluator }] = await Promise.all([import('./eval-data.ts'), import('./eval-tfjs.ts')]);
  const data = await loadEvalData(plan.spec.kind === 'tfjs' ? plan.spec.dataDir : '');
  const evaluator = await createTfjsEvaluator({ modelJson: extras.model, data, label: set.checkpoints[0].path });
  const results = new Map<string, Metrics>();
  try {
    for (const v of variants) {
      if (plan.signal?.aborted) break;
      const weights = new Map(v.tensors().map((t) => [t.name, tensorValues(t)]));
      const command = `tfjs evaluation on ${plan.spec.kind === 'tfjs' ? plan.spec.dataDir : ''}`;
      let m: Metrics;
      try {
        m = await evaluator.evaluate(weights);
      } catch (e) {
        throw evaluationFailure(v.label, command, (e as Error).message.split('\n')[0]);
      }
      if (m.accuracy !== undefined && !(m.accuracy >= 0 && m.accuracy <= 1)) throw evaluationFailure(v.label, command, `accuracy ${m.accuracy} is not a fraction in [0, 1]`);
      results.set(v.key, m);
    }
  } finally {
    evaluator.dispose();
  }
  return results;
}

async function evaluateWithCommand(plan: EvalPlan, variants: CommandVariant[]): Promise<Map<string, Metrics>> {
  const spec = plan.spec as Extract<EvalSpec, { kind: 'command' }>;
  const { runEvalCommands } = await import('./eval-cmd.ts');
  const inputs: { index: number; step: number; name: string; path: string }[] = [];
  for (const [i, v] of variants.entries()) {
    const p = v.file ?? (v.write ? await v.write() : v.checkpoint.entry);
    inputs.push({ index: i, step: v.checkpoint.step, name: path.basename(p), path: p });
  }
  const results = await runEvalCommands({ template: spec.template, checkpoints: inputs, concurrency: spec.concurrency, timeoutMs: spec.timeoutMs, signal: plan.signal });
  const out = new Map<string, Metrics>();
  results.forEach((r, i) => {
    if (r.error !== undefined) throw evaluationFailure(variants[i].label, r.command, r.error, r.stderrTail);
    out.set(variants[i].key, { accuracy: r.accuracy, loss: r.loss });
  });
  return out;
}

/** How a failure names each evaluated model: checkpoints by path, derived models by what they are. */
const labels = {
  cmd: (c: CheckpointInfo) => `the CMD reconstruction of ${c.entry}`,
  avg: (cs: readonly CheckpointInfo[]) => `the average of the last ${cs.length} checkpoints (${cs[0].name} … ${cs[cs.length - 1].name})`,
  sweep: (m: number, c: CheckpointInfo) => `the M=${m} sweep model's reconstruction of ${c.entry}`,
  baseline: (what: string, c: CheckpointInfo) => `${what} at ${c.entry}`,
};

/** Metrics of the extra final models (sweep models by requested M, the EMA), for the report. */
export interface ExtraMetrics {
  sweep: Map<number, ReturnType<typeof toReport>>;
  /** Baselines given as checkpoint weights (PCA, DMD), by name. */
  weighted: Map<string, ReturnType<typeof toReport>>;
  ema?: ReturnType<typeof toReport>;
}

/** Evaluates and returns the report's `evaluation` section (and the extra models' metrics). */
export async function evaluateRun(plan: EvalPlan): Promise<Evaluation & { extraMetrics?: ExtraMetrics }> {
  const { set, model, positions, averaged } = plan;
  const first = model.params.window.from;
  const ckpt = (p: number) => set.checkpoints[first + p];
  const window = () => set.checkpoints.slice(first, model.params.window.to);
  let results: Map<string, Metrics>;
  if (plan.spec.kind === 'tfjs') {
    const last = positions[positions.length - 1];
    const variants = positions.flatMap((p) => [
      { key: `orig:${p}`, label: ckpt(p).entry, tensors: () => originalTensors(ckpt(p)) },
      { key: `cmd:${p}`, label: labels.cmd(ckpt(p)), tensors: () => reconstructedTensors(set, model, ckpt(p), p) },
    ]);
    if (averaged.length) variants.push({ key: 'avg', label: labels.avg(averaged), tensors: () => averagedTensors(averaged) });
    for (const sw of plan.extras?.sweep ?? []) variants.push({ key: `sweep:${sw.modesRequested}`, label: labels.sweep(sw.modesRequested, ckpt(last)), tensors: () => reconstructedTensors(set, sw.model, ckpt(last), last) });
    if (plan.extras?.emaBeta !== undefined) variants.push({ key: 'ema', label: labels.baseline('the EMA baseline', ckpt(last)), tensors: () => emaTensors(window(), plan.extras!.emaBeta!) });
    for (const w of plan.extras?.weighted ?? []) variants.push({ key: `w:${w.name}`, label: labels.baseline(`the ${w.name} baseline`, ckpt(last)), tensors: () => weightedTensors(window(), w.weights) });
    results = await evaluateWithTfjs(plan, variants);
  } else {
    await fsp.mkdir(plan.scratchDir, { recursive: true });
    const written = plan.written;
    const variants: CommandVariant[] = positions.flatMap((p) => [
      { key: `orig:${p}`, label: ckpt(p).entry, checkpoint: ckpt(p) },
      { key: `cmd:${p}`, label: labels.cmd(ckpt(p)), checkpoint: ckpt(p), file: written?.cmd.get(p), write: () => writeCheckpointLike(ckpt(p), path.join(plan.scratchDir, 'cmd'), reconstructedTensors(set, model, ckpt(p), p)) },
    ]);
    if (averaged.length) {
      const last = averaged[averaged.length - 1];
      variants.push({ key: 'avg', label: labels.avg(averaged), checkpoint: last, file: written?.avg, write: () => writeCheckpointLike(last, path.join(plan.scratchDir, 'avg'), averagedTensors(averaged)) });
    }
    const lastPos = positions[positions.length - 1];
    const lastCkpt = ckpt(lastPos);
    for (const sw of plan.extras?.sweep ?? []) {
      variants.push({ key: `sweep:${sw.modesRequested}`, label: labels.sweep(sw.modesRequested, lastCkpt), checkpoint: lastCkpt, write: () => writeCheckpointLike(lastCkpt, path.join(plan.scratchDir, `sweep-${sw.modesRequested}`), reconstructedTensors(set, sw.model, lastCkpt, lastPos)) });
    }
    if (plan.extras?.emaBeta !== undefined) {
      variants.push({ key: 'ema', label: labels.baseline('the EMA baseline', lastCkpt), checkpoint: lastCkpt, write: () => writeCheckpointLike(lastCkpt, path.join(plan.scratchDir, 'ema'), emaTensors(window(), plan.extras!.emaBeta!)) });
    }
    for (const w of plan.extras?.weighted ?? []) {
      variants.push({ key: `w:${w.name}`, label: labels.baseline(`the ${w.name} baseline`, lastCkpt), checkpoint: lastCkpt, write: () => writeCheckpointLike(lastCkpt, path.join(plan.scratchDir, `w-${w.name}`), weightedTensors(window(), w.weights)) });
    }
    results = await evaluateWithCommand(plan, variants);
  }
  const get = (k: string): Metrics => results.get(k) ?? { error: 'not evaluated' };
  const label = (c: CheckpointInfo) => ({ index: c.index, step: c.step, name: c.name });
  const lastPos = positions[positions.length - 1];
  const finalOrig = get(`orig:${lastPos}`);
  const finalCmd = get(`cmd:${lastPos}`);
  const avg = averaged.length ? get('avg') : undefined;
  const delta = (a?: number, b?: number) => (a !== undefined && b !== undefined ? num((a - b) * 100) : undefined);
  const extraMetrics: ExtraMetrics = {
    sweep: new Map((plan.extras?.sweep ?? []).map((sw) => [sw.modesRequested, toReport(get(`sweep:${sw.modesRequested}`))])),
    weighted: new Map((plan.extras?.weighted ?? []).map((w) => [w.name, toReport(get(`w:${w.name}`))])),
    ...(plan.extras?.emaBeta !== undefined ? { ema: toReport(get('ema')) } : {}),
  };
  return {
    extraMetrics,
    method: plan.spec.kind === 'tfjs' ? 'tfjs' : `command: ${plan.spec.template}`,
    checkpoints: positions.map((p) => ({ ...label(ckpt(p)), original: toReport(get(`orig:${p}`)), cmd: toReport(get(`cmd:${p}`)) })),
    ...(avg ? { average: { lastK: averaged.length, checkpoints: averaged.map(label), metrics: toReport(avg) } } : {}),
    final: {
      original: toReport(finalOrig),
      cmd: toReport(finalCmd),
      ...(delta(finalCmd.accuracy, finalOrig.accuracy) !== undefined ? { accuracyDelta: delta(finalCmd.accuracy, finalOrig.accuracy) } : {}),
      ...(avg && delta(avg.accuracy, finalOrig.accuracy) !== undefined ? { averageAccuracyDelta: delta(avg.accuracy, finalOrig.accuracy) } : {}),
    },
  };
}
