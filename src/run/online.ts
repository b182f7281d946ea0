/**
 * `reconstruct --online`: the online model at each chosen checkpoint t (a(t), b(t) fitted on
 * 0..t, snapshots taken during one online pass), written like the checkpoints, and evaluated like
 * post-hoc reconstructions: each position with its own snapshot model.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointSet, LoadOptions } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, UsageError } from '../errors.ts';
import type { EvalSpec, WrittenFiles } from '../eval/evaluate-run.ts';
import { MODEL_FILE, SWEEP_DIR } from '../pipeline/model-file.ts';
import { openCmdModel, type CmdModel } from '../output/model-reader.ts';
import { REPORT_FILE, RUN_INFO_FILE, SAMPLES_FILE } from '../output/report.ts';
import { RunReportSchema, type RunReport } from '../output/report-schema.ts';
import { HEATMAP_FILE, writeReport } from '../output/run-outputs.ts';
import { originalTensors, reconstructedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeAverageLike, writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import { onlineAnalysis, onlineOptions, resolveWarmup } from '../online/run-online.ts';
import { DEFAULTS } from './defaults.ts';
import { evaluateInto, evaluationScope } from './evaluate.ts';
import type { ResolvedHooks } from './hooks.ts';
import type { ReconstructRunOptions } from './options.ts';
import { choosePositions, type ReconstructRun } from './reconstruct.ts';
import { keyRequest } from './decompose.ts';
import { decompositionKey, fileSha256, inputsHash } from './provenance.ts';
import { processFacts, writeRunInfo } from './run-info.ts';
import { stageOutput } from './staging.ts';

export async function reconstructOnline(set: CheckpointSet, o: ReconstructRunOptions, load: LoadOptions, samplesFrom: [string, number][] | undefined, spec: EvalSpec | undefined, hooks: ResolvedHooks): Promise<ReconstructRun> {
  if (o.model) throw new UsageError('--model cannot be combined with --online (the online model changes per checkpoint; it is recomputed)');
  const started = performance.now();
  const out = o.out ?? DEFAULTS.out;
  const F = resolveWarmup(o.warmup, set.checkpoints.length);
  const positions = choosePositions(o.checkpoints ?? DEFAULTS.checkpoints, set.checkpoints);
  const previous = await fsp.access(path.join(out, MODEL_FILE)).then(() => true, () => false);
  const staged = await stageOutput(out, Boolean(o.force) || previous, set, [o.samplesFrom, o.tensorTable, o.evalData], o.html);
  hooks.log('running the decomposition: online reconstructions are recomputed (the online model changes per checkpoint)');
  try {
    // The folder's other files stay; the old decomposition's files are replaced by this one's.
    for (const n of previous ? await fsp.readdir(out) : []) {
      if (n.startsWith('.') || [MODEL_FILE, REPORT_FILE, SAMPLES_FILE, HEATMAP_FILE, SWEEP_DIR, RUN_INFO_FILE, 'reconstructed'].includes(n)) continue;
      await fsp.cp(path.join(out, n), staged.file(n), { recursive: true, preserveTimestamps: true });
    }
    const snapshotDir = staged.file('.online-snapshots');
    const options = onlineOptions(o, F, samplesFrom, set.space.total);
    const evalPositions = spec ? evaluationScope(positions, set.checkpoints.length, o.evalEvery) : [];
    const run = await onlineAnalysis(
      set,
      { ...options, signal: hooks.signal, progress: hooks.progress, onNote: hooks.warn },
      staged.path,
      { positions: new Set([...positions, ...evalPositions].filter((p) => p >= F)), dir: snapshotDir },
    );
    const recDir = staged.file('reconstructed');
    await fsp.mkdir(recDir, { recursive: true });
    const written: string[] = [];
    const files: WrittenFiles = { cmd: new Map() };
    for (const p of positions) {
      if (hooks.signal.aborted) throw new CancelledError();
      const c = set.checkpoints[p];
      let tensors;
      if (p < F) {
        tensors = originalTensors(c);
      } else {
        const model = await openCmdModel(run.snapshots.get(p)!);
        try {
          tensors = reconstructedTensors(set, model, c, p);
        } finally {
          model.close();
        }
      }
      const file = await writeCheckpointLike(c, recDir, tensors, o.outputFormat ?? 'same');
      files.cmd.set(p, file);
      written.push(path.relative(staged.path, file));
    }
    const k = Math.min(o.avgLast ?? DEFAULTS.avgLast, set.checkpoints.length);
    const averaged = k > 0 ? set.checkpoints.slice(set.checkpoints.length - k) : [];
    if (averaged.length) {
      files.avg = await writeAverageLike(averaged, recDir, o.outputFormat ?? 'same');
      written.push(path.relative(staged.path, files.avg));
    }
    const model0 = await openCmdModel(staged.file(MODEL_FILE));
    const key = await decompositionKey(set, keyRequest(o, load, samplesFrom, set, F), model0.sampleIndex);
    model0.close();
    let report: RunReport = { ...run.report, provenance: { inputs: inputsHash(key), model: await fileSha256(staged.file(MODEL_FILE)) }, outputs: { ...run.report.outputs, reconstructed: written } };
    if (spec) report = await evaluateOnline(report, set, run.snapshots, evalPositions, F, averaged, spec, staged.path, written, (o.outputFormat ?? 'same') === 'same' ? files : undefined, hooks);
    await fsp.rm(snapshotDir, { recursive: true, force: true });
    report = RunReportSchema.parse(report);
    await writeReport(staged.path, report);
    await writeRunInfo(staged.path, { decomposition: { command: 'reconstruct', key }, reconstructDecomposition: run.facts, reconstruct: { seconds: (performance.now() - started) / 1000, reused: false, ...processFacts() } });
    if (hooks.signal.aborted) throw new CancelledError();
    await staged.commit();
    if (positions.some((p) => p < F)) hooks.log(`note: checkpoints before the warm-up end (step ${set.checkpoints[F].step}) are written unchanged: the online model there is the checkpoint itself`);
    return { out, report, reused: false, decision: 'online reconstructions are recomputed' };
  } catch (e) {
    await staged.abort();
    throw e;
  }
}

/**
 * Evaluates each position with the online model of that position (its snapshot); before the
 * warm-up end the online model is the checkpoint itself, so its CMD numbers are the original's.
 */
