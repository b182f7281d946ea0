/**
 * The one way files are written: under a temp name in the target's folder (`wx`: never over
 * someone else's file), fsynced, then renamed into place, so a reader sees the old file or the
 * whole new one and a crash leaves no half-written file under the final name. The temp file is
 * removed on any failure. (Rename is atomic only within one filesystem, hence the same folder.)
 *
 * Also the one short-write loop: a write call may take fewer bytes than it was given (signals,
 * quotas, pipes, network filesystems), so every writer of the project goes through writeFully /
 * writeFullySync.
 */
import { writeSync } from 'node:fs';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { asWriteError } from './disk-errors.ts';

/** Bytes per write call: below the 2 GiB a single read or write call accepts. */
const MAX_WRITE = 1 << 30;

/** Writes all of `bytes` at `position` (or at the file position, in order, when it is null), looping over short writes. */
export async function writeFully(fh: Pick<FileHandle, 'write'>, bytes: Uint8Array, position: number | null = null): Promise<void> {
  let done = 0;
  while (done < bytes.byteLength) {
    const { bytesWritten } = await fh.write(bytes, done, Math.min(bytes.byteLength - done, MAX_WRITE), position === null ? null : position + done);
    if (bytesWritten <= 0) throw new Error(`write made no progress after ${done} of ${bytes.byteLength} bytes`);
    done += bytesWritten;
  }
}

/** {@link writeFully} on a file descriptor, for the synchronous writes of worker threads. */
export function writeFullySync(fd: number, bytes: Uint8Array, position: number, write: typeof writeSync = writeSync): void {
  let done = 0;
  while (done < bytes.byteLength) {
    const n = write(fd, bytes, done, Math.min(bytes.byteLength - done, MAX_WRITE), position + done);
    if (n <= 0) throw new Error(`write made no progress after ${done} of ${bytes.byteLength} bytes`);
    done += n;
  }
}

/** Writes `target` atomically, `write` filling the open temp file (positioned writes are fine). */
export async function writeFileAtomicWith(target: string, write: (fh: FileHandle) => Promise<void>): Promise<void> {
  const temp = join(dirname(target), `.${basename(target)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  let fh: FileHandle;
  try {
    fh = await open(temp, 'wx');
  } catch (e) {
    throw asWriteError(target, e);
  }
  try {
    try {
      await write(fh);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, target);
  } catch (e) {
    await unlink(temp).catch(() => undefined);
    // A full disk or a read-only folder names the output being written (docs/formats.md).
    throw asWriteError(target, e);
  }
}

/** Writes `data` (text, bytes, or byte chunks in order) to `target` atomically. */
export async function writeFileAtomic(target: string, data: string | Uint8Array | Iterable<Uint8Array>): Promise<void> {
  await writeFileAtomicWith(target, async (fh) => {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      await fh.writeFile(data);
      return;
    }
    for (const chunk of data) await writeFully(fh, chunk);
  });
}
