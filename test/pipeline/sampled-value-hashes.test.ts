/**
 * Pass 1 hashes the window's sampled values from memory (src/trajectory/sampled-values.ts); the
 * provenance key reads them from the files for the other checkpoints. Both must give the same
 * hash, or a reused model would look stale (or a stale one fresh).
 */
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { decompose } from '../../src/pipeline/analyze.ts';
import { sampledValueHashes } from '../../src/run/provenance.ts';
import { windowValueHashes } from '../../src/trajectory/sampled-values.ts';
import { fixture } from '../helpers/tmp.ts';

describe('sampled-value hashes from pass 1', () => {
  it.each([
    ['LeNet-5 npz (float32), checkpoints 2..9', fixture('lenet5-fmnist', 'npz'), { from: 2, to: 9 }],
    ['Keras HDF5, the whole run', fixture('keras-h5', 'run'), undefined],
    ['tfjs layers model, the whole run', fixture('fmnist-mlp', 'checkpoints'), undefined],
  ])('%s: equal to reading the files', async (_, dir, window) => {
    const set = await loadCheckpointSet(dir);
    const d = await decompose(set, { modes: 3, samples: 40, seed: 7, window });
    const from = window?.from ?? 0;
    expect(d.windowValueHashes).toHaveLength((window?.to ?? set.checkpoints.length) - from);
    const read = sampledValueHashes(set, Array.from(d.indices));
    expect(d.windowValueHashes).toEqual(read.slice(from, from + d.windowValueHashes!.length));
    // Known hashes are taken as given, the others read: a wrong "known" one shows through.
    const known: (string | undefined)[] = [];
    known[from] = 'x';
    const mixed = sampledValueHashes(set, Array.from(d.indices), known);
    expect(mixed[from]).toBe('x');
    expect(mixed.filter((_, i) => i !== from)).toEqual(read.filter((_, i) => i !== from));
    // A subset of the samples (a shard's range, src/run/scale-out.ts) hashed from pass 1's values.
    const rows = Array.from({ length: d.K }, (_, j) => j).filter((j) => j % 3 === 1);
    const subset = windowValueHashes(d.sampleValues!, d.K, d.windowValueHashes!.length, rows);
    expect(subset).toEqual(sampledValueHashes(set, rows.map((j) => d.indices[j])).slice(from, from + subset.length));
    expect(subset).not.toEqual(d.windowValueHashes);
    // Checkpoints differ from each other, so a hash of the wrong checkpoint would be caught.
    expect(new Set(read).size).toBe(read.length);
  });
});
