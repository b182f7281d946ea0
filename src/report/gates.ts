/**
 * `cmd report` thresholds. Pure: the command loads the reports and timings, this decides.
 * A gate whose value cannot be computed (NaN accuracy from a failed evaluation, a NaN error)
 * fails: a gate only passes on evidence.
 */
import { UsageError } from '../errors.ts';
import type { RunReport } from '../output/report-schema.ts';
import { finalAccuracy, lastRelativeError, plural } from './metrics.ts';

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
  value: number;
  passed: boolean;
}

function gate(name: GateResult['name'], description: string, value: number, threshold: number): GateResult {
  // NaN <= x is false: an unmeasurable value fails the gate.
  return { name, description, threshold, value, passed: value <= threshold };
}

function requireEvaluation(run: ReportRun, role: string): NonNullable<ReturnType<typeof finalAccuracy>> {
  const acc = finalAccuracy(run.report);
  if (!acc) throw new UsageError(`--max-acc-drop needs accuracies, but the ${role} report ${run.file} has no evaluation section (evaluate with cmd reconstruct --eval-data or --eval-cmd)`);
  return acc;
}

/** Checks each requested threshold; throws UsageError when a gate cannot apply to these inputs. */
export function evaluateGates(run: ReportRun, thresholds: GateThresholds, baseline?: ReportRun): GateResult[] {
  const gates: GateResult[] = [];
  if (thresholds.maxAccDrop !== undefined) {
    const acc = requireEvaluation(run, 'analysed');
    const drop = (acc.original - acc.cmd) * 100;
    gates.push(gate('max-acc-drop', `CMD accuracy vs original (${acc.source}): drop in percentage points`, drop, thresholds.maxAccDrop));
    if (baseline) {
      const base = requireEvaluation(baseline, 'baseline');
      const dropVsBase = (base.cmd - acc.cmd) * 100;
      gates.push(gate('max-acc-drop-vs-baseline', `CMD accuracy vs the baseline report's CMD accuracy: drop in percentage points`, dropVsBase, thresholds.maxAccDrop));
    }
  }
  if (thresholds.maxReconError !== undefined) {
    const last = run.report.checkpoints[run.report.checkpoints.length - 1];
    gates.push(gate('max-recon-error', `relative reconstruction error at the last checkpoint${last ? ` (${last.name})` : ''}`, lastRelativeError(run.report), thresholds.maxReconError));
  }
  if (thresholds.maxSlowdown !== undefined) {
    if (!baseline) throw new UsageError('--max-slowdown compares runtimes with a baseline run; give --baseline <report.json>');
    if (run.seconds === undefined) throw new UsageError(`--max-slowdown needs the runtime in run-info.json next to ${run.file}`);
    if (baseline.seconds === undefined) throw new UsageError(`--max-slowdown needs the runtime in run-info.json next to ${baseline.file}`);
    gates.push(gate('max-slowdown', `runtime ${run.seconds.toFixed(2)} s vs baseline ${baseline.seconds.toFixed(2)} s: ratio`, run.seconds / baseline.seconds, thresholds.maxSlowdown));
  }
  return gates;
}

/** One line naming the failed gates, for the GateError message. */
export function failureMessage(gates: readonly GateResult[]): string | undefined {
  const failed = gates.filter((g) => !g.passed);
  if (!failed.length) return undefined;
  return `${failed.length} of ${plural(gates.length, 'gate')} failed: ${failed.map((g) => `${g.name} (${formatGateValue(g.value)} > ${g.threshold})`).join(', ')}`;
}

/** Gate values are percentages points, fractions or ratios: four significant digits suit all. */
export function formatGateValue(x: number): string {
  return Number.isFinite(x) ? String(Number(x.toPrecision(4))) : String(x);
}
