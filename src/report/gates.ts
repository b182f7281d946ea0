/**
 * `cmd report` thresholds. Pure: the command loads the reports and timings, this decides
 * (docs/report.md, "Gates").
 * - A value that was never measured (no evaluation, an accuracy missing because an evaluation
 *   failed in an older run, no checkpoint) cannot be gated: InputError naming the report and
 *   the value, exit 2 — CI must not read a broken pipeline as a regression or a pass.
 * - A value that was measured and is not finite (a NaN reconstruction error, a NaN loss of a
 *   diverged reconstruction) fails its gate, and the gate says it was non-finite.
 * - Each gate carries its threshold as it was interpreted (`thresholdText`), so a reader sees
 *   "0.05 (5%)" and never has to guess whether 5 meant 5 % or 500 %.
 */
import { InputError, UsageError } from '../errors.ts';
import { fromNum, type NumValue, type RunReport } from '../output/report-schema.ts';
import { lastRelativeError, plural } from './metrics.ts';

export interface GateThresholds {
  /** Largest allowed accuracy drop, in percentage points. */
  maxAccDrop?: number;
  /** Largest allowed relative reconstruction error at the last checkpoint (a fraction). */
  maxReconError?: number;
  /** Largest allowed runtime ratio this run / baseline run. */
  maxSlowdown?: number;
}

export interface ReportRun {
  file: string;
  report: RunReport;
  /** Wall-clock seconds from run-info.json, when it was found. */
  seconds?: number;
}

export interface GateResult {
  name: 'max-acc-drop' | 'max-acc-drop-vs-baseline' | 'max-recon-error' | 'max-slowdown';
  /** One line saying what was compared. */
  description: string;
  threshold: number;
  /** The threshold in the gate's unit, as it was interpreted ("0.05 (5%)", "0.5 pts", "1.5×"). */
  thresholdText: string;
  value: number;
  passed: boolean;
  /** Why the gate failed regardless of the threshold: a recorded value was not finite. */
  nonFinite?: string;
}

type GateName = GateResult['name'];
type Flag = '--max-acc-drop' | '--max-recon-error' | '--max-slowdown';

/** The threshold in its unit, for every line that shows it. */
export function describeThreshold(name: GateName, threshold: number): string {
  if (name === 'max-recon-error') return `${threshold} (${Number((threshold * 100).toPrecision(6))}%)`;
  if (name === 'max-slowdown') return `${threshold}×`;
  return `${threshold} pts`;
}

/**
 * Reads a threshold flag in its unit (docs/report.md, "Gates"):
 * - `--max-recon-error`: a fraction (`0.05`) or a percentage (`5%`). A bare number above 1 is
 *   refused: every display shows the error in percent, so `5` almost surely meant 5 %, and
 *   reading it as 500 % would pass anything.
 * - `--max-acc-drop`: percentage points (`0.5`, also written `0.5pp` or `0.5%`).
 * - `--max-slowdown`: a ratio > 0 (`1.5` or `1.5x`).
 */
export function parseGateThreshold(flag: Flag, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const raw = text.trim();
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+)(?:e[+-]?\d+)?)\s*(%|pp|x|×)?$/i.exec(raw);
  const x = m ? Number(m[1]) : NaN;
  const unit = m?.[2]?.toLowerCase();
  const bad = (what: string) => new UsageError(`${flag} must be ${what}, got '${text}'`);
  if (flag === '--max-recon-error') {
    if (!Number.isFinite(x) || x < 0 || (unit !== undefined && unit !== '%')) throw bad('a fraction (0.05) or a percentage (5%)');
    if (unit === '%') return x / 100;
    if (x > 1) throw new UsageError(`${flag} ${raw} is ambiguous: it takes a fraction (0.05 = 5%); write ${raw}% or ${x / 100}`);
    return x;
  }
  if (flag === '--max-acc-drop') {
    if (!Number.isFinite(x) || x < 0 || (unit !== undefined && unit !== '%' && unit !== 'pp')) throw bad('a non-negative number of percentage points (0.5 or 0.5pp)');
    return x;
  }
  if (!Number.isFinite(x) || x <= 0 || (unit !== undefined && unit !== 'x' && unit !== '×')) throw bad('a positive ratio (1.5 or 1.5x)');
  return x;
}

function gate(name: GateName, description: string, value: number, threshold: number, nonFinite?: string): GateResult {
  const thresholdText = describeThreshold(name, threshold);
  if (nonFinite !== undefined || !Number.isFinite(value)) {
    return { name, description, threshold, thresholdText, value, passed: false, nonFinite: nonFinite ?? `the value is ${value} (non-finite)` };
  }
  return { name, description, threshold, thresholdText, value, passed: value <= threshold };
}

type Evaluation = NonNullable<RunReport['evaluation']>;
type MetricsEntry = Evaluation['checkpoints'][number]['original'];

interface FinalMetrics {
  original: MetricsEntry;
  cmd: MetricsEntry;
  source: string;
}

