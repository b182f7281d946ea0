/**
 * A per-process scratch folder for bytes that readers must materialize before positioned reads
 * can use them (inflated .npz members, C-order copies of Fortran-order arrays). Spans returned by
 * readers may point here, so the folder lives until the process exits.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let dir: string | undefined;
let exitHookInstalled = false;

/** The scratch folder, created on first use; removed synchronously when the process exits. */
export function scratchDir(): string {
  if (dir === undefined) {
    dir = mkdtempSync(join(tmpdir(), `cmd-scratch-${process.pid}-`));
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
