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
import { checkpointInput } from '../remote/inputs.ts';
import { closeRemoteClient, remoteFetchedBytes } from '../remote/http-range.ts';
import { remoteBytes } from '../trajectory/remote-bytes.ts';

/** A remote run's fetched values and keep-alive sockets are not kept past it. */
function releaseRemote(): void {
  remoteBytes.clear();
  closeRemoteClient();
}

/** run-info.json's account of a remote run's traffic (docs/scale-out.md). */
function remoteFacts(checkpoints: number, headerBytes: number, fetched: { pass1: number; pass2: number } | undefined): Record<string, number> {
  const pass1 = fetched?.pass1 ?? 0;
  const pass2 = fetched?.pass2 ?? 0;
  return { checkpoints, headerBytes, pass1Bytes: pass1, pass2Bytes: pass2, bytesFetched: headerBytes + pass1 + pass2 };
}

export interface AnalyzeRun {
  /** The output folder as given. */
  out: string;
  report: RunReport;
}

/**
 * `dir` is the checkpoint folder; undefined with `options.urls`, or `hf://org/model` with
 * `options.revisions` (remote checkpoints, read by HTTP Range requests).
 */
export async function analyze(dir: string | undefined, options: AnalyzeRunOptions = {}, runHooks?: RunHooks): Promise<AnalyzeRun> {
  const hooks = resolveHooks(runHooks);
  const out = options.out ?? DEFAULTS.out;
  const input = checkpointInput(dir, options);
  checkSampleFlags(options);
  if (options.online && options.skipNonfinite) throw new UsageError('--skip-nonfinite is not supported with --online');
  if (options.online && typeof input !== 'string') throw new UsageError('--online reads local checkpoints only; remote inputs (--urls, hf://) are post-hoc');
  const samplesFrom = options.samplesFrom ? await readSamplesFile(options.samplesFrom) : undefined;
  const load = await loadOptionsFrom(options);
  await placeScratchForRun(out, typeof input === 'string' ? input : input.kind === 'urls' ? input.file : undefined);
  const fetchedBefore = remoteFetchedBytes();
  const set = await loadCheckpointSet(input, load);
  const headerBytes = remoteFetchedBytes() - fetchedBefore;
  for (const n of set.notes) hooks.log(`note: ${n}`);
  const staged = await stageOutput(out, Boolean(options.force), set, [options.samplesFrom, options.tensorTable], options.html);
  try {
    const d = await decompose(set, options, load, staged.path, samplesFrom, hooks);
    const remote = typeof input === 'string' ? {} : { remote: remoteFacts(set.checkpoints.length, headerBytes, d.facts.bytesFetched as { pass1: number; pass2: number } | undefined) };
    await writeRunInfo(staged.path, { decomposition: { command: 'analyze', key: d.key }, analyze: { ...d.facts, seconds: d.facts.seconds as number, ...remote, ...processFacts() } });
    if (hooks.signal.aborted) throw new CancelledError();
    await staged.commit();
    return { out, report: d.report };
  } catch (e) {
    await staged.abort();
    throw e;
  } finally {
    if (typeof input !== 'string') releaseRemote();
  }
}
