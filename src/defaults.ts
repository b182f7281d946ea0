/**
 * The defaults of every run option, in one table: the run layer takes its values from here and
 * the command-line help prints them from here, so the two cannot disagree.
 */
export const DEFAULTS = {
  out: 'cmd-out',
  modes: 10,
  samples: 1000,
  seed: 0,
  avgLast: 5,
  emaBeta: 0.9,
  warmup: 20,
  checkpoints: 'last',
  evalJobs: 1,
  evalTimeoutSeconds: 600,
  pollMs: 1000,
} as const;

export type DefaultName = keyof typeof DEFAULTS;

/** `(default X)` for a help text. */
export function defaultNote(name: DefaultName): string {
  return `(default ${DEFAULTS[name]})`;
}
