/** `cmd watch <dir>`: parse → the run layer (src/run/watch.ts) → render. */
import { watch, type WatchRunOptions } from '../../run/watch.ts';
import { interruptSignal } from '../signals.ts';
import { logLine, writeOut } from '../terminal.ts';

export interface WatchFlags extends WatchRunOptions {
  out: string;
  quiet?: boolean;
}

export async function watchCommand(dir: string, flags: WatchFlags): Promise<void> {
  const end = await watch(dir, flags, { signal: interruptSignal, log: (line) => logLine(`watch: ${line}`) });
  writeOut(`online CMD model at step ${end.step} (${end.checkpoints} checkpoints): ${end.out}/cmd-model.safetensors, ${end.out}/report.json`);
}