/** The final original and CMD metrics: `evaluation.final`, else the last evaluated checkpoint. */
function finalMetrics(run: ReportRun, role: string): FinalMetrics {
  const ev = run.report.evaluation;
  if (!ev) throw new InputError(run.file, `--max-acc-drop needs accuracies, but the ${role} report has no evaluation section (evaluate with cmd reconstruct --eval-data or --eval-cmd)`, 'gate-no-evaluation');
  if (ev.final) return { original: ev.final.original, cmd: ev.final.cmd, source: 'final evaluation' };
  const last = ev.checkpoints[ev.checkpoints.length - 1];
  if (!last) throw new InputError(run.file, `--max-acc-drop needs accuracies, but the ${role} report's evaluation lists no checkpoint`, 'gate-no-evaluation');
  return { original: last.original, cmd: last.cmd, source: `last evaluated checkpoint, ${last.name}` };
}

/** A recorded accuracy, or an InputError saying which one was never measured (and why, when the report says). */
function measuredAccuracy(run: ReportRun, role: string, which: string, m: MetricsEntry): number {
  if (m.accuracy === undefined) {
    throw new InputError(run.file, `--max-acc-drop needs the ${role} report's ${which} accuracy, but it was never measured${m.error ? ` (its evaluation failed: ${m.error})` : ''}`, 'gate-missing-value');
  }
  return fromNum(m.accuracy);
}

/** Names the recorded non-finite accuracies or losses among `entries`, or undefined when all are finite. */
function nonFiniteMetrics(entries: [string, MetricsEntry][]): string | undefined {
  const found: string[] = [];
  for (const [label, m] of entries) {
    for (const key of ['accuracy', 'loss'] as const) {
      const v: NumValue | undefined = m[key];
      if (v !== undefined && !Number.isFinite(fromNum(v))) found.push(`${label} ${key} was ${String(fromNum(v))} (non-finite)`);
    }
  }
  return found.length ? found.join(', ') : undefined;
}

/** Checks each requested threshold; throws UsageError / InputError when a gate cannot apply to these inputs. */
export function evaluateGates(run: ReportRun, thresholds: GateThresholds, baseline?: ReportRun): GateResult[] {
  const gates: GateResult[] = [];
  if (thresholds.maxAccDrop !== undefined) {
    const f = finalMetrics(run, 'analysed');
    const original = measuredAccuracy(run, 'analysed', 'original', f.original);
    const cmd = measuredAccuracy(run, 'analysed', 'CMD', f.cmd);
    const bad = nonFiniteMetrics([['original', f.original], ['CMD', f.cmd]]);
    gates.push(gate('max-acc-drop', `CMD accuracy vs original (${f.source}): drop in percentage points`, (original - cmd) * 100, thresholds.maxAccDrop, bad));
    if (baseline) {
      const b = finalMetrics(baseline, 'baseline');
      const baseCmd = measuredAccuracy(baseline, 'baseline', 'CMD', b.cmd);
      const badBase = nonFiniteMetrics([['CMD', f.cmd], ['baseline CMD', b.cmd]]);
      gates.push(gate('max-acc-drop-vs-baseline', `CMD accuracy vs the baseline report's CMD accuracy: drop in percentage points`, (baseCmd - cmd) * 100, thresholds.maxAccDrop, badBase));
    }
  }
  if (thresholds.maxReconError !== undefined) {
    const last = run.report.checkpoints[run.report.checkpoints.length - 1];
    if (!last) throw new InputError(run.file, '--max-recon-error needs the reconstruction error at the last checkpoint, but the report lists no checkpoint', 'gate-missing-value');
    const value = lastRelativeError(run.report);
    gates.push(gate('max-recon-error', `relative reconstruction error at the last checkpoint (${last.name})`, value, thresholds.maxReconError, Number.isFinite(value) ? undefined : `the error at ${last.name} was ${value} (non-finite)`));
  }
  if (thresholds.maxSlowdown !== undefined) {
    if (!baseline) throw new UsageError('--max-slowdown compares runtimes with a baseline run; give --baseline <report.json>');
    if (run.seconds === undefined) throw new UsageError(`--max-slowdown needs the runtime in run-info.json next to ${run.file}`);
    if (baseline.seconds === undefined) throw new UsageError(`--max-slowdown needs the runtime in run-info.json next to ${baseline.file}`);
    gates.push(gate('max-slowdown', `runtime ${run.seconds.toFixed(2)} s vs baseline ${baseline.seconds.toFixed(2)} s: ratio`, run.seconds / baseline.seconds, thresholds.maxSlowdown));
  }
  return gates;
}

/** One gate as a line: name, value, comparison with the interpreted threshold, and why a non-finite one failed. */
export function gateLine(g: GateResult): string {
  const head = `${g.name} (${formatGateValue(g.value)} ${g.passed ? '≤' : '>'} ${g.thresholdText})`;
  return g.nonFinite ? `${g.name} (non-finite: ${g.nonFinite}; threshold ${g.thresholdText})` : head;
}

/** One line naming the failed gates, for the GateError message. */
export function failureMessage(gates: readonly GateResult[]): string | undefined {
  const failed = gates.filter((g) => !g.passed);
  if (!failed.length) return undefined;
  return `${failed.length} of ${plural(gates.length, 'gate')} failed: ${failed.map(gateLine).join(', ')}`;
}

/** Gate values are percentages points, fractions or ratios: four significant digits suit all. */
export function formatGateValue(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
}
