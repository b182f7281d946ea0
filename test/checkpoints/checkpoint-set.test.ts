import { mkdirSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { describeCheckpointSet } from '../../src/checkpoints/describe.ts';
import { globalIndex, locate } from '../../src/checkpoints/parameter-space.ts';
import { InputError } from '../../src/errors.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.ts';
import { TrajectoryReader } from '../../src/trajectory/trajectory-reader.ts';
import { planTrajectory } from '../../src/trajectory/plan-trajectory.ts';
import { copyInto, fixture, tempDir } from '../helpers/tmp.ts';

const lenetNpz = fixture('lenet5-fmnist', 'npz');
const resnet = fixture('resnet20-bn-safetensors');

async function rejects(p: Promise<unknown>, rule: string, mention?: string): Promise<InputError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(InputError);
  expect((e as InputError).rule).toBe(rule);
  expect((e as InputError).message.split('\n')).toHaveLength(1);
  if (mention) expect((e as InputError).message).toContain(mention);
  return e as InputError;
}

/** Re-encodes a real safetensors file with one tensor changed by `edit`. */
async function rewriteSafetensors(src: string, dst: string, edit: (tensors: { name: string; dtype: any; shape: number[]; data: Uint8Array }[]) => void) {
  const c = await readSafetensorsHeader(src);
  const buf = readFileSync(src);
  const tensors = c.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(buf.subarray(t.spans[0].offset, t.spans[0].offset + t.spans[0].length)) }));
  edit(tensors);
  await writeSafetensors(dst, tensors, c.metadata);
}