async function evaluateOnline(report: RunReport, set: CheckpointSet, snapshots: Map<number, string>, positions: number[], F: number, averaged: CheckpointSet['checkpoints'], spec: EvalSpec, stagingDir: string, written: string[], files: WrittenFiles | undefined, hooks: ResolvedHooks): Promise<RunReport> {
  const rows: NonNullable<RunReport['evaluation']>['checkpoints'] = [];
  let last: RunReport | undefined;
  const finalModel = await openCmdModel(path.join(stagingDir, MODEL_FILE));
  try {
    for (const [i, p] of positions.entries()) {
      if (hooks.signal.aborted) throw new CancelledError();
      const isLast = i === positions.length - 1;
      let model: CmdModel = finalModel;
      if (p >= F) model = await openCmdModel(snapshots.get(p)!);
      try {
        // Before the warm-up end the written file is the checkpoint itself, so only later positions are scored from disk.
        const own: WrittenFiles | undefined = files && { cmd: new Map(p >= F && files.cmd.has(p) ? [[p, files.cmd.get(p)!]] : []), avg: isLast ? files.avg : undefined };
        const r = await evaluateInto(report, { set, model, positions: [p], averaged: isLast ? averaged : [], spec, stagingDir, written, files: own }, hooks);
        const row = r.evaluation!.checkpoints[0];
        rows.push(p < F ? { ...row, cmd: row.original } : row);
        if (isLast) last = r;
      } finally {
        if (model !== finalModel) model.close();
      }
    }
  } finally {
    finalModel.close();
  }
  const ev = last!.evaluation!;
  const lastRow = rows[rows.length - 1];
  const final = ev.final && positions[positions.length - 1] < F ? { ...ev.final, cmd: lastRow.cmd, accuracyDelta: typeof lastRow.cmd.accuracy === 'number' ? 0 : ev.final.accuracyDelta } : ev.final;
  return { ...last!, evaluation: { ...ev, checkpoints: rows, final, provenance: ev.provenance ? { ...ev.provenance, checkpoints: rows.map((r) => r.name) } : undefined } };
}
