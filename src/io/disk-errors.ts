/**
 * Disk trouble while writing an output (full disk, quota, file-size limit, permissions, a
 * read-only filesystem) is a RuntimeError naming the file being written, not an "internal
 * error" — and never blamed on an input (docs/formats.md, "Inputs are never modified").
 * Worker threads lose error classes when errors cross to the main thread (structured clone
 * keeps only the message), so their disk errors carry a tag that `reviveWorkerError` turns
 * back into a RuntimeError.
 */
import { RuntimeError } from '../errors.ts';

const REASONS: Readonly<Record<string, string>> = {
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  EFBIG: 'file too large for the file-size limit',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only filesystem',
  EIO: 'input/output error',
  ENOTDIR: 'a path component is not a folder',
  EISDIR: 'is a folder',
  ENAMETOOLONG: 'name too long',
};

const WORKER_TAG = '[cmd-disk-error] ';

/** The one-line text of a disk error (`no space left on the device (ENOSPC)`), or undefined for other errors. */
export function diskErrorText(e: unknown): string | undefined {
  const code = (e as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !(code in REASONS)) return undefined;
  return `${REASONS[code]} (${code})`;
}

/** `e` as a RuntimeError naming `file` when it is a disk error, else `e` unchanged. */
export function asWriteError(file: string, e: unknown): unknown {
  const text = diskErrorText(e);
  return text === undefined ? e : new RuntimeError(`${file}: cannot write: ${text}`);
}

/** Runs `write`, turning a disk error into a RuntimeError naming `file`. */
export async function writingTo<T>(file: string, write: () => Promise<T>): Promise<T> {
  try {
    return await write();
  } catch (e) {
    throw asWriteError(file, e);
  }
}

/** Synchronous `writingTo` for worker threads: the error message carries a tag for `reviveWorkerError`. */
export function writingToSync<T>(file: string, write: () => T): T {
  try {
    return write();
  } catch (e) {
    const text = diskErrorText(e);
    if (text === undefined) throw e;
    throw new Error(`${WORKER_TAG}${file}: cannot write: ${text}`);
  }
}

/** A worker's tagged disk error as the RuntimeError it was; other errors unchanged. */
export function reviveWorkerError(e: unknown): unknown {
  if (e instanceof Error && e.message.startsWith(WORKER_TAG)) return new RuntimeError(e.message.slice(WORKER_TAG.length));
  return e;
}
