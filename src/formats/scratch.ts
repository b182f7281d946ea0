/**
 * A per-process scratch folder for bytes that readers must materialize before positioned reads
 * can use them (inflated .npz members, C-order copies of Fortran-order arrays). Spans returned by
 * readers may point here, so the folder lives until the process exits, and is then removed.
 *
 * Where it lives (docs/formats.md, "Scratch space"): a run that writes an output folder places
 * it beside that folder's staging folder (`.<out>.scratch-<pid>-<hex>`, see `placeScratchBeside`),
 * on the disk the user chose for outputs and with the same lifetime; commands without an output
 * folder (inspect), or whose output's parent folder does not exist yet, use a private folder
 * under the system temp folder. Either way, scratch left
 * by a process that no longer runs (kill -9) is removed by the next run, which says so.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { pidAlive } from '../io/pid-alive.ts';

let dir: string | undefined;
let beside: string | undefined;
let exitHookInstalled = false;

/** Notes about removed leftovers; stderr unless a test routes them elsewhere. */
let note: (line: string) => void = (line) => process.stderr.write(`cmd: note: ${line}\n`);

export function setScratchNote(log: (line: string) => void): void {
  note = log;
}

/**
 * Scratch of this process goes beside `target` (an output folder already checked not to lie
 * inside an input) instead of the system temp folder. Call before any checkpoint is read.
 */
export function placeScratchBeside(target: string): void {
  if (dir !== undefined) return; // already in use: spans point into it
  beside = target;
}

/** Removes entries of `parent` named `<prefix><pid>-…` whose pid no longer runs. */
function removeStale(parent: string, prefix: string): void {
  let names: string[];
  try {
    names = readdirSync(parent);
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid || pidAlive(pid)) continue;
    try {
      rmSync(join(parent, name), { recursive: true, force: true });
      note(`removed ${join(parent, name)}, scratch space left by process ${pid} which no longer runs`);
    } catch {
      // someone else's or already gone: not ours to insist on
    }
  }
}

/** The scratch folder, created on first use; removed synchronously when the process exits. */
export function scratchDir(): string {
  if (dir === undefined) {
    // The output's parent may not exist yet (StagedDir makes it later); creating it here would
    // leave an empty folder behind a run refused for bad input, so scratch falls back to temp.
    const useBeside = beside !== undefined && existsSync(dirname(beside));
    const parent = useBeside ? dirname(beside as string) : tmpdir();
    const prefix = useBeside ? `.${basename(beside as string)}.scratch-` : 'cmd-scratch-';
    removeStale(parent, prefix);
    const d = join(parent, `${prefix}${process.pid}-${randomBytes(4).toString('hex')}`);
    mkdirSync(d, { recursive: false, mode: 0o700 });
    dir = d;
    if (!exitHookInstalled) {
      // 'exit' handlers must be synchronous, hence rmSync.
      process.on('exit', cleanupScratch);
      exitHookInstalled = true;
    }
  }
  return dir;
}

/** A fresh, not yet existing path inside the scratch folder (the caller creates the file). */
export function scratchPath(hint: string): string {
  const safe = hint.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);
  return join(scratchDir(), `${randomBytes(6).toString('hex')}-${safe}`);
}

/** Removes the scratch folder and everything in it. Safe to call more than once. */
export function cleanupScratch(): void {
  if (dir === undefined) return;
  const d = dir;
  dir = undefined;
  try {
    rmSync(d, { recursive: true, force: true });
  } catch {
    // Best effort: a failing cleanup at exit must not mask the real outcome.
  }
}
