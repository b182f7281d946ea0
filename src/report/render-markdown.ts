/**
 * The markdown view of `cmd report`, sized for a CI comment: a headline with each gate's
 * verdict first, then compact tables. No colour codes, ever.
 */
import { formatBytes } from './text.ts';
import { fromNum, type NumValue } from '../output/report-schema.ts';
import { formatGateValue, gateLine, type GateResult, type ReportRun } from './gates.ts';
import { baselineRows, ratio, seriesErrors, sweepRows } from './compare-rows.ts';
import { finalAccuracy, finiteMean, fixed, lastRelativeError, pct, plural, samplesText } from './metrics.ts';

/** Pipes and newlines would break a table row. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');
}
function table(rows: string[][], align: ('l' | 'r')[]): string[] {
  const [head, ...body] = rows;
  return [`| ${head.map(cell).join(' | ')} |`, `| ${align.map((a) => (a === 'r' ? '---:' : ':---')).join(' | ')} |`, ...body.map((r) => `| ${r.map(cell).join(' | ')} |`)];
}
const accOf = (x: NumValue | undefined) => (x === undefined ? '–' : pct(fromNum(x)));

/** The gate verdicts as one headline line. */
export function gateHeadline(gates: readonly GateResult[]): string {
  if (!gates.length) return '**CMD report** — no gates requested';
  const failed = gates.filter((g) => !g.passed).length;
  const verdicts = gates.map((g) => `${g.passed ? '✅' : '❌'} ${gateLine(g).replace(g.name, `\`${g.name}\``)}`).join(' · ');
  return `**CMD report: ${failed ? `❌ ${failed} of ${plural(gates.length, 'gate')} failed` : gates.length === 1 ? '✅ the gate passed' : `✅ all ${gates.length} gates passed`}** — ${verdicts}`;
}

export function renderMarkdown(run: ReportRun, gates: readonly GateResult[], baseline?: ReportRun): string {
  const r = run.report;
  const out: string[] = [gateHeadline(gates), ''];
  out.push(
    `\`${run.file}\`: ${r.method.modes} modes from ${samplesText(r)} of ${r.input.modelledParameters.toLocaleString('en-US')} parameters over ${r.checkpoints.length} checkpoints (${r.input.format}); ` +
      `relative reconstruction error last ${pct(lastRelativeError(r))}, mean ${pct(finiteMean(r.checkpoints.map((c) => fromNum(c.relativeError))))}; ` +
      `model ${formatBytes(r.storage.modelBytes)} vs ${formatBytes(r.storage.checkpointsBytes)} of checkpoints.`,
    '',
  );
  if (gates.length) {
    out.push(...table([['gate', 'value', 'threshold', 'result'], ...gates.map((g) => [`\`${g.name}\``, formatGateValue(g.value), `≤ ${g.thresholdText}`, g.passed ? 'pass' : g.nonFinite ? `**FAIL** (non-finite: ${g.nonFinite})` : '**FAIL**'])], ['l', 'r', 'r', 'l']), '');
  }
  const acc = finalAccuracy(r);
  const ev = r.evaluation;
  if (ev && acc) {
    out.push(`Final accuracy (${acc.source}, ${ev.method}): original ${pct(acc.original)}, CMD ${pct(acc.cmd)}${acc.average !== undefined ? `, averaged (last ${ev.average?.lastK}) ${pct(acc.average)}` : ''}.`, '');
    out.push('<details><summary>Per-checkpoint accuracy</summary>', '');
    out.push(...table([['step', 'original', 'CMD'], ...ev.checkpoints.map((c) => [String(c.step), accOf(c.original.accuracy), accOf(c.cmd.accuracy)])], ['r', 'r', 'r']));
    out.push('', '</details>', '');
  } else {
    out.push('No evaluation in this report.', '');
  }
  const baselines = baselineRows(r);
  if (baselines.length) {
    const own = seriesErrors(r.checkpoints);
    // A column of dashes is noise in a CI comment: accuracy only when something was evaluated.
    const withAcc = acc !== undefined || baselines.some((b) => b.metrics?.accuracy !== undefined);
    const accCol = (x: string) => (withAcc ? [x] : []);
    out.push(
      '**Baselines**',
      '',
      ...table(
        [
          ['method', 'storage', '× CMD', 'last error', 'mean error', ...accCol('accuracy')],
          [`CMD (${r.method.modes} modes)`, formatBytes(r.storage.modelBytes), ratio(1), pct(own.last), pct(own.mean), ...accCol(acc ? pct(acc.cmd) : '–')],
          ...baselines.map((b) => [b.name, b.storageBytes === undefined ? '–' : formatBytes(b.storageBytes), ratio(b.storageVsCmd), pct(b.lastError), pct(b.meanError), ...accCol(accOf(b.metrics?.accuracy))]),
        ],
        ['l', 'r', 'r', 'r', 'r', ...(withAcc ? (['r'] as const) : [])],
      ),
      '',
    );
  }
  const sweep = sweepRows(r);
  if (sweep.length) {
    const withAcc = sweep.some((s) => s.metrics?.accuracy !== undefined);
    out.push(
      '**Choosing M** (mode sweep; bold is this report\'s model)',
      '',
      ...table(
        [['modes', 'requested', 'model', 'last error', 'mean error', ...(withAcc ? ['accuracy'] : [])], ...sweep.map((s) => [s.main ? `**${s.modes}**` : String(s.modes), String(s.modesRequested), formatBytes(s.modelBytes), pct(s.lastError), pct(s.meanError), ...(withAcc ? [accOf(s.metrics?.accuracy)] : [])])],
        ['r', 'r', 'r', 'r', 'r', ...(withAcc ? (['r'] as const) : [])],
      ),
      '',
    );
  }
  if (baseline) {
    const b = finalAccuracy(baseline.report);
    const secs = (x?: number) => (x === undefined ? '–' : `${x.toFixed(2)} s`);
    out.push(
      ...table(
        [
          ['', 'this run', `baseline \`${baseline.file}\``],
          ['last rel. error', pct(lastRelativeError(r)), pct(lastRelativeError(baseline.report))],
          ['final CMD accuracy', acc ? pct(acc.cmd) : '–', b ? pct(b.cmd) : '–'],
          ['runtime', secs(run.seconds), secs(baseline.seconds)],
        ],
        ['l', 'r', 'r'],
      ),
      '',
    );
  }
  out.push(`<sub>${r.tool.name} ${r.tool.version}; mean R² by mode: ${r.modes.map((m) => fixed(fromNum(m.meanR2), 2)).join(', ')}</sub>`);
  return out.join('\n');
}
