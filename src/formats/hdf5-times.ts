/**
 * Deterministic HDF5 output: the HDF5 library stamps every version-2 object header with the
 * wall-clock access/modification/change/birth times, and h5wasm offers no way to turn that off
 * (h5py does, with track_times=False). So the same reconstruction written twice would differ
 * in those bytes. This module finds the object headers of a finished file and sets their times
 * to 0, fixing each header's checksum (docs/formats.md, "Keras 3").
 *
 * Version-2 object header (HDF5 file format specification, "Version 2 Object Header"):
 *   "OHDR" | version 2 | flags | [4 × uint32 times if flags & 0x20] | [2 × uint16 if flags & 0x10]
 *   | chunk-0 size (1, 2, 4 or 8 bytes: flags & 3) | messages … | Jenkins lookup3 checksum
 * The checksum covers everything from the signature to the end of chunk 0. A match of "OHDR"
 * inside data bytes is skipped unless its checksum verifies, so tensor values are never touched.
 */
import { open } from 'node:fs/promises';

const rot = (x: number, k: number) => ((x << k) | (x >>> (32 - k))) >>> 0;

/** Bob Jenkins' lookup3 `hashlittle`, byte by byte, as HDF5's H5_checksum_lookup3. */
export function lookup3(key: Uint8Array, initval = 0): number {
  let length = key.length;
  let a = (0xdeadbeef + length + initval) >>> 0;
  let b = a;
  let c = a;
  let i = 0;
  const word = (j: number) => (key[j] | (key[j + 1] << 8) | (key[j + 2] << 16) | (key[j + 3] << 24)) >>> 0;
  while (length > 12) {
    a = (a + word(i)) >>> 0;
    b = (b + word(i + 4)) >>> 0;
    c = (c + word(i + 8)) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rot(c, 4)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rot(a, 6)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rot(b, 8)) >>> 0; b = (b + a) >>> 0;
    a = (a - c) >>> 0; a = (a ^ rot(c, 16)) >>> 0; c = (c + b) >>> 0;
    b = (b - a) >>> 0; b = (b ^ rot(a, 19)) >>> 0; a = (a + c) >>> 0;
    c = (c - b) >>> 0; c = (c ^ rot(b, 4)) >>> 0; b = (b + a) >>> 0;
    length -= 12;
    i += 12;
  }
  if (length === 0) return c;
  // The tail: bytes i .. i+length-1 into a (0-3), b (4-7), c (8-11), little-endian.
  const tail = [0, 0, 0];
  for (let j = 0; j < length; j++) tail[j >> 2] = (tail[j >> 2] + (key[i + j] << (8 * (j & 3)))) >>> 0;
  a = (a + tail[0]) >>> 0;
  b = (b + tail[1]) >>> 0;
  c = (c + tail[2]) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 14)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 11)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 25)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 16)) >>> 0;
  a = (a ^ c) >>> 0; a = (a - rot(c, 4)) >>> 0;
  b = (b ^ a) >>> 0; b = (b - rot(a, 14)) >>> 0;
  c = (c ^ b) >>> 0; c = (c - rot(b, 24)) >>> 0;
  return c;
}

const SIGNATURE = Buffer.from('OHDR', 'latin1');
const BLOCK = 4 << 20;

/**
 * Sets the times of every version-2 object header in an HDF5 file to 0 and rewrites each
 * header's checksum. Returns the number of headers changed.
 */
export async function zeroObjectTimes(file: string): Promise<number> {
  const fh = await open(file, 'r+');
  try {
    const size = (await fh.stat()).size;
    const buf = Buffer.alloc(BLOCK + SIGNATURE.length - 1);
    let changed = 0;
    for (let base = 0; base < size; base += BLOCK) {
      const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, size - base), base);
      const view = buf.subarray(0, bytesRead);
      for (let at = view.indexOf(SIGNATURE); at >= 0 && at < BLOCK; at = view.indexOf(SIGNATURE, at + 1)) {
        if (await patchHeader(fh, base + at, size)) changed++;
      }
    }
    return changed;
  } finally {
    await fh.close();
  }
}

async function patchHeader(fh: import('node:fs/promises').FileHandle, pos: number, fileSize: number): Promise<boolean> {
  const head = Buffer.alloc(6 + 16 + 4 + 8);
  const { bytesRead } = await fh.read(head, 0, head.length, pos);
  if (bytesRead < 7 || head[4] !== 2) return false;
  const flags = head[5];
  if (!(flags & 0x20)) return false;
  let p = 6 + 16 + (flags & 0x10 ? 4 : 0);
  const width = 1 << (flags & 3);
  if (p + width > bytesRead) return false;
  let chunk = 0;
  for (let k = 0; k < width; k++) chunk += head[p + k] * 2 ** (8 * k);
  p += width;
  const total = p + chunk;
  if (pos + total + 4 > fileSize || total > 1 << 26) return false;
  const header = Buffer.alloc(total + 4);
  await fh.read(header, 0, header.length, pos);
  if (lookup3(header.subarray(0, total)) !== header.readUInt32LE(total)) return false;
  header.fill(0, 6, 22);
  header.writeUInt32LE(lookup3(header.subarray(0, total)), total);
  await fh.write(header, 0, header.length, pos);
  return true;
}
