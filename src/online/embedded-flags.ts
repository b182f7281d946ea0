/**
 * The embedded-CMD simulation's command-line options (`--embed-window`, `--embed-perc`,
 * `--embed-relative`), kept free of heavy imports so the CLI can check them before loading
 * anything. Defaults are the official code's (L = 10, P = 10, absolute).
 */
import { UsageError } from '../errors.ts';

export const DEFAULT_EMBED_WINDOW = 10;
export const DEFAULT_EMBED_PERCENT = 10;

/** The published freezing schedule's parameters (docs/method.md §13). */
export interface EmbedOptions {
  /** L: an embedding step runs at checkpoint positions t > F with t % L === 0. */
  window: number;
  /** P: percent of the parameters embedded per step. */
  percent: number;
  /** P% of the not-yet-embedded count (true) or of all N (false, the default). */
  relative: boolean;
}

export interface EmbedFlags {
  online?: boolean;
  embedWindow?: number;
  embedPerc?: number;
  embedRelative?: boolean;
}

/** Any embed flag turns the simulation on; it needs `--online`. */
export function checkEmbedFlags(flags: EmbedFlags): void {
  const given = flags.embedWindow !== undefined || flags.embedPerc !== undefined || flags.embedRelative === true;
  if (given && !flags.online) throw new UsageError('--embed-window/--embed-perc/--embed-relative simulate embedded CMD on top of online CMD; add --online');
}

/** The simulation's options when any embed flag is given, else undefined. */
export function resolveEmbedOptions(flags: EmbedFlags): EmbedOptions | undefined {
  checkEmbedFlags(flags);
  const given = flags.embedWindow !== undefined || flags.embedPerc !== undefined || flags.embedRelative === true;
  if (!given) return undefined;
  const window = flags.embedWindow ?? DEFAULT_EMBED_WINDOW;
  const percent = flags.embedPerc ?? DEFAULT_EMBED_PERCENT;
  if (!Number.isInteger(window) || window < 1) throw new UsageError(`--embed-window must be an integer ≥ 1, got ${window}`);
  if (!(percent > 0 && percent <= 100)) throw new UsageError(`--embed-perc must be in (0, 100], got ${percent}`);
  return { window, percent, relative: flags.embedRelative === true };
}
