/**
 * sha256 of a file, read in large blocks: few system calls, and the hash (≈ 1.8 GB/s on the
 * development machine) sets the pace (docs/performance.md, "Fixed costs"). The synchronous form
 * is for worker threads, whose only job is the task at hand.
 */
import { createHash } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';

const HASH_BLOCK = 8 << 20;

export function fileSha256Sync(file: string): string {
  const h = createHash('sha256');
  const fd = fs.openSync(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(HASH_BLOCK);
    for (let n; (n = fs.readSync(fd, buf, 0, HASH_BLOCK, null)) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    fs.closeSync(fd);
  }
  return h.digest('hex');
}

export async function fileSha256(file: string): Promise<string> {
  const h = createHash('sha256');
  const fh = await fsp.open(file, 'r');
  try {
    const buf = Buffer.allocUnsafe(HASH_BLOCK);
    for (let n; (n = (await fh.read(buf, 0, HASH_BLOCK, null)).bytesRead) > 0; ) h.update(buf.subarray(0, n));
  } finally {
    await fh.close();
  }
  return h.digest('hex');
}
