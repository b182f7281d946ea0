/**
 * `cmd reconstruct --online`: the online model at chosen checkpoints, written like the
 * checkpoints themselves (model snapshots taken during one online pass).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { stripCheckpointSuffix } from '../checkpoints/naming.ts';
import type { AnalyzeFlags } from '../cli/commands/analyze.ts';
import { CancelledError, UsageError } from '../errors.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import { StagedDir } from '../output/atomic.ts';
import { inputPaths } from '../checkpoints/input-paths.ts';
import { openCmdModel } from '../output/model-reader.ts';
import { serializeReport } from '../output/report.ts';
import { RunReportSchema } from '../output/report-schema.ts';
import { writeReport } from '../output/run-outputs.ts';
import { averagedTensors, originalTensors, reconstructedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import { onlineAnalysis, onlineOptions, resolveWarmup } from './run-online.ts';

/** Flags of `cmd reconstruct` that the online branch uses. */
export interface OnlineReconstructFlags extends AnalyzeFlags {
  checkpoints: string;
  outputFormat: import('../reconstruct/write-checkpoint.ts').OutputFormat;
  avgLast: number;
  evalData?: string;
  evalCmd?: string;
  model?: string;
}

function positionsFor(spec: string, set: CheckpointSet): number[] {
  const T = set.checkpoints.length;
  if (spec === 'last') return [T - 1];
  if (spec === 'all') return set.checkpoints.map((_, i) => i);
  return spec.split(',').map((s) => {
    const step = Number(s.trim());
    const i = set.checkpoints.findIndex((c) => c.step === step);
    if (!Number.isFinite(step) || i < 0) throw new UsageError(`--checkpoints: no checkpoint with step ${s.trim()} (steps: ${set.checkpoints.map((c) => c.step).join(', ')})`);
    return i;
  });
}

/**
 * `cmd reconstruct --online`: runs online CMD and writes, for each chosen checkpoint t, the
 * online model at t: ŵ(t) = a(t) ⊙ r(t)[mode] + b(t) with a(t), b(t) fitted on 0..t (snapshots
 * taken during the pass); before F the online model is the checkpoint itself (copied as is).
 */
export async function reconstructOnlineCommand(set: CheckpointSet, flags: OnlineReconstructFlags, samplesFrom?: [string, number][]): Promise<void> {
  if (flags.model) throw new UsageError('--model cannot be combined with --online (the online model changes per checkpoint; it is recomputed)');
  if (flags.evalData || flags.evalCmd) throw new UsageError('--eval-data/--eval-cmd are not supported with --online yet; evaluate the written checkpoints instead');
  const { interruptSignal } = await import('../cli/signals.ts');
  const { createProgress } = await import('../cli/progress.ts');
  const { renderSummary } = await import('../cli/commands/analyze.ts');
  const { logLine, writeOut } = await import('../cli/terminal.ts');
  const F = resolveWarmup(flags.warmup, set.checkpoints.length);
  const positions = positionsFor(flags.checkpoints, set);
  const previous = await fsp.access(path.join(flags.out, MODEL_FILE)).then(() => true, () => false);
  const staged = await StagedDir.create(flags.out, flags.force || previous, inputPaths(set));
  try {
    const snapshotDir = staged.file('.online-snapshots');
    const options = onlineOptions(flags, F, samplesFrom, set.space.total);
    const run = await onlineAnalysis(
      set,
      { ...options, signal: interruptSignal, progress: createProgress(flags) },
      staged.path,
      { positions: new Set(positions.filter((p) => p >= F)), dir: snapshotDir },
    );
    const recDir = staged.file('reconstructed');
    await fsp.mkdir(recDir, { recursive: true });
    const written: string[] = [];
    for (const p of positions) {
      if (interruptSignal.aborted) throw new CancelledError();
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
      written.push(path.relative(staged.path, await writeCheckpointLike(c, recDir, tensors, flags.outputFormat)));
    }
    const k = Math.min(flags.avgLast, set.checkpoints.length);
    if (k > 0) {
      const averaged = set.checkpoints.slice(set.checkpoints.length - k);
      const last = averaged[averaged.length - 1];
      const name = `avg-last-${k}${last.name.slice(stripCheckpointSuffix(last.name).length)}`;
      written.push(path.relative(staged.path, await writeCheckpointLike(last, recDir, averagedTensors(averaged), flags.outputFormat, name)));
    }
    await fsp.rm(snapshotDir, { recursive: true, force: true });
    const report = RunReportSchema.parse({ ...run.report, outputs: { ...run.report.outputs, reconstructed: written } });
    await writeReport(staged.path, report);
    await staged.commit();
    if (positions.some((p) => p < F)) logLine(`note: checkpoints before the warm-up end (step ${set.checkpoints[F].step}) are written unchanged: the online model there is the checkpoint itself`);
    writeOut(flags.json ? serializeReport(report) : `${renderSummary(report, flags.out)}\nreconstructed (online model at each checkpoint): ${written.join(', ')}`);
  } catch (e) {
    await staged.abort();
    throw e;
  }
}
