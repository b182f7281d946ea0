/** Locating and loading a report with its run timings (`cmd report`, `--html`). */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { readReport, REPORT_FILE } from '../output/report.ts';
import { readRunInfo } from '../run/run-info.ts';
import type { ReportRun } from './gates.ts';

export const DEFAULT_REPORT = path.join('cmd-out', REPORT_FILE);

/** A report path as given, or `<dir>/report.json` when it names a folder. */
export async function resolveReportPath(arg: string | undefined): Promise<string> {
  const p = arg ?? DEFAULT_REPORT;
  try {
    if ((await fsp.stat(p)).isDirectory()) return path.join(p, REPORT_FILE);
  } catch {
    // a missing path is reported by readReport, naming the file
  }
  return p;
}

/**
 * The decomposition's runtime from the run-info.json beside a report: `analyze`'s entry (a later
 * `reconstruct` adds its own entry beside it), else the decomposition `reconstruct` ran itself;
 * undefined when absent or unusable.
 */
export async function readRunSeconds(reportFile: string): Promise<number | undefined> {
  const info = await readRunInfo(path.dirname(reportFile)).catch(() => undefined);
  const s = info?.analyze?.seconds ?? (info?.reconstructDecomposition as { seconds?: unknown } | undefined)?.seconds;
  return typeof s === 'number' && Number.isFinite(s) && s > 0 ? s : undefined;
}

/** Reads and validates a report (InputError on a bad one) and its runtime. */
export async function loadRun(arg: string | undefined): Promise<ReportRun> {
  const file = await resolveReportPath(arg);
  const report = await readReport(file);
  return { file, report, seconds: await readRunSeconds(file) };
}
