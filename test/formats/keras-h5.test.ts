/**
 * Keras 3 weights (.weights.h5 and .keras) read and written through h5wasm, checked against
 * h5py on files written in Keras 3's layout (fixtures/keras-h5, test/tools/make_keras_fixtures.py).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { isWeightPath, readKerasCheckpoint, writeKerasWeights } from '../../src/formats/keras-h5.ts';
import { writeNpz } from '../../src/formats/npz.ts';
import type { StoredTensor, TensorToWrite } from '../../src/formats/types.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const run = fixture('keras-h5', 'run');
const archives = fixture('keras-h5', 'archives');

interface H5Item {
  path: string;
  kind: 'group' | 'dataset';
  shape?: number[];
  dtype?: string;
  chunks?: number[] | null;
  compression?: string | null;
  attrs: Record<string, unknown>;
  values?: number[];
}

function describeH5(file: string): H5Item[] {
  const r = spawnSync(PYTHON, [path.join(repoRoot, 'test', 'tools', 'describe_h5.py'), file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(r.stderr);
  return JSON.parse(r.stdout) as H5Item[];
}

function bytesOf(t: StoredTensor): Uint8Array {
  const s = t.spans[0];
  return new Uint8Array(readFileSync(s.path).subarray(s.offset, s.offset + s.length));
}

async function rejects(p: Promise<unknown>, rule: string, mention: string): Promise<void> {
  const e = await p.then(() => undefined, (x: unknown) => x);
  expect(e).toBeInstanceOf(InputError);
  expect((e as InputError).rule).toBe(rule);
  expect((e as InputError).message.split('\n')).toHaveLength(1);
  expect((e as InputError).message).toContain(mention);
}

describe('weight datasets', () => {
  it('are the datasets directly inside vars groups under layers/, at any depth', () => {
    expect(isWeightPath('layers/dense/vars/0')).toBe(true);
    expect(isWeightPath('layers/functional/layers/dense_1/vars/1')).toBe(true);
    expect(isWeightPath('optimizer/vars/3')).toBe(false);
    expect(isWeightPath('vars/0')).toBe(false);
    expect(isWeightPath('layers/dense/vars')).toBe(false);
  });
});

describe.skipIf(!haveTools('python3-h5py'))('Keras 3 weights through h5wasm, checked with h5py', () => {
  it('reads every layer variable (nested model included) with the values h5py reads, and no optimizer state', async () => {
    const file = path.join(run, 'epoch_03.weights.h5');
    const c = await readKerasCheckpoint(file);
    const ref = describeH5(file).filter((i) => i.kind === 'dataset' && i.path.startsWith('layers/'));
    expect(c.format).toBe('keras-h5');
    expect(c.tensors.map((t) => t.name)).toEqual(ref.map((i) => i.path));
    expect(c.tensors.map((t) => t.name)).toContain('layers/functional/layers/dense_1/vars/0');
    for (const [i, t] of c.tensors.entries()) {
      expect(t.shape).toEqual(ref[i].shape);
      expect(t.dtype).toBe('F32');
      expect(Array.from(new Float32Array(bytesOf(t).slice().buffer))).toEqual(ref[i].values);
    }
  });

  it('reads the weights inside a .keras archive like the same .weights.h5', async () => {
    const k = await readKerasCheckpoint(path.join(archives, 'model_epoch2.keras'));
    const h = await readKerasCheckpoint(path.join(run, 'epoch_02.weights.h5'));
    expect(k.tensors.map((t) => [t.name, t.shape])).toEqual(h.tensors.map((t) => [t.name, t.shape]));
    for (let i = 0; i < k.tensors.length; i++) expect(Buffer.from(bytesOf(k.tensors[i])).equals(Buffer.from(bytesOf(h.tensors[i])))).toBe(true);
  });

  it("writes new weights with the input's exact groups, datasets, attributes and optimizer state", async () => {
    const file = path.join(run, 'epoch_04.weights.h5');
    const c = await readKerasCheckpoint(file);
    const tensors: TensorToWrite[] = c.tensors.map((t) => {
      const v = new Float32Array(bytesOf(t).slice().buffer).map((x, j) => x * 2 + j);
      return { name: t.name, dtype: t.dtype, shape: t.shape, data: new Uint8Array(v.buffer) };
    });
    const out = path.join(tempDir(), 'epoch_04.weights.h5');
    await writeKerasWeights(out, tensors, file);
    const before = describeH5(file);
    const after = describeH5(out);
    const strip = (items: H5Item[]) => items.map(({ values: _v, ...rest }) => rest);
    expect(strip(after)).toEqual(strip(before));
    for (const [i, item] of after.entries()) {
      const t = tensors.find((x) => x.name === item.path);
      if (t) expect(item.values).toEqual(Array.from(new Float32Array(t.data.buffer)));
      else expect(item.values).toEqual(before[i].values);
    }
    expect(readdirSync(path.dirname(out))).toEqual(['epoch_04.weights.h5']);
  });

  it('refuses files that are not Keras 3 weights with one line naming the file', async () => {
    const dir = tempDir();
    const text = path.join(dir, 'a.weights.h5');
    writeFileSync(text, 'not hdf5 at all');
    await rejects(readKerasCheckpoint(text), 'keras-not-hdf5', text);
    const cut = path.join(dir, 'cut.weights.h5');
    writeFileSync(cut, readFileSync(path.join(run, 'epoch_01.weights.h5')).subarray(0, 3000));
    await rejects(readKerasCheckpoint(cut), 'keras-corrupt', cut);
    const legacy = path.join(dir, 'legacy.weights.h5');
    const r = spawnSync(PYTHON, ['-c', 'import sys,h5py,numpy as np\nf=h5py.File(sys.argv[1],"w")\nf.attrs["layer_names"]=[b"dense"]\nf.create_group("dense").create_dataset("dense/kernel:0",data=np.zeros((2,2),"f4"))\nf.close()', legacy], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    await rejects(readKerasCheckpoint(legacy), 'keras-no-weights', 'Keras 2');
    const noWeights = path.join(dir, 'npz.keras');
    await writeNpz(noWeights, [{ name: 'x', dtype: 'F32', shape: [1], data: new Uint8Array(4) }]);
    await rejects(readKerasCheckpoint(noWeights), 'keras-no-weights', 'model.weights.h5');
    const half = path.join(dir, 'half.keras');
    copyFileSync(path.join(archives, 'model_epoch1.keras'), half);
    writeFileSync(half, readFileSync(half).subarray(0, 20000));
    await rejects(readKerasCheckpoint(half), 'keras-corrupt', half);
    expect(existsSync(path.join(dir, 'a.weights.h5'))).toBe(true);
  });
});