describe('loadCheckpointSet', () => {
  it('orders real npz checkpoints naturally and ignores training by-products', async () => {
    const dir = tempDir();
    for (const f of readdirSync(lenetNpz).sort().slice(0, 3)) copyInto(dir, path.join(lenetNpz, f), f.replace('epoch_00', 'epoch_'));
    for (const f of ['optimizer.pt', 'scheduler.pt', 'rng_state_0.pth', 'config.json', 'trainer_state.json', 'training_args.bin', 'README.md', 'tokenizer.json']) writeFileSync(path.join(dir, f), '{}');
    const set = await loadCheckpointSet(dir);
    expect(set.format).toBe('npz');
    expect(set.checkpoints.map((c) => c.step)).toEqual([1, 2, 3]);
    expect(set.checkpoints.map((c) => c.name)).toEqual(['epoch_1.npz', 'epoch_2.npz', 'epoch_3.npz']);
    const d = describeCheckpointSet(set);
    expect(d.ignored.map((i) => i.name).sort()).toEqual(['README.md', 'config.json', 'optimizer.pt', 'rng_state_0.pth', 'scheduler.pt', 'tokenizer.json', 'trainer_state.json', 'training_args.bin']);
    const summary = JSON.parse(readFileSync(fixture('lenet5-fmnist', 'official', 'summary.json'), 'utf8'));
    expect(set.space.total).toBe(summary.params);
  });

  it('numbers elements identically for npz, npy folders and flat npy + tensor table', async () => {
    const summary = JSON.parse(readFileSync(fixture('lenet5-fmnist', 'official', 'summary.json'), 'utf8'));
    const table = summary.tensor_order.map((n: string) => [n, summary.tensor_shapes[n]]);
    const sets = [
      await loadCheckpointSet(lenetNpz, { to: 3 }),
      await loadCheckpointSet(fixture('lenet5-fmnist', 'npy-dirs')),
      await loadCheckpointSet(fixture('lenet5-fmnist', 'flat'), { tensorTable: table }),
    ];
    const N = sets[0].space.total;
    const values = sets.map((s) => {
      const r = new TrajectoryReader(planTrajectory(s));
      const out = new Float32Array(3 * N);
      r.readRange(0, N, out);
      r.close();
      return out;
    });
    expect(sets.map((s) => s.space.tensors.map((t) => t.name))).toEqual([sets[0].space.tensors.map((t) => t.name), sets[0].space.tensors.map((t) => t.name), sets[0].space.tensors.map((t) => t.name)]);
    expect(Buffer.from(values[1].buffer).equals(Buffer.from(values[0].buffer))).toBe(true);
    expect(Buffer.from(values[2].buffer).equals(Buffer.from(values[0].buffer))).toBe(true);
    // natural name order: classifier.* before features.*, and 'classifier.0.bias' before '.weight'
    expect(sets[0].space.tensors[0].name < sets[0].space.tensors[sets[0].space.tensors.length - 1].name).toBe(true);
  });

  it('maps global indices to (tensor, element) and back', async () => {
    const set = await loadCheckpointSet(lenetNpz);
    for (const g of [0, 1, 119, 120, 5000, set.space.total - 1]) {
      const { tensor, element } = locate(set.space, g);
      expect(globalIndex(set.space, tensor, element)).toBe(g);
    }
    expect(globalIndex(set.space, 'no.such.tensor', 0)).toBeUndefined();
  });

  it('reads ranges that cross tensor boundaries and scattered parameters consistently', async () => {
    const set = await loadCheckpointSet(lenetNpz, { to: 3 });
    const r = new TrajectoryReader(planTrajectory(set));
    const N = set.space.total;
    const all = new Float64Array(3 * N);
    r.readRange(0, N, all);
    const b = set.space.tensors[1].offset;
    const part = new Float64Array(3 * 20);
    r.readRange(b - 10, b + 10, part);
    for (let t = 0; t < 3; t++) for (let i = 0; i < 20; i++) expect(part[t * 20 + i]).toBe(all[t * N + b - 10 + i]);
    const idx = [5, b, N - 1];
    const samples = new Float64Array(idx.length * 3);
    r.readParameters(idx, samples);
    for (let j = 0; j < idx.length; j++) for (let t = 0; t < 3; t++) expect(samples[j * 3 + t]).toBe(all[t * N + idx[j]]);
    r.close();
  });

  it('models BatchNorm running stats, carries I64 scalars, and orders by metadata on request', async () => {
    const dir = tempDir();
    // Names without numbers, in reverse alphabetical order of their epochs.
    readdirSync(resnet).sort().forEach((f, i) => copyInto(dir, path.join(resnet, f), `${'cba'[i]}.safetensors`));
    expect((await loadCheckpointSet(dir)).checkpoints.map((c) => c.name)).toEqual(['a.safetensors', 'b.safetensors', 'c.safetensors']);
    const set = await loadCheckpointSet(dir, { orderBy: 'metadata' });
    expect(set.checkpoints.map((c) => c.step)).toEqual([1, 2, 3]);
    expect(set.checkpoints.map((c) => c.name)).toEqual(['c.safetensors', 'b.safetensors', 'a.safetensors']);
    expect(set.space.tensors.some((t) => t.name.endsWith('running_var'))).toBe(true);
    expect(set.space.carried.length).toBeGreaterThan(0);
    expect(set.space.carried.every((t) => t.dtype === 'I64' && t.reason === 'integer')).toBe(true);
  });

  it('reads Hugging Face checkpoint-N folders in numeric order', async () => {
    const dir = tempDir();
    const files = readdirSync(resnet).sort();
    ['checkpoint-1000', 'checkpoint-500', 'checkpoint-1500'].forEach((name, i) => {
      mkdirSync(path.join(dir, name));
      copyInto(path.join(dir, name), path.join(resnet, files[i]), 'model.safetensors');
      writeFileSync(path.join(dir, name, 'optimizer.pt'), 'x');
    });
    const set = await loadCheckpointSet(dir);
    expect(set.checkpoints.map((c) => c.name)).toEqual(['checkpoint-500', 'checkpoint-1000', 'checkpoint-1500']);
  });

  it('applies --include/--exclude and --from/--to/--every', async () => {
    const dir = tempDir();
    const src = path.join(lenetNpz, readdirSync(lenetNpz)[0]);
    for (const s of [1, 2, 3, 4, 5, 6, 7, 8]) copyInto(dir, src, `epoch_${s}.npz`);
    expect((await loadCheckpointSet(dir, { from: 2, to: 7, every: 2 })).checkpoints.map((c) => c.step)).toEqual([2, 4, 6]);
    expect((await loadCheckpointSet(dir, { exclude: ['epoch_[1-3].npz'] })).checkpoints.map((c) => c.step)).toEqual([4, 5, 6, 7, 8]);
    expect((await loadCheckpointSet(dir, { include: ['epoch_[5-8].npz'] })).checkpoints.map((c) => c.step)).toEqual([5, 6, 7, 8]);
  });

  it('refuses folders it cannot use, with one-line errors', async () => {
    const empty = tempDir();
    await rejects(loadCheckpointSet(empty), 'empty-folder', empty);

    const pickles = tempDir();
    for (const f of ['epoch_1.pt', 'epoch_2.pt', 'epoch_3.pt', 'optimizer.pt']) writeFileSync(path.join(pickles, f), 'x');
    const e = await rejects(loadCheckpointSet(pickles), 'pickle-only');
    expect(e.message).toContain('safetensors');

    const mixed = tempDir();
    copyInto(mixed, path.join(lenetNpz, 'epoch_001.npz'));
    copyInto(mixed, path.join(resnet, 'epoch_001.safetensors'));
    await rejects(loadCheckpointSet(mixed), 'mixed-formats');
    expect((await loadCheckpointSet(mixed, { format: 'npz', minCheckpoints: 1 })).checkpoints).toHaveLength(1);

    const dup = tempDir();
    copyInto(dup, path.join(lenetNpz, 'epoch_001.npz'), 'a_1.npz');
    copyInto(dup, path.join(lenetNpz, 'epoch_002.npz'), 'b_1.npz');
    copyInto(dup, path.join(lenetNpz, 'epoch_003.npz'), 'c_2.npz');
    await rejects(loadCheckpointSet(dup), 'duplicate-step');

    const two = tempDir();
    copyInto(two, path.join(lenetNpz, 'epoch_001.npz'));
    copyInto(two, path.join(lenetNpz, 'epoch_002.npz'));
    await rejects(loadCheckpointSet(two), 'too-few-checkpoints');
  });

  it('names the checkpoint and tensor when tensors differ across checkpoints', async () => {
    const files = readdirSync(resnet).sort();
    const missing = tempDir();
    copyInto(missing, path.join(resnet, files[0]));
    copyInto(missing, path.join(resnet, files[1]));
    await rewriteSafetensors(path.join(resnet, files[2]), path.join(missing, files[2]), (ts) => ts.splice(ts.findIndex((t) => t.name.endsWith('running_mean')), 1));
    const e = await rejects(loadCheckpointSet(missing), 'missing-tensor', files[2]);
    expect(e.message).toContain('running_mean');

    const shape = tempDir();
    copyInto(shape, path.join(resnet, files[0]));
    copyInto(shape, path.join(resnet, files[1]));
    await rewriteSafetensors(path.join(resnet, files[2]), path.join(shape, files[2]), (ts) => {
      const t = ts.find((x) => x.dtype === 'F32' && x.shape.length === 4)!;
      t.shape = [t.shape[0] * t.shape[1], ...t.shape.slice(2)];
    });
    await rejects(loadCheckpointSet(shape), 'shape-mismatch', files[2]);
  });
});
