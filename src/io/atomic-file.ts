/**
 * The one way files are written: under a temp name in the target's folder (`wx`: never over
 * someone else's file), fsynced, then renamed into place, so a reader sees the old file or the
 * whole new one and a crash leaves no half-written file under the final name. The temp file is
 * removed on any failure. (Rename is atomic only within one filesystem, hence the same folder.)
 */
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { asWriteError } from './disk-errors.ts';

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
    for (const chunk of data) {
      let done = 0;
      while (done < chunk.byteLength) done += (await fh.write(chunk, done, chunk.byteLength - done)).bytesWritten;
    }
  });
}
