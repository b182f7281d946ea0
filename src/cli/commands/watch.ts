/** `cmd watch <dir>`: online CMD alongside training (see src/online/watch.ts). */
import type { FormatName } from '../../formats/types.ts';
import { watchCheckpoints } from '../../online/watch.ts';
import { interruptSignal } from '../signals.ts';
import { logLine, writeOut } from '../terminal.ts';
import { readSamplesFile } from '../../run/options.ts';
import { UsageError } from '../../errors.ts';

export interface WatchFlags {
  out: string;
  warmup: number;
  until?: number;
  pollMs: number;
  modes: number;
  samples?: number;
  seed?: number;
  samplesFrom?: string;
  format?: FormatName;
  workers?: number;
  chunkSize?: number;
  force?: boolean;
  quiet?: boolean;
}

export async function watchCommand(dir: string, flags: WatchFlags): Promise<void> {
  if (flags.samplesFrom && (flags.samples !== undefined || flags.seed !== undefined)) {
    throw new UsageError('--samples-from fixes the samples; --samples and --seed cannot be combined with it');
  }
  const samplesFrom = flags.samplesFrom ? await readSamplesFile(flags.samplesFrom) : undefined;
  const end = await watchCheckpoints({
    dir,
    out: flags.out,
    warmup: flags.warmup,
    until: flags.until,
    pollMs: flags.pollMs,
    modes: flags.modes,
    samples: flags.samples,
    seed: flags.seed,
    samplesFrom,
    workers: flags.workers,
    chunkSize: flags.chunkSize,
    format: flags.format,
    force: flags.force,
    signal: interruptSignal,
    log: (line) => logLine(`watch: ${line}`),
  });
  writeOut(`online CMD model at step ${end.step} (${end.checkpoints} checkpoints): ${flags.out}/cmd-model.safetensors, ${flags.out}/report.json`);
}
