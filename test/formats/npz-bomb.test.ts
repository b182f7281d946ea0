/**
 * Issue 12, point 3: a deflated .npz member is inflated only as far as its npy header (shape
 * and dtype) needs. A member declaring more (a zip bomb: 64 MiB of zeros behind a 4-element
 * array) or a header declaring more than the member holds (shape 2^40) is refused before any
 * of it reaches the scratch disk. Fixtures: fixtures/npz-bombs (test/tools/make-npz-bombs.py).
 */
import { readdirSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { cleanupScratch, scratchDir } from '../../src/formats/scratch.ts';
import { fixture } from '../helpers/tmp.ts';

async function refusal(file: string): Promise<InputError> {
  try {
    await readNpzCheckpoint(file);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`${file} was accepted`);
}

describe('npz members are bounded by their npy header', () => {
  it('the well-formed member is read', async () => {
    const c = await readNpzCheckpoint(fixture('npz-bombs', 'ok.npz'));
    expect(c.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['w', 'F32', [4]]]);
    cleanupScratch();
  });

  it('a member declaring 64 MiB behind a 4-element header is refused, nothing left in scratch', async () => {
    const e = await refusal(fixture('npz-bombs', 'bomb.npz'));
    expect(e.rule).toBe('npz-member-size');
    expect(e.message).toMatch(/bomb\.npz: member 'w\.npy': declares 67109008 bytes inflated but its npy header \(shape and dtype\) needs 144$/);
    expect(readdirSync(scratchDir())).toEqual([]);
    cleanupScratch();
  });

  it('a header declaring shape (2^40,) in a 144-byte member is refused before inflating', async () => {
    const e = await refusal(fixture('npz-bombs', 'huge-shape.npz'));
    expect(e.rule).toBe('npz-member-size');
    expect(e.message).toMatch(/needs 4398046511232$/);
    cleanupScratch();
  });
});
