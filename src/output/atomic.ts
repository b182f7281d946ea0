/**
 * Outputs appear whole or not at all: files are written under a temp name in the same
 * folder and renamed into place; a command's output folder is staged beside the target
 * and swapped in when everything succeeded.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError } from '../errors.ts';
import { refuseInputOverlap } from './input-guard.ts';
import { RunLock, removeStaleStaging, stderrLog, type Log } from './run-lock.ts';

export { writeFileAtomic } from '../io/atomic-file.ts';

async function isNonEmptyDir(p: string): Promise<boolean> {
  try {
    return (await fsp.readdir(p)).length > 0;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    if ((e as NodeJS.ErrnoException).code === 'ENOTDIR') throw new UsageError(`${p} exists and is not a folder`);
    throw e;
  }
}

/** A staging folder that becomes `target` on commit and vanishes on abort. */
export class StagedDir {
  readonly target: string;
  readonly path: string;
  private done = false;
  private readonly lock: RunLock;

  private constructor(target: string, staging: string, lock: RunLock) {
    this.target = target;
    this.path = staging;
    this.lock = lock;
  }

  /**
   * Refuses a non-empty `target` unless `force`; creates the staging folder next to it.
   * `inputs` are the files and folders the command reads (checkpoint folder, checkpoint files):
   * the target must never be one of them, contain them or lie inside them (refused even with
   * `force`, after resolving symlinks and `..`). Holds the run lock of `target` until commit or
   * abort, and first removes staging folders that dead processes left beside it.
   */
  static async create(target: string, force = false, inputs: readonly string[] = [], log: Log = stderrLog): Promise<StagedDir> {
    const abs = await refuseInputOverlap(target, inputs);
    const lock = await RunLock.acquire(abs, log);
    try {
      await removeStaleStaging(abs, log);
      if (!force && (await isNonEmptyDir(abs))) throw new UsageError(`${target} exists and is not empty; use --force to replace it`);
      await fsp.mkdir(path.dirname(abs), { recursive: true });
      const staging = path.join(path.dirname(abs), `.${path.basename(abs)}.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
      await fsp.mkdir(staging);
      return new StagedDir(abs, staging, lock);
    } catch (e) {
      lock.release();
      throw e;
    }
  }

  file(name: string): string {
    return path.join(this.path, name);
  }

  async commit(): Promise<void> {
    if (this.done) return;
    let old: string | undefined;
    try {
      await fsp.rename(this.target, (old = `${this.path}.old`));
    } catch (e) {
      old = undefined;
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    await fsp.rename(this.path, this.target);
    this.done = true;
    try {
      if (old) await fsp.rm(old, { recursive: true, force: true });
    } finally {
      this.lock.release();
    }
  }

  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await fsp.rm(this.path, { recursive: true, force: true });
    } finally {
      this.lock.release();
    }
  }
}
