/**
 * `watch`: online CMD alongside training (src/online/watch.ts does the polling and the state).
 * The run layer checks the options, reads the samples file and lends the hooks; the resume
 * decision (same options and samples by content, or refuse and say why) is logged.
 */
import type { FormatName } from '../formats/types.ts';
import { watchCheckpoints, type WatchEnd } from '../online/watch.ts';
import { DEFAULTS } from './defaults.ts';
import { resolveHooks, type RunHooks } from './hooks.ts';
import { checkSampleFlags, readSamplesFile } from './options.ts';

export interface WatchRunOptions {
  out?: string;
  warmup?: number;
  /** Stop once the checkpoint with this step (or a later one) is processed. */
  until?: number;
  pollMs?: number;
  modes?: number;
  samples?: number;
  seed?: number;
  samplesFrom?: string;
  format?: FormatName;
  workers?: number;
  chunkSize?: number;
  force?: boolean;
}

export async function watch(dir: string, options: WatchRunOptions = {}, runHooks?: RunHooks): Promise<WatchEnd & { out: string }> {
  const hooks = resolveHooks(runHooks);
  checkSampleFlags(options);
  const out = options.out ?? DEFAULTS.out;
  const samplesFrom = options.samplesFrom ? await readSamplesFile(options.samplesFrom) : undefined;
  const end = await watchCheckpoints({
    dir,
    out,
    warmup: options.warmup ?? DEFAULTS.warmup,
    until: options.until,
    pollMs: options.pollMs ?? DEFAULTS.pollMs,
    modes: options.modes ?? DEFAULTS.modes,
    samples: options.samples,
    seed: options.seed,
    samplesFrom,
    workers: options.workers,
    chunkSize: options.chunkSize,
    format: options.format,
    force: options.force,
    signal: hooks.signal,
    log: hooks.log,
  });
  return { ...end, out };
}
