/**
 * Issue 12, point 9: disk errors while writing name the file being written (RuntimeError, one
 * line), whether raised in the main thread or in a worker thread (which loses error classes).
 */
import { closeSync, existsSync, openSync, readdirSync, writeSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RuntimeError } from '../../src/errors.ts';
import { asWriteError, reviveWorkerError, writingToSync } from '../../src/io/disk-errors.ts';
import { writeFileAtomic } from '../../src/io/atomic-file.ts';
import { tempDir } from '../helpers/tmp.ts';

/** A real ENOSPC: /dev/full refuses every write with it. */
function realEnospc(): unknown {
  const fd = openSync('/dev/full', 'w');
  try {
    writeSync(fd, Buffer.from('x'));
  } catch (e) {
    return e;
  } finally {
    closeSync(fd);
  }
  throw new Error('/dev/full accepted a write');
}

describe('disk errors name the output file', () => {
  it('ENOSPC becomes a RuntimeError naming the file', () => {
    const e = asWriteError('/out/cmd-model.safetensors', realEnospc());
    expect(e).toBeInstanceOf(RuntimeError);
    expect((e as Error).message).toBe('/out/cmd-model.safetensors: cannot write: no space left on the device (ENOSPC)');
  });

  it('a worker-thread disk error survives the trip as message text and is revived', () => {
    let thrown: unknown;
    try {
      writingToSync('/out/state/sums-0.t3.bin', () => {
        throw realEnospc();
      });
    } catch (e) {
      thrown = structuredClone(e); // what crossing from a worker keeps
    }
    const revived = reviveWorkerError(thrown);
    expect(revived).toBeInstanceOf(RuntimeError);
    expect((revived as Error).message).toBe('/out/state/sums-0.t3.bin: cannot write: no space left on the device (ENOSPC)');
  });

  it('other errors pass through unchanged', () => {
    const e = new RangeError('bug');
    expect(asWriteError('/x', e)).toBe(e);
    expect(reviveWorkerError(e)).toBe(e);
  });

  it('writeFileAtomic into a file where a folder is expected names the target and leaves no temp file', async () => {
    const dir = tempDir();
    const target = path.join(dir, 'report.json');
    // ENOTDIR, a real disk-side refusal that needs no root: the "folder" is a regular file.
    await writeFileAtomic(target, 'x');
    await expect(writeFileAtomic(path.join(target, 'inner.json'), 'y')).rejects.toThrow(new RuntimeError(`${path.join(target, 'inner.json')}: cannot write: a path component is not a folder (ENOTDIR)`));
    expect(readdirSync(dir)).toEqual(['report.json']);
    expect(existsSync(path.join(dir, 'inner.json'))).toBe(false);
  });
});
