import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadCheckpointSet, type CheckpointSet } from '../../checkpoints/checkpoint-set.ts';
import { stripCheckpointSuffix } from '../../checkpoints/naming.ts';
import { InputError, UsageError } from '../../errors.ts';
import { evaluateRun, evaluationPositions, type EvalSpec } from '../../eval/evaluate-run.ts';
import { StagedDir } from '../../output/atomic.ts';
import { placeScratchForRun } from '../../output/run-scratch.ts';
import { inputPaths } from '../../checkpoints/input-paths.ts';
import { refuseInputOverlap } from '../../output/input-guard.ts';
import { MODEL_FILE, SWEEP_DIR } from '../../pipeline/model-file.ts';
import { openCmdModel, type CmdModel } from '../../output/model-reader.ts';
import { readReport, serializeReport, REPORT_FILE, SAMPLES_FILE } from '../../output/report.ts';
import { RunReportSchema, type RunReport } from '../../output/report-schema.ts';
import { HEATMAP_FILE, writeReport } from '../../output/run-outputs.ts';
import { averagedTensors, reconstructedTensors } from '../../reconstruct/checkpoint-tensors.ts';
import { writeCheckpointLike, type OutputFormat } from '../../reconstruct/write-checkpoint.ts';
import { loadOptionsFrom } from '../options.ts';
import { interruptSignal } from '../signals.ts';
import { logLine, writeOut, formatTable, chalkFor } from '../terminal.ts';
import { checkSampleFlags, readSamplesFile, renderSummary, runAnalysis, type AnalyzeFlags } from './analyze.ts';

export interface ReconstructFlags extends AnalyzeFlags {
  model?: string;
  checkpoints: string;
  outputFormat: OutputFormat;
  avgLast: number;
  evalData?: string;
  evalCmd?: string;
  evalEvery: number;
  evalJobs: number;
  evalTimeout: number;
  html?: string;
}

async function exists(p: string): Promise<boolean> {
  return fsp.access(p).then(
    () => true,
    () => false,
  );
}

/** Why `model` does not describe the checkpoints of `set` (undefined when it does). */
export function modelMismatch(model: CmdModel, set: CheckpointSet): string | undefined {
  const tensors = set.space.tensors;
  if (model.tensors.length !== tensors.length) return `the model has ${model.tensors.length} modelled tensors, the folder ${tensors.length}`;
  for (let i = 0; i < tensors.length; i++) {
    const m = model.tensors[i];
    const t = tensors[i];
    if (m.name !== t.name || m.shape.join() !== t.shape.join() || m.dtype !== t.dtype) return `tensor ${t.name} [${t.shape}] ${t.dtype} differs from the model's ${m.name} [${m.shape}] ${m.dtype}`;
  }
  const { from, to } = model.params.window;
  const window = set.checkpoints.slice(from, to);
  if (from !== 0 || to !== set.checkpoints.length || window.length !== model.checkpoints.length) return `the model covers ${model.checkpoints.length} checkpoints, the folder has ${set.checkpoints.length} selected`;
  for (let i = 0; i < window.length; i++) {
    const m = model.checkpoints[i];
    const c = window[i];
    if (m.name !== c.name || m.step !== c.step || m.bytes !== c.bytes) return `checkpoint ${c.name} (step ${c.step}, ${c.bytes} bytes) differs from the model's ${m.name} (step ${m.step}, ${m.bytes} bytes)`;
  }
  return undefined;
}

function sameParameters(model: CmdModel, flags: ReconstructFlags, samplesFrom?: [string, number][]): boolean {
  const p = model.params;
  if (p.variant !== 'post-hoc' || p.modesRequested !== flags.modes) return false;
  if (samplesFrom) return p.sampling === 'file' && JSON.stringify(model.sampleIndex.length) === JSON.stringify(samplesFrom.length);
  return p.samplesRequested === (flags.samples ?? 1000) && p.seed === (flags.seed ?? 0);
}

