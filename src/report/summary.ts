/**
 * The `--format json` document: the report's headline numbers, the optional comparison with a
 * baseline run, and the gates, all from the same inputs the table and markdown views render.
 * Non-finite numbers use the report's tags ('NaN', 'Infinity'), as report.json does.
 */
import { fromNum, num, type NumValue } from '../output/report-schema.ts';
import type { GateResult, ReportRun } from './gates.ts';
import { sweepRows } from './compare-rows.ts';
import { finalAccuracy, finiteMean, lastRelativeError } from './metrics.ts';

function runFacts(run: ReportRun) {
  const r = run.report;
  const acc = finalAccuracy(r);
  return {
    file: run.file,
    modes: r.method.modes,
    samples: r.method.samples,
    checkpoints: r.checkpoints.length,
    modelledParameters: r.input.modelledParameters,
    lastRelativeError: num(lastRelativeError(r)),
    meanRelativeError: num(finiteMean(r.checkpoints.map((c) => fromNum(c.relativeError)))),
    finalAccuracy: acc ? { original: num(acc.original), cmd: num(acc.cmd), ...(acc.average !== undefined ? { average: num(acc.average) } : {}) } : null,
    modelBytes: r.storage.modelBytes,
    seconds: run.seconds ?? null,
  };
}

/** One swept M: its headline numbers (the per-checkpoint errors stay in report.json). */
export interface ModeSweepSummary {
  modesRequested: number;
  modes: number;
  main: boolean;
  model: string;
  modelBytes: number;
  compressionVsTrajectory: NumValue;
  lastRelativeError: NumValue;
  meanRelativeError: NumValue;
  metrics: { accuracy?: NumValue; loss?: NumValue; error?: string } | null;
}

function modeSweep(run: ReportRun): ModeSweepSummary[] | null {
  const rows = sweepRows(run.report);
  if (!rows.length) return null;
  return rows.map((s) => ({
    modesRequested: s.modesRequested,
    modes: s.modes,
    main: s.main,
    model: s.model,
    modelBytes: s.modelBytes,
    compressionVsTrajectory: num(s.compressionVsTrajectory),
    lastRelativeError: num(s.lastError),
    meanRelativeError: num(s.meanError),
    metrics: s.metrics ?? null,
  }));
}

export interface ReportSummary {
  report: ReturnType<typeof runFacts> & {
    tool: { name: string; version: string };
    input: { dir: string; format: string };
    modeSizes: { mode: number; sampled: number; assigned: number; meanR2: NumValue }[];
    checkpointErrors: { index: number; step: number; name: string; relativeError: NumValue }[];
    evaluation: unknown;
    baselines: unknown;
    modeSweep: ModeSweepSummary[] | null;
    storage: unknown;
  };
  baseline: ReturnType<typeof runFacts> | null;
  gates: { name: string; description: string; threshold: number; thresholdText: string; value: NumValue; passed: boolean; nonFinite?: string }[];
  passed: boolean;
}

export function buildSummary(run: ReportRun, gates: readonly GateResult[], baseline?: ReportRun): ReportSummary {
  const r = run.report;
  return {
    report: {
      ...runFacts(run),
      tool: r.tool,
      input: { dir: r.input.dir, format: r.input.format },
      modeSizes: r.modes.map((m) => ({ mode: m.mode, sampled: m.sampledCount, assigned: m.assignedCount, meanR2: m.meanR2 })),
      checkpointErrors: r.checkpoints.map((c) => ({ index: c.index, step: c.step, name: c.name, relativeError: c.relativeError })),
      evaluation: r.evaluation ?? null,
      baselines: r.baselines ?? null,
      modeSweep: modeSweep(run),
      storage: r.storage,
    },
    baseline: baseline ? runFacts(baseline) : null,
    gates: gates.map((g) => ({ name: g.name, description: g.description, threshold: g.threshold, thresholdText: g.thresholdText, value: num(g.value), passed: g.passed, ...(g.nonFinite ? { nonFinite: g.nonFinite } : {}) })),
    passed: gates.every((g) => g.passed),
  };
}
