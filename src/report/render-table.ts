/** The terminal view of `cmd report`: aligned tables, colour only through the given chalk. */
import type { ChalkInstance } from 'chalk';
import { formatBytes, formatTable } from './text.ts';
import { fromNum, type NumValue, type RunReport } from '../output/report-schema.ts';
import { formatGateValue, type GateResult, type ReportRun } from './gates.ts';
import { baselineRows, ratio, seriesErrors, sweepRows } from './compare-rows.ts';
import { finalAccuracy, finiteMean, fixed, lastRelativeError, pct, plural, samplesText } from './metrics.ts';

type Metrics = { accuracy?: NumValue; loss?: NumValue; error?: string };

function accCell(m: Metrics | undefined): string {
  if (!m) return '–';
  if (m.error && m.accuracy === undefined) return 'failed';
  return m.accuracy === undefined ? '–' : pct(fromNum(m.accuracy));
}
function lossCell(m: Metrics | undefined): string {
  return m?.loss === undefined ? '–' : fixed(fromNum(m.loss));
}
function ptsCell(orig: Metrics, cmd: Metrics): string {
  const d = (fromNum(cmd.accuracy) - fromNum(orig.accuracy)) * 100;
  return Number.isFinite(d) ? `${d >= 0 ? '+' : ''}${d.toFixed(2)}` : '–';
}

function headline(r: RunReport, file: string): string {
  return `${file}: ${r.method.modes} modes (${r.method.modesRequested} requested), ${samplesText(r)} of ${r.input.modelledParameters.toLocaleString('en-US')} parameters, ${r.checkpoints.length} checkpoints (${r.input.format}, ${r.tool.name} ${r.tool.version})`;
}

function modesTable(r: RunReport): string {
  return formatTable(
    [['mode', 'sampled', 'assigned', 'mean R²', 'reference'], ...r.modes.map((m) => [String(m.mode), String(m.sampledCount), String(m.assignedCount), fixed(fromNum(m.meanR2), 3), `${m.reference.tensor}[${m.reference.element}]`])],
    ['r', 'r', 'r', 'r', 'l'],
  );
}

/** The baseline run's error at `step` (runs may cover different checkpoints). */
function errorAtStep(r: RunReport, step: number): string {
  const hit = r.checkpoints.find((x) => x.step === step);
  return hit ? pct(fromNum(hit.relativeError)) : '–';
}

function checkpointTable(r: RunReport, baseline?: ReportRun): string {
  const baselines = r.baselines ?? [];
  const header = ['index', 'step', 'checkpoint', 'CMD rel. error', ...baselines.map((b) => `${b.name} error`), ...(baseline ? ['baseline run error'] : [])];
  const rows = r.checkpoints.map((c) => [
    String(c.index),
    String(c.step),
    c.name,
    pct(fromNum(c.relativeError)),
    ...baselines.map((b) => {
      const hit = b.checkpoints.find((x) => x.index === c.index);
      return hit ? pct(fromNum(hit.relativeError)) : '–';
    }),
    ...(baseline ? [errorAtStep(baseline.report, c.step)] : []),
  ]);
  return formatTable([header, ...rows], ['r', 'r', 'l', ...header.slice(3).map(() => 'r' as const)]);
}

function evaluationSection(r: RunReport): string[] {
  const ev = r.evaluation;
  if (!ev) return ['evaluation: none in this report (accuracy gates cannot apply)'];
  const rows = ev.checkpoints.map((c) => [String(c.step), c.name, accCell(c.original), accCell(c.cmd), ptsCell(c.original, c.cmd), lossCell(c.original), lossCell(c.cmd)]);
  if (ev.average) rows.push(['', `average of last ${ev.average.lastK}`, '', accCell(ev.average.metrics), '', '', lossCell(ev.average.metrics)]);
  const lines = [`evaluation (${ev.method}):`, formatTable([['step', 'checkpoint', 'original acc', 'CMD acc', 'Δ pts', 'original loss', 'CMD loss'], ...rows], ['r', 'l', 'r', 'r', 'r', 'r', 'r'])];
  const acc = finalAccuracy(r);
  if (acc) {
    lines.push(`final accuracy (${acc.source}): original ${pct(acc.original)}, CMD ${pct(acc.cmd)}${acc.average !== undefined ? `, averaged ${pct(acc.average)}` : ''}; CMD − original ${fixed((acc.cmd - acc.original) * 100, 2)} pts`);
  }
  const errors = ev.checkpoints.flatMap((c) => [c.original.error, c.cmd.error].filter(Boolean).map((e) => `  ${c.name}: ${e}`));
  if (errors.length) lines.push('evaluation failures:', ...errors);
  return lines;
}

