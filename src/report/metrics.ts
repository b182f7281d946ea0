/** Reading the numbers people compare out of a report: final accuracies, last error. */
import { fromNum, type RunReport } from '../output/report-schema.ts';

export interface FinalAccuracy {
  original: number;
  cmd: number;
  /** The uniform average of the last k checkpoints, when the evaluation has it. */
  average?: number;
  /** Where the numbers came from, for messages ("final evaluation" or the last evaluated checkpoint). */
  source: string;
}

/**
 * The final original and CMD accuracies: `evaluation.final` when present, else the last
 * evaluated checkpoint. NaN marks a missing or failed metric. Undefined without an evaluation.
 */
export function finalAccuracy(report: RunReport): FinalAccuracy | undefined {
  const ev = report.evaluation;
  if (!ev) return undefined;
  const average = ev.average ? fromNum(ev.average.metrics.accuracy) : undefined;
  if (ev.final) return { original: fromNum(ev.final.original.accuracy), cmd: fromNum(ev.final.cmd.accuracy), average, source: 'final evaluation' };
  const last = ev.checkpoints[ev.checkpoints.length - 1];
  if (!last) return undefined;
  return { original: fromNum(last.original.accuracy), cmd: fromNum(last.cmd.accuracy), average, source: `last evaluated checkpoint, ${last.name}` };
}

/** Relative reconstruction error at the last modelled checkpoint (NaN if there is none). */
export function lastRelativeError(report: RunReport): number {
  const last = report.checkpoints[report.checkpoints.length - 1];
  return last ? fromNum(last.relativeError) : NaN;
}

/** Mean of the finite values; NaN when there are none. */
export function finiteMean(values: readonly number[]): number {
  const ok = values.filter(Number.isFinite);
  return ok.length ? ok.reduce((a, b) => a + b, 0) / ok.length : NaN;
}

/** `x` as a percentage with `digits` decimals, or its non-finite name. */
export function pct(x: number, digits = 2): string {
  return Number.isFinite(x) ? `${(x * 100).toFixed(digits)}%` : String(x);
}

/** A plain number with `digits` decimals, or its non-finite name, or '–' when absent. */
export function fixed(x: number | undefined, digits = 4): string {
  if (x === undefined) return '–';
  return Number.isFinite(x) ? x.toFixed(digits) : String(x);
}

/** "2161 sampled", or "2161 sampled (100000 requested)" when the sampling gave fewer than asked. */
export function samplesText(r: RunReport): string {
  const { samples, samplesRequested } = r.method;
  return samples < samplesRequested ? `${samples} sampled (${samplesRequested} requested)` : `${samples} sampled`;
}

/** "1 gate" / "3 gates". */
export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
