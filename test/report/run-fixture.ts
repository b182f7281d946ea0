/**
 * A real analyze run for the report tests: the built CLI on fixtures/lenet5-fmnist/npz, once
 * per test file, plus helpers to write modified copies of its report and to run `cmd`.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { RunReport } from '../../src/output/report-schema.ts';
import { fixture, repoRoot } from '../helpers/tmp.ts';

export const CLI = path.join(repoRoot, 'bin', 'cmd.js');

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI with a clean colour environment (no TTY, so no colour unless forced). */
export function cmd(args: string[], opts: { cwd?: string; env?: Record<string, string | undefined> } = {}): CliResult {
  const env = { ...process.env, NO_COLOR: undefined, FORCE_COLOR: undefined, CI: '1', ...opts.env } as NodeJS.ProcessEnv;
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const r = spawnSync(process.execPath, [CLI, ...args], { cwd: opts.cwd ?? repoRoot, env, encoding: 'utf8', timeout: 120_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

export interface AnalyzedRun {
  root: string;
  /** The output folder of the real run. */
  dir: string;
  reportFile: string;
  report: RunReport;
  seconds: number;
  cleanup(): void;
}

/** Runs `cmd analyze` on the LeNet-5 fixture into a fresh temp folder (`args` replace `--modes 10`). */
export function analyzeLenet(args: string[] = ['--modes', '10']): AnalyzedRun {
  const root = mkdtempSync(path.join(os.tmpdir(), 'cmd-report-'));
  const dir = path.join(root, 'run');
  const r = cmd(['analyze', fixture('lenet5-fmnist', 'npz'), '-o', dir, ...args, '-q']);
  if (r.status !== 0) throw new Error(`cmd analyze failed (${r.status}): ${r.stderr}`);
  const reportFile = path.join(dir, 'report.json');
  return {
    root,
    dir,
    reportFile,
    report: JSON.parse(readFileSync(reportFile, 'utf8')) as RunReport,
    seconds: (JSON.parse(readFileSync(path.join(dir, 'run-info.json'), 'utf8')) as { analyze: { seconds: number } }).analyze.seconds,
    cleanup: () => rmSync(root, { recursive: true, force: true }),
  };
}

/**
 * Writes a modified copy of the run's report into `<root>/<name>/report.json` (with a
 * run-info.json holding `seconds` unless null) and returns the report path.
 */
export function variant(run: AnalyzedRun, name: string, mutate: (r: RunReport) => void, seconds: number | null = run.seconds, withModel = false): string {
  const dir = path.join(run.root, name);
  mkdirSync(dir, { recursive: true });
  const report = structuredClone(run.report);
  mutate(report);
  writeFileSync(path.join(dir, 'report.json'), `${JSON.stringify(report, null, 2)}\n`);
  if (seconds !== null) writeFileSync(path.join(dir, 'run-info.json'), JSON.stringify({ seconds }));
  if (withModel) for (const f of [report.outputs.model, report.outputs.correlationHeatmap as string]) copyFileSync(path.join(run.dir, f), path.join(dir, f));
  return path.join(dir, 'report.json');
}

/**
 * An evaluation section with the given per-checkpoint accuracies (test inputs for the gate
 * arithmetic and the charts, not measurements; `method` says so).
 */
export function setEvaluation(report: RunReport, original: number[], cmdAcc: number[], average?: { lastK: number; accuracy: number }): void {
  const cps = report.checkpoints.slice(-original.length);
  const loss = (a: number) => Number((1.5 * (1 - a)).toFixed(4));
  report.evaluation = {
    method: 'test-constructed values (not measured)',
    checkpoints: cps.map((c, i) => ({ index: c.index, step: c.step, name: c.name, original: { accuracy: original[i], loss: loss(original[i]) }, cmd: { accuracy: cmdAcc[i], loss: loss(cmdAcc[i]) } })),
    ...(average
      ? { average: { lastK: average.lastK, checkpoints: cps.slice(-average.lastK).map((c) => ({ index: c.index, step: c.step, name: c.name })), metrics: { accuracy: average.accuracy, loss: loss(average.accuracy) } } }
      : {}),
    final: {
      original: { accuracy: original[original.length - 1] },
      cmd: { accuracy: cmdAcc[cmdAcc.length - 1] },
      accuracyDelta: (cmdAcc[cmdAcc.length - 1] - original[original.length - 1]) * 100, // points, as reconstruct writes it
    },
  };
}
