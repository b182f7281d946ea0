/**
 * Inputs are never written: an output path (a run's `-o` folder, an `--html` file) that is an
 * input, contains one or lies inside one is refused before anything is created, replaced or
 * locked — with or without --force (docs/formats.md, "Inputs are never modified").
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.ts';

/**
 * `p` as the kernel would resolve it: symlinks followed and `..` applied to the folder a
 * symlink leads to (not lexically, as path.resolve does). Components that do not exist yet
 * are appended as given.
 */
export async function physicalPath(p: string): Promise<string> {
  const raw = path.isAbsolute(p) ? p : `${process.cwd()}${path.sep}${p}`;
  let cur = path.parse(raw).root;
  let existing = true;
  for (const part of raw.split(/[\\/]+/)) {
    if (part === '' || part === '.') continue;
    if (part === '..') {
      cur = path.dirname(cur);
      continue;
    }
    const next = path.join(cur, part);
    if (existing) {
      try {
        cur = await fsp.realpath(next);
        continue;
      } catch {
        existing = false;
      }
    }
    cur = next;
  }
  return cur;
}

function isInside(folder: string, p: string): boolean {
  const rel = path.relative(folder, p);
  return rel !== '' && !rel.startsWith(`..${path.sep}`) && rel !== '..' && !path.isAbsolute(rel);
}

/** How `out` overlaps `input` (both physical paths), or undefined when it does not. */
export function overlap(out: string, input: string): string | undefined {
  if (out === input) return 'is';
  if (isInside(out, input)) return 'contains';
  if (isInside(input, out)) return 'lies inside';
  return undefined;
}

/**
 * Throws a one-line UsageError when `target` (given by `flag`) is one of `inputs`, contains
 * one or lies inside one, after resolving symlinks and `..` on both sides.
 */
export async function refuseInputOverlap(target: string, inputs: readonly string[], flag = '-o'): Promise<string> {
  const out = await physicalPath(target);
  for (const input of inputs) {
    const inp = await physicalPath(input);
    const how = overlap(out, inp);
    if (how) throw new UsageError(`${flag} ${target} ${how} the input ${input}; inputs are never replaced, even with --force: choose an output outside the inputs`);
  }
  return out;
}
