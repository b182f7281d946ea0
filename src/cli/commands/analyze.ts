import type { RunReport } from '../../output/report-schema.ts';
import type { AnalyzeRunOptions } from '../../run/options.ts';
import { createProgress } from '../progress.ts';
import { interruptSignal } from '../signals.ts';
import { chalkFor, formatBytes, formatTable, logLine, warn, writeOut } from '../terminal.ts';

export interface AnalyzeFlags extends AnalyzeRunOptions {
  out: string;
  json?: boolean;
  quiet?: boolean;
  html?: string;
}

/** The hooks every run command lends the run layer: Ctrl-C, stderr lines, progress bars. */
export function cliHooks(flags: { quiet?: boolean; json?: boolean }) {
  return { signal: interruptSignal, log: logLine, warn, progress: createProgress(flags) };
}

export async function analyzeCommand(dir: string | undefined, flags: AnalyzeFlags): Promise<void> {
  // Imported here: the scale-out commands borrow cliHooks without loading the one-process run.
  const { analyze } = await import('../../run/analyze.ts');
  const { report, out } = await analyze(dir, flags, cliHooks(flags));
  if (flags.html) await (await import('../../report/html.ts')).writeHtmlReport(out, flags.html);
  writeOut(flags.json ? (await import('../../output/report.ts')).serializeReport(report) : renderSummary(report, out));
}

function pct(x: number | string): string {
  return typeof x === 'number' ? `${(x * 100).toFixed(2)}%` : x;
}

export function renderSummary(r: RunReport, out: string): string {
  const c = chalkFor(process.stdout);
  const first = r.checkpoints[0];
  const last = r.checkpoints[r.checkpoints.length - 1];
  const lines = [
    c.bold(`CMD: ${r.method.modes} modes (${r.method.modesRequested} requested) from ${r.method.samples} sampled parameters, ${r.input.modelledParameters.toLocaleString('en-US')} parameters over ${r.checkpoints.length} checkpoints`),
    '',
    formatTable(
      [['mode', 'sampled', 'assigned', 'mean R²', 'reference'], ...r.modes.map((m) => [String(m.mode), String(m.sampledCount), String(m.assignedCount), typeof m.meanR2 === 'number' ? m.meanR2.toFixed(3) : m.meanR2, `${m.reference.tensor}[${m.reference.element}]`])],
      ['r', 'r', 'r', 'r', 'l'],
    ),
    '',
    `relative reconstruction error: ${pct(first.relativeError)} at step ${first.step} (first), ${pct(last.relativeError)} at step ${last.step} (last)`,
    `storage: ${formatBytes(r.storage.modelBytes)} model vs ${formatBytes(r.storage.checkpointsBytes)} of checkpoints (${typeof r.storage.compressionVsTrajectory === 'number' ? r.storage.compressionVsTrajectory.toFixed(1) : r.storage.compressionVsTrajectory}x), ${formatBytes(r.storage.oneCheckpointBytes)} for one checkpoint`,
    `outputs: ${out}/cmd-model.safetensors, ${out}/report.json, ${out}/samples.json`,
  ];
  return lines.join('\n');
}
