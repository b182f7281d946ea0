/**
 * What a caller lends a run: a cancel signal, a place for log lines (stderr in the CLI) and a
 * progress sink. The library default is silent and never cancelled.
 */
import type { ProgressSink } from '../pipeline/analyze.ts';

export interface RunHooks {
  signal?: AbortSignal;
  /** One line of notes or decisions (never the product). */
  log?: (line: string) => void;
  /** A warning: the run goes on but did something other than asked (e.g. fewer samples). */
  warn?: (line: string) => void;
  progress?: ProgressSink;
}

export interface ResolvedHooks {
  signal: AbortSignal;
  log: (line: string) => void;
  warn: (line: string) => void;
  progress?: ProgressSink;
}

export function resolveHooks(h: RunHooks = {}): ResolvedHooks {
  const log = h.log ?? (() => {});
  return { signal: h.signal ?? new AbortController().signal, log, warn: h.warn ?? log, progress: h.progress };
}
