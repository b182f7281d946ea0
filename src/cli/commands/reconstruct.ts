/** `cmd reconstruct`: parse → the run layer (src/run/reconstruct.ts) → render. */
import type { RunReport } from '../../output/report-schema.ts';
import { serializeReport } from '../../output/report.ts';
import { reconstruct } from '../../run/reconstruct.ts';
import type { ReconstructRunOptions } from '../../run/options.ts';
import { chalkFor, formatTable, writeOut } from '../terminal.ts';
import { cliHooks, renderSummary } from './analyze.ts';

export interface ReconstructFlags extends ReconstructRunOptions {
  out: string;
  json?: boolean;
  quiet?: boolean;
  html?: string;
}

export async function reconstructCommand(dir: string | undefined, flags: ReconstructFlags): Promise<void> {
  const { report, out, reused } = await reconstruct(dir, flags, cliHooks(flags));
  if (flags.html) await (await import('../../report/html.ts')).writeHtmlReport(out, flags.html);
  // After `cmd analyze` the summary was shown already; repeat it only when the decomposition ran here.
  const evaluation = flags.online ? `reconstructed (online model at each checkpoint): ${(report.outputs.reconstructed ?? []).join(', ')}${report.evaluation ? `\n${renderEvaluation(report).split('\n').slice(1).join('\n')}` : ''}` : renderEvaluation(report);
  writeOut(flags.json ? serializeReport(report) : reused ? evaluation : `${renderSummary(report, out)}\n${evaluation}`);
}

function fmtAcc(x: number | string | undefined): string {
  return typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : x === undefined ? '-' : String(x);
}

/** The accuracy table: original vs CMD per evaluated checkpoint, and the averaged model. */
export function renderEvaluation(r: RunReport): string {
  const ev = r.evaluation;
  const lines: string[] = [`reconstructed: ${(r.outputs.reconstructed ?? []).join(', ')}`];
  if (!ev) return lines.join('\n');
  const c = chalkFor(process.stdout);
  lines.push('', c.bold(`test accuracy (${ev.method})`));
  const rows = [['step', 'original', 'CMD', 'Δ (pts)']];
  for (const e of ev.checkpoints) {
    const o = e.original.accuracy;
    const m = e.cmd.accuracy;
    rows.push([String(e.step), fmtAcc(o), fmtAcc(m), typeof o === 'number' && typeof m === 'number' ? `${((m - o) * 100 >= 0 ? '+' : '')}${((m - o) * 100).toFixed(2)}` : '-']);
  }
  if (ev.average) {
    const a = ev.average.metrics.accuracy;
    const o = ev.final?.original.accuracy;
    rows.push([`avg last ${ev.average.lastK}`, '', fmtAcc(a), typeof a === 'number' && typeof o === 'number' ? `${((a - o) * 100 >= 0 ? '+' : '')}${((a - o) * 100).toFixed(2)}` : '-']);
  }
  lines.push(formatTable(rows, ['r', 'r', 'r', 'r']));
  return lines.join('\n');
}
