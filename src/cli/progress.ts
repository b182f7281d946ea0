/** Progress bars on stderr, one per stage, only for a person at a terminal. */
import cliProgress from 'cli-progress';
import type { ProgressSink } from '../pipeline/analyze.ts';
import { progressEnabled } from './terminal.ts';

export function createProgress(opts: { quiet?: boolean; json?: boolean }): ProgressSink | undefined {
  if (!progressEnabled(opts)) return undefined;
  let bar: cliProgress.SingleBar | undefined;
  return {
    start(stage, total) {
      bar?.stop();
      bar = new cliProgress.SingleBar(
        { format: `${stage.padEnd(8)} [{bar}] {percentage}% | {eta_formatted} left`, stream: process.stderr, hideCursor: true, clearOnComplete: true, gracefulExit: false, fps: 10 },
        cliProgress.Presets.shades_classic,
      );
      bar.start(total, 0);
    },
    advance(n) {
      bar?.increment(n);
    },
    stop() {
      bar?.stop();
      bar = undefined;
    },
  };
}
