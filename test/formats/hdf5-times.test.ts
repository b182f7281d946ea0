import { readFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { readKerasCheckpoint, writeKerasWeights } from '../../src/formats/keras-h5.ts';
import { lookup3 } from '../../src/formats/hdf5-times.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

describe('lookup3 (the checksum of HDF5 metadata)', () => {
  it("matches Bob Jenkins' published hashlittle values", () => {
    // lookup3.c driver5: hashlittle("", 0, 0) and the "Four score" vectors.
    expect(lookup3(new Uint8Array(0), 0)).toBe(0xdeadbeef);
    expect(lookup3(new Uint8Array(0), 0xdeadbeef)).toBe(0xbd5b7dde);
    const four = Buffer.from('Four score and seven years ago', 'latin1');
    expect(lookup3(four, 0)).toBe(0x17770551);
    expect(lookup3(four, 1)).toBe(0xcd628161);
  });
});

describe('Keras weights written twice', () => {
  it('are byte-identical although HDF5 stamps object headers with the time', async () => {
    const src = path.join(fixture('keras-h5', 'run'), 'epoch_02.weights.h5');
    const c = await readKerasCheckpoint(src);
    const tensors = c.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(readFileSync(t.spans[0].path).subarray(t.spans[0].offset, t.spans[0].offset + t.spans[0].length)) }));
    const dir = tempDir();
    await writeKerasWeights(path.join(dir, 'a.weights.h5'), tensors, src);
    await sleep(1100); // the stamps have a resolution of one second
    await writeKerasWeights(path.join(dir, 'b.weights.h5'), tensors, src);
    expect(readFileSync(path.join(dir, 'a.weights.h5')).equals(readFileSync(path.join(dir, 'b.weights.h5')))).toBe(true);
    // and the patched file still opens (h5wasm verifies the header checksums)
    const back = await readKerasCheckpoint(path.join(dir, 'b.weights.h5'));
    expect(back.tensors.map((t) => t.name)).toEqual(c.tensors.map((t) => t.name));
  });
});
