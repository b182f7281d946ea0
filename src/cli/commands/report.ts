/** `cmd report`: reads a report (and optionally a baseline run), prints it, checks the gates. */
import { GateError, UsageError } from '../../errors.ts';
import { evaluateGates, failureMessage, parseGateThreshold, type GateThresholds } from '../../report/gates.ts';
import { buildHtmlInputs, writeHtmlFile } from '../../report/html.ts';
import { loadRun } from '../../report/load.ts';
import { renderMarkdown } from '../../report/render-markdown.ts';
import { renderTable } from '../../report/render-table.ts';
import { buildSummary } from '../../report/summary.ts';
import { chalkFor, writeOut } from '../terminal.ts';
import path from 'node:path';
import { refuseInputOverlap } from '../../output/input-guard.ts';
import type { ReportRun } from '../../report/gates.ts';

/** The files `cmd report` reads: each report, and the model and heatmap it names beside it. */
function reportInputs(runs: (ReportRun | undefined)[]): string[] {
  return runs.flatMap((r) => {
    if (!r) return [];
    const dir = path.dirname(path.resolve(r.file));
    const named = [r.report.outputs.model, r.report.outputs.correlationHeatmap].filter((n): n is string => typeof n === 'string');
    return [r.file, ...named.map((n) => path.resolve(dir, n))];
  });
}

/** Flags as commander hands them over: thresholds still strings, checked here. */
export interface ReportCliFlags {
  baseline?: string;
  maxAccDrop?: string;
  maxReconError?: string;
  maxSlowdown?: string;
  format: 'table' | 'markdown' | 'json';
  html?: string;
}

export async function reportCommand(file: string | undefined, flags: ReportCliFlags): Promise<void> {
  const thresholds: GateThresholds = {
    maxAccDrop: parseGateThreshold('--max-acc-drop', flags.maxAccDrop),
    maxReconError: parseGateThreshold('--max-recon-error', flags.maxReconError),
    maxSlowdown: parseGateThreshold('--max-slowdown', flags.maxSlowdown),
  };
  if (thresholds.maxSlowdown !== undefined && !flags.baseline) throw new UsageError('--max-slowdown compares runtimes with a baseline run; give --baseline <report.json>');
  const run = await loadRun(file);
  const baseline = flags.baseline ? await loadRun(flags.baseline) : undefined;
  const gates = evaluateGates(run, thresholds, baseline);

  // Written before the gates decide, so a failing run still leaves its report to look at.
  if (flags.html) await refuseInputOverlap(flags.html, reportInputs([run, baseline]), '--html');
  if (flags.html) await writeHtmlFile(flags.html, await buildHtmlInputs(run, { baseline, gates }));
  if (flags.format === 'json') writeOut(JSON.stringify(buildSummary(run, gates, baseline), null, 2));
  else if (flags.format === 'markdown') writeOut(renderMarkdown(run, gates, baseline));
  else writeOut(renderTable(run, gates, chalkFor(process.stdout), baseline));

  const failed = failureMessage(gates);
  if (failed) throw new GateError(failed);
}