function baselinesTable(r: RunReport): string[] {
  const rows = baselineRows(r);
  if (!rows.length) return [];
  const own = seriesErrors(r.checkpoints);
  const final = finalAccuracy(r);
  return [
    'baselines (CMD first, for comparison):',
    formatTable(
      [
        ['name', 'rank', 'storage', '× CMD', 'last error', 'mean error', 'accuracy', 'loss'],
        [`CMD (${r.method.modes} modes)`, '–', formatBytes(r.storage.modelBytes), ratio(1), pct(own.last), pct(own.mean), final ? pct(final.cmd) : '–', '–'],
        ...rows.map((b) => [b.name, b.rank === undefined ? '–' : String(b.rank), b.storageBytes === undefined ? '–' : formatBytes(b.storageBytes), ratio(b.storageVsCmd), pct(b.lastError), pct(b.meanError), accCell(b.metrics), lossCell(b.metrics)]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    ),
  ];
}

function sweepTable(r: RunReport): string[] {
  const rows = sweepRows(r);
  if (!rows.length) return [];
  const withAcc = rows.some((s) => s.metrics?.accuracy !== undefined);
  return [
    'mode sweep (choosing M; * is the model this report describes):',
    formatTable(
      [
        ['', 'modes', 'requested', 'model', '× smaller', 'last error', 'mean error', ...(withAcc ? ['accuracy'] : []), 'file'],
        ...rows.map((s) => [s.main ? '*' : '', String(s.modes), String(s.modesRequested), formatBytes(s.modelBytes), fixed(s.compressionVsTrajectory, 1), pct(s.lastError), pct(s.meanError), ...(withAcc ? [accCell(s.metrics)] : []), s.model]),
      ],
      ['l', 'r', 'r', 'r', 'r', 'r', 'r', ...(withAcc ? (['r'] as const) : []), 'l'],
    ),
  ];
}

function storageLine(r: RunReport): string {
  const s = r.storage;
  return `storage: model ${formatBytes(s.modelBytes)}, checkpoints ${formatBytes(s.checkpointsBytes)} (${fixed(fromNum(s.compressionVsTrajectory), 1)}× smaller), one checkpoint ${formatBytes(s.oneCheckpointBytes)} (${fixed(fromNum(s.compressionVsFinalCheckpoint), 2)}×)`;
}

function comparison(run: ReportRun, baseline: ReportRun): string[] {
  const a = finalAccuracy(run.report);
  const b = finalAccuracy(baseline.report);
  const secs = (x?: number) => (x === undefined ? '–' : `${x.toFixed(2)} s`);
  return [
    `compared with baseline ${baseline.file}:`,
    formatTable(
      [
        ['', 'this run', 'baseline'],
        ['modes', String(run.report.method.modes), String(baseline.report.method.modes)],
        ['last rel. error', pct(lastRelativeError(run.report)), pct(lastRelativeError(baseline.report))],
        ['final CMD accuracy', a ? pct(a.cmd) : '–', b ? pct(b.cmd) : '–'],
        ['model size', formatBytes(run.report.storage.modelBytes), formatBytes(baseline.report.storage.modelBytes)],
        ['runtime', secs(run.seconds), secs(baseline.seconds)],
      ],
      ['l', 'r', 'r'],
    ),
  ];
}

function gatesSection(gates: readonly GateResult[], c: ChalkInstance): string[] {
  if (!gates.length) return ['gates: none requested'];
  const rows = gates.map((g) => [g.name, formatGateValue(g.value), `≤ ${g.thresholdText}`, g.passed ? c.green('PASS') : c.red('FAIL'), g.nonFinite ? `${g.description}; non-finite: ${g.nonFinite}` : g.description]);
  const failed = gates.filter((g) => !g.passed).length;
  return [
    'gates:',
    formatTable([['gate', 'value', 'threshold', 'result', 'what'], ...rows], ['l', 'r', 'l', 'l', 'l']),
    failed ? c.red.bold(`${failed} of ${plural(gates.length, 'gate')} failed`) : c.green.bold(gates.length === 1 ? 'the gate passed' : `all ${gates.length} gates passed`),
  ];
}

/** The whole terminal report. */
export function renderTable(run: ReportRun, gates: readonly GateResult[], c: ChalkInstance, baseline?: ReportRun): string {
  const r = run.report;
  const blocks: string[][] = [
    [c.bold(headline(r, run.file))],
    [modesTable(r)],
    [checkpointTable(r, baseline), `relative reconstruction error: last ${pct(lastRelativeError(r))}, mean ${pct(finiteMean(r.checkpoints.map((x) => fromNum(x.relativeError))))}`],
    evaluationSection(r),
    baselinesTable(r),
    sweepTable(r),
    [storageLine(r), ...(run.seconds !== undefined ? [`runtime: ${run.seconds.toFixed(2)} s`] : [])],
    baseline ? comparison(run, baseline) : [],
    gatesSection(gates, c),
  ];
  return blocks.filter((b) => b.length).map((b) => b.join('\n')).join('\n\n');
}
