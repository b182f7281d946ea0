/**
 * Every colour and TTY decision in one place. Colour only when the stream is a TTY and
 * NO_COLOR is unset or empty (chalk itself ignores NO_COLOR); FORCE_COLOR overrides.
 */
import { Chalk, type ChalkInstance } from 'chalk';

export function colourEnabled(stream: NodeJS.WriteStream): boolean {
  const force = process.env.FORCE_COLOR;
  if (force !== undefined && force !== '') return force !== '0' && force !== 'false';
  if (process.env.NO_COLOR) return false;
  return Boolean(stream.isTTY);
}

export function chalkFor(stream: NodeJS.WriteStream): ChalkInstance {
  return new Chalk({ level: colourEnabled(stream) ? 1 : 0 });
}

/** Progress display is for people watching a terminal: never in CI, with --quiet or --json. */
export function progressEnabled(opts: { quiet?: boolean; json?: boolean }): boolean {
  return !opts.quiet && !opts.json && Boolean(process.stderr.isTTY) && !process.env.CI;
}

let quiet = false;
export function setQuiet(q: boolean): void {
  quiet = q;
}

/** A warning or log line on stderr (never stdout, which carries only the product). */
export function logLine(message: string): void {
  if (!quiet) process.stderr.write(`${message}\n`);
}

export function warn(message: string): void {
  const c = chalkFor(process.stderr);
  if (!quiet) process.stderr.write(`${c.yellow('warning:')} ${message}\n`);
}

/** Writes the product to stdout. */
export function writeOut(text: string): void {
  process.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export { formatTable, formatBytes } from '../report/text.ts';
