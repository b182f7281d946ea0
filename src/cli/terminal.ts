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

/** Renders rows as an aligned text table (first row = header). */
export function formatTable(rows: string[][], align: ('l' | 'r')[] = []): string {
  const widths: number[] = [];
  for (const r of rows) r.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, visibleLength(cell))));
  return rows
    .map((r) => r.map((cell, i) => (align[i] === 'r' ? padStart(cell, widths[i]) : padEnd(cell, widths[i]))).join('  ').trimEnd())
    .join('\n');
}

const ansi = /\u001b\[[0-9;]*m/g;
function visibleLength(s: string): number {
  return s.replace(ansi, '').length;
}
function padEnd(s: string, w: number): string {
  return s + ' '.repeat(Math.max(0, w - visibleLength(s)));
}
function padStart(s: string, w: number): string {
  return ' '.repeat(Math.max(0, w - visibleLength(s))) + s;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let v = n;
  let u = 0;
  while (v >= 1000 && u < units.length - 1) {
    v /= 1000;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : v >= 10 ? 1 : 2)} ${units[u]}`;
}
