/**
 * The official CMD implementation's outputs on a real LeNet-5 / Fashion-MNIST trajectory,
 * reproduced from the same samples (fixtures/lenet5-fmnist/official, see its README).
 */
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadCheckpointSet, type CheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { analyzeCheckpoints, type AnalysisResult } from '../../src/pipeline/analyze.ts';
import { openCmdModel, type CmdModel } from '../../src/output/model-reader.ts';
import { readNpyHeader } from '../../src/formats/npy.ts';
import { decodeInto } from '../../src/formats/dtype.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

const official = (f: string) => fixture('lenet5-fmnist', 'official', f);

async function loadNpy(file: string): Promise<{ shape: number[]; values: Float64Array }> {
  const h = await readNpyHeader(file);
  const n = h.shape.reduce((a: number, b: number) => a * b, 1);
  const buf = readFileSync(file).subarray(h.dataOffset);
  const values = new Float64Array(n);
  decodeInto(h.descr.dtype, new Uint8Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength)), n, values, 0, !h.descr.bigEndian);
  return { shape: h.shape, values };
}

describe('equivalence with the official implementation (LeNet-5, M = 10, K = 1000, T = 25)', () => {
  const summary = JSON.parse(readFileSync(official('summary.json'), 'utf8'));
  const order: string[] = summary.tensor_order;
  let set: CheckpointSet;
  let result: AnalysisResult;
  let model: CmdModel;
  let a: Float64Array, b: Float64Array, mode: Float64Array;

  beforeAll(async () => {
    set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'));
    const samples = JSON.parse(readFileSync(official('samples.json'), 'utf8'));
    const out = tempDir();
    result = await analyzeCheckpoints(set, out, { modes: summary.modes_requested, samples: samples.length, seed: 0, samplesFrom: samples, workers: 2 });
    model = await openCmdModel(result.modelPath);
    // Our outputs laid out flat in the official tensor order, to compare index by index.
    const N = set.space.total;
    a = new Float64Array(N);
    b = new Float64Array(N);
    mode = new Float64Array(N);
    let pos = 0;
    for (const name of order) {
      const n = summary.tensor_shapes[name].reduce((x: number, y: number) => x * y, 1);
      model.read(name, 'a', 0, n, a, pos);
      model.read(name, 'b', 0, n, b, pos);
      model.read(name, 'mode', 0, n, mode, pos);
      pos += n;
    }
    expect(pos).toBe(N);
  });

  it('chooses the same reference parameters, mode by mode', () => {
    const refs = JSON.parse(readFileSync(official('references.json'), 'utf8'));
    expect(result.modes.map((m) => [m.reference.tensor, m.reference.element])).toEqual(refs);
    expect(model.references).toEqual(refs);
  });

  it('assigns ≥ 99.99% of parameters to the same mode', async () => {
    const theirs = (await loadNpy(official('mode.npy'))).values;
    let same = 0;
    for (let i = 0; i < theirs.length; i++) if (theirs[i] === mode[i]) same++;
    expect(same / theirs.length).toBeGreaterThanOrEqual(0.9999);
  });

  it('fits the same a and b where the mode agrees (1e-5 relative or 1e-7 absolute)', async () => {
    const [ta, tb, tm] = await Promise.all([loadNpy(official('a.npy')), loadNpy(official('b.npy')), loadNpy(official('mode.npy'))]);
    let compared = 0;
    const bad: string[] = [];
    for (let i = 0; i < ta.values.length; i++) {
      if (tm.values[i] !== mode[i]) continue;
      compared++;
      for (const [ours, theirs, label] of [[a[i], ta.values[i], 'a'], [b[i], tb.values[i], 'b']] as const) {
        const diff = Math.abs(ours - theirs);
        if (!(diff <= 1e-7 || diff <= 1e-5 * Math.abs(theirs))) bad.push(`${label}[${i}]: ${ours} vs ${theirs}`);
      }
    }
    expect(compared).toBeGreaterThan(61000);
    expect(bad.slice(0, 5)).toEqual([]);
  });

  it('has the same reference trajectories and per-checkpoint reconstruction error', async () => {
    const refs = await loadNpy(official('refs.npy'));
    expect(refs.shape).toEqual([10, 25]);
    expect(Array.from(model.refs)).toEqual(Array.from(refs.values, (v) => Math.fround(v)));
    const theirs: number[] = summary.posthoc_rel_recon_err;
    expect(result.checkpointErrors).toHaveLength(theirs.length);
    result.checkpointErrors.forEach((e, t) => expect(Math.abs(e - theirs[t]) / theirs[t]).toBeLessThan(1e-5));
  });

  it('numbers modes by sampled count, largest first', () => {
    const counts = result.modes.map((m) => m.sampledCount);
    expect([...counts].sort((x, y) => y - x)).toEqual(counts);
    expect(counts.reduce((s, c) => s + c, 0)).toBe(1000);
  });
});
