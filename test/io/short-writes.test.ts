/**
 * Every writer goes through one short-write loop (src/io/atomic-file.ts): a write call may take
 * fewer bytes than given. These tests make the OS-facing call take at most a few bytes per call.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeFully, writeFullySync } from '../../src/io/atomic-file.ts';
import { createModelFile, planModelFile, writeAtPosition } from '../../src/pipeline/model-file.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A file in memory whose write() takes at most `max` bytes per call, like a slow pipe. */
function stingyFile(size: number, max: number) {
  const data = new Uint8Array(size);
  let cursor = 0;
  let calls = 0;
  const take = (buf: Uint8Array, offset: number, length: number, position: number | null) => {
    calls++;
    const n = Math.min(length, max);
    const at = position ?? cursor;
    data.set(buf.subarray(offset, offset + n), at);
    if (position === null) cursor += n;
    return n;
  };
  return {
    data,
    calls: () => calls,
    handle: { write: async (buf: Uint8Array, offset: number, length: number, position: number | null) => ({ bytesWritten: take(buf, offset, length, position), buffer: buf }) },
    writeSync: (_fd: number, buf: Uint8Array, offset: number, length: number, position: number) => take(buf, offset, length, position),
  };
}

const bytes = Uint8Array.from({ length: 100 }, (_, i) => (i * 37 + 11) & 255);

describe('the short-write loop', () => {
  it('writeFully continues short writes until every byte is at its position', async () => {
    const f = stingyFile(120, 7);
    await writeFully(f.handle as never, bytes, 20);
    expect(Array.from(f.data.subarray(20))).toEqual(Array.from(bytes));
    expect(f.data.subarray(0, 20).every((b) => b === 0)).toBe(true);
    expect(f.calls()).toBe(Math.ceil(100 / 7));
  });

  it('writeFully appends in order at the file position when no position is given', async () => {
    const f = stingyFile(200, 3);
    await writeFully(f.handle as never, bytes);
    await writeFully(f.handle as never, bytes.subarray(0, 10));
    expect(Array.from(f.data.subarray(0, 110))).toEqual([...bytes, ...bytes.subarray(0, 10)]);
  });

  it('writeFullySync does the same for worker threads', () => {
    const f = stingyFile(100, 9);
    writeFullySync(3, bytes, 0, f.writeSync as never);
    expect(Array.from(f.data)).toEqual(Array.from(bytes));
  });

  it('a write that makes no progress is an error, not an endless loop', async () => {
    const stuck = { write: async (buf: Uint8Array) => ({ bytesWritten: 0, buffer: buf }) };
    await expect(writeFully(stuck as never, bytes, 0)).rejects.toThrow(/no progress after 0 of 100 bytes/);
  });
});

describe('the model file writer (src/pipeline/model-file.ts)', () => {
  it('creates the pre-sized file through the atomic writer and fills tensors by position', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'cmd-model.safetensors');
    const tensors = [{ name: 'w', shape: [3], offset: 0, size: 3 }] as never;
    const layout = planModelFile(tensors, 2, 4, 2, { note: 'test' });
    await createModelFile(file, layout);
    expect(readdirSync(dir)).toEqual(['cmd-model.safetensors']); // no temp file left beside it
    const created = readFileSync(file);
    expect(created.length).toBe(layout.plan.totalBytes);
    expect(Array.from(created.subarray(0, layout.plan.header.length))).toEqual(Array.from(layout.plan.header));
    const refs = new Uint8Array(new Float32Array([1, 2, 3, 4, 5, 6, 7, 8]).buffer);
    await writeAtPosition(file, layout.position('refs'), refs);
    const after = readFileSync(file);
    expect(Array.from(after.subarray(layout.position('refs'), layout.position('refs') + 32))).toEqual(Array.from(refs));
    expect(after.length).toBe(layout.plan.totalBytes);
  });
});
