/**
 * `analyze`: decompose a checkpoint folder into a fresh output folder (model, samples, heatmap,
 * report.json, run-info.json). The library call and `cmd analyze` are this one function.
 */
import { loadCheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, UsageError } from '../errors.ts';
import type { RunReport } from '../output/report-schema.ts';
import { DEFAULTS } from './defaults.ts';
import { decompose } from './decompose.ts';
import { resolveHooks, type RunHooks } from './hooks.ts';
import { checkSampleFlags, loadOptionsFrom, readSamplesFile, type AnalyzeRunOptions } from './options.ts';
import { processFacts, writeRunInfo } from './run-info.ts';
import { stageOutput } from './staging.ts';
import { placeScratchForRun } from '../output/run-scratch.ts';

export interface AnalyzeRun {
  /** The output folder as given. */
  out: string;
  report: RunReport;
}

export async function analyze(dir: string, options: AnalyzeRunOptions = {}, runHooks?: RunHooks): Promise<AnalyzeRun> {
  const hooks = resolveHooks(runHooks);
  const out = options.out ?? DEFAULTS.out;
  checkSampleFlags(options);
  if (options.online && options.skipNonfinite) throw new UsageError('--skip-nonfinite is not supported with --online');
  const samplesFrom = options.samplesFrom ? await readSamplesFile(options.samplesFrom) : undefined;
  const load = await loadOptionsFrom(options);
  await placeScratchForRun(out, dir);
  const set = await loadCheckpointSet(dir, load);
  for (const n of set.notes) hooks.log(`note: ${n}`);
  const staged = await stageOutput(out, Boolean(options.force), set, [options.samplesFrom, options.tensorTable], options.html);
  try {
    const d = await decompose(set, options, load, staged.path, samplesFrom, hooks);
    await writeRunInfo(staged.path, { decomposition: { command: 'analyze', key: d.key }, analyze: { ...d.facts, seconds: d.facts.seconds as number, ...processFacts() } });
    if (hooks.signal.aborted) throw new CancelledError();
    await staged.commit();
    return { out, report: d.report };
  } catch (e) {
    await staged.abort();
    throw e;
  }
}