function choosePositions(spec: string, model: CmdModel): number[] {
  const T = model.checkpoints.length;
  if (spec === 'last') return [T - 1];
  if (spec === 'all') return model.checkpoints.map((_, i) => i);
  return spec.split(',').map((s) => {
    const step = Number(s.trim());
    const i = model.checkpoints.findIndex((c) => c.step === step);
    if (!Number.isFinite(step) || i < 0) throw new UsageError(`--checkpoints: no checkpoint with step ${s.trim()} (steps: ${model.checkpoints.map((c) => c.step).join(', ')})`);
    return i;
  });
}

async function isCmdOutput(dir: string): Promise<boolean> {
  return (await exists(path.join(dir, REPORT_FILE))) && (await exists(path.join(dir, MODEL_FILE)));
}

export async function reconstructCommand(dirArg: string | undefined, flags: ReconstructFlags): Promise<void> {
  checkSampleFlags(flags);
  if (flags.evalData && flags.evalCmd) throw new UsageError('choose one of --eval-data and --eval-cmd');
  const samplesFrom = flags.samplesFrom ? await readSamplesFile(flags.samplesFrom) : undefined;
  const outModel = path.join(flags.out, MODEL_FILE);
  const candidate = flags.model ?? ((await exists(outModel)) ? outModel : undefined);
  let dir = dirArg;
  if (!dir) {
    if (!candidate) throw new UsageError(`no checkpoint folder given and no ${outModel} to take it from`);
    dir = (await openCmdModel(candidate)).source.dir;
  }
  await placeScratchForRun(flags.out, dir);
  const set = await loadCheckpointSet(dir, await loadOptionsFrom(flags));
  for (const n of set.notes) logLine(`note: ${n}`);
  if (flags.html) await refuseInputOverlap(flags.html, inputPaths(set), '--html');
  if (flags.online) {
    const { reconstructOnlineCommand } = await import('../../online/reconstruct-online.ts');
    return reconstructOnlineCommand(set, flags, samplesFrom);
  }

  let reuse: string | undefined;
  if (flags.model) {
    const m = await openCmdModel(flags.model);
    const why = modelMismatch(m, set);
    m.close();
    if (why) throw new InputError(flags.model, `does not match ${dir}: ${why}`, 'model-mismatch');
    reuse = flags.model;
  } else if (candidate) {
    const m = await openCmdModel(candidate);
    if (!modelMismatch(m, set) && sameParameters(m, flags, samplesFrom)) reuse = candidate;
    m.close();
  }

  const staged = await StagedDir.create(flags.out, flags.force || (await isCmdOutput(flags.out)), inputPaths(set));
  try {
    let report: RunReport;
    if (reuse) {
      logLine(`using the existing model ${reuse}`);
      await fsp.copyFile(reuse, staged.file(MODEL_FILE));
      const from = path.dirname(reuse);
      for (const f of [SAMPLES_FILE, HEATMAP_FILE]) if (await exists(path.join(from, f))) await fsp.copyFile(path.join(from, f), staged.file(f));
      if (await exists(path.join(from, SWEEP_DIR))) await fsp.cp(path.join(from, SWEEP_DIR), staged.file(SWEEP_DIR), { recursive: true });
      report = await readReport(path.join(from, REPORT_FILE)).catch(() => {
        throw new InputError(reuse!, `has no readable ${REPORT_FILE} beside it; rerun cmd analyze`, 'missing-report');
      });
    } else {
      report = (await runAnalysis(set, flags, staged.path, samplesFrom)).report;
    }
    const model = await openCmdModel(staged.file(MODEL_FILE));
    try {
      const positions = choosePositions(flags.checkpoints, model);
      const recDir = staged.file('reconstructed');
      await fsp.mkdir(recDir, { recursive: true });
      const written: string[] = [];
      const first = model.params.window.from;
      for (const p of positions) {
        if (interruptSignal.aborted) break;
        const c = set.checkpoints[first + p];
        const out = await writeCheckpointLike(c, recDir, reconstructedTensors(set, model, c, p), flags.outputFormat);
        written.push(path.relative(staged.path, out));
      }
      const window = set.checkpoints.slice(first, model.params.window.to);
      const k = Math.min(flags.avgLast, window.length);
      const averaged = k > 0 ? window.slice(window.length - k) : [];
      if (averaged.length) {
        const last = averaged[averaged.length - 1];
        const name = `avg-last-${k}${last.name.slice(stripCheckpointSuffix(last.name).length)}`;
        const out = await writeCheckpointLike(last, recDir, averagedTensors(averaged), flags.outputFormat, name);
        written.push(path.relative(staged.path, out));
      }
      report = { ...report, outputs: { ...report.outputs, reconstructed: written } };
      if (flags.evalData || flags.evalCmd) {
        const spec: EvalSpec = flags.evalData
          ? { kind: 'tfjs', dataDir: flags.evalData }
          : { kind: 'command', template: flags.evalCmd!, concurrency: flags.evalJobs, timeoutMs: flags.evalTimeout * 1000 };
        // The other models of a mode sweep and the EMA baseline are evaluated at the last checkpoint too.
        const sweep = [];
        for (const m of report.modeSweep ?? []) {
          if (m.modesRequested === report.method.modesRequested) continue;
          const file = staged.file(m.model);
          if (await exists(file)) sweep.push({ modesRequested: m.modesRequested, model: await openCmdModel(file) });
        }
        const emaEntry = report.baselines?.find((b) => b.name.startsWith('ema-'));
        const emaBeta = emaEntry ? Number(emaEntry.name.slice(4)) : undefined;
        try {
          const { extraMetrics, ...evaluation } = await evaluateRun({
            set,
            model,
            positions: evaluationPositions(model.checkpoints.length, flags.evalEvery),
            averaged,
            spec,
            extras: {
              sweep,
              emaBeta: Number.isFinite(emaBeta) ? emaBeta : undefined,
              weighted: (report.baselines ?? []).filter((b) => b.finalWeights?.length).map((b) => ({ name: b.name, weights: b.finalWeights! })),
            },
            scratchDir: path.join(staged.path, '.eval'),
            signal: interruptSignal,
            log: logLine,
          });
          report = { ...report, evaluation };
          const main = evaluation.final?.cmd;
          if (report.modeSweep) report.modeSweep = report.modeSweep.map((m) => ({ ...m, metrics: m.modesRequested === report.method.modesRequested ? main : extraMetrics?.sweep.get(m.modesRequested) }));
          if (report.baselines) {
            report.baselines = report.baselines.map((b) => {
              if (b.name === `avg-last-${evaluation.average?.lastK}`) return { ...b, metrics: evaluation.average!.metrics };
              if (b === emaEntry && extraMetrics?.ema) return { ...b, metrics: extraMetrics.ema };
              const w = extraMetrics?.weighted.get(b.name);
              return w ? { ...b, metrics: w } : b;
            });
          }
        } finally {
          for (const sw of sweep) sw.model.close();
        }
        await fsp.rm(path.join(staged.path, '.eval'), { recursive: true, force: true });
      }
      report = RunReportSchema.parse(report);
      await writeReport(staged.path, report);
    } finally {
      model.close();
    }
    if (interruptSignal.aborted) throw new UsageError('interrupted');
    await staged.commit();
    if (flags.html) await (await import('../../report/html.ts')).writeHtmlReport(flags.out, flags.html);
    // After `cmd analyze` the summary was shown already; repeat it only when the decomposition ran here.
    writeOut(flags.json ? serializeReport(report) : reuse ? renderEvaluation(report) : `${renderSummary(report, flags.out)}\n${renderEvaluation(report)}`);
  } catch (e) {
    await staged.abort();
    throw e;
  }
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
