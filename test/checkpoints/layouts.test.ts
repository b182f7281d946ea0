/**
 * Folder layouts real training runs leave behind (issue 10): the Hugging Face Trainer's
 * output folder, its unfinished tmp-checkpoint-N saves and per-checkpoint training state,
 * step numbers in names with several numbers, and --step-pattern.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { compileStepPattern, stepFromName } from '../../src/checkpoints/naming.ts';
import { InputError, UsageError } from '../../src/errors.ts';
import { readNpyDirCheckpoint, writeNpyDir } from '../../src/formats/npy.ts';
import { readNpzCheckpoint, writeNpz } from '../../src/formats/npz.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.ts';
import { writeCheckpointLike } from '../../src/reconstruct/write-checkpoint.ts';
import type { TensorToWrite } from '../../src/formats/types.ts';
import { xorshift32 } from '../helpers/random.ts';
import { tempDir } from '../helpers/tmp.ts';

function tensors(seed: number): TensorToWrite[] {
  const rnd = xorshift32(seed);
  const make = (name: string, shape: number[]) => {
    const v = new Float32Array(shape.reduce((a, b) => a * b, 1)).map(() => rnd() - 0.5);
    return { name, dtype: 'F32' as const, shape, data: new Uint8Array(v.buffer) };
  };
  return [make('model.dense.weight', [4, 3]), make('model.dense.bias', [4])];
}

const trainerFiles = ['optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'training_args.bin'];

/** An HF Trainer output folder: checkpoint-N/ folders, the final export beside them, a tmp save. */
async function hfTrainerFolder(steps: number[]): Promise<string> {
  const dir = tempDir();
  for (const [i, step] of steps.entries()) {
    const ck = path.join(dir, `checkpoint-${step}`);
    mkdirSync(ck);
    await writeSafetensors(path.join(ck, 'model.safetensors'), tensors(i + 1), { format: 'pt' });
    writeFileSync(path.join(ck, 'config.json'), '{"model_type": "test"}');
    writeFileSync(path.join(ck, 'trainer_state.json'), JSON.stringify({ global_step: step }));
    for (const f of trainerFiles) writeFileSync(path.join(ck, f), 'PK\x03\x04 not read');
  }
  await writeSafetensors(path.join(dir, 'model.safetensors'), tensors(99), { format: 'pt' });
  writeFileSync(path.join(dir, 'config.json'), '{"model_type": "test"}');
  // A save the Trainer had not finished: a truncated weights file must not fail the run.
  mkdirSync(path.join(dir, 'tmp-checkpoint-400'));
  writeFileSync(path.join(dir, 'tmp-checkpoint-400', 'model.safetensors'), Buffer.from([8, 0, 0, 0, 0, 0, 0, 0, 0x7b]));
  return dir;
}

describe('Hugging Face Trainer output folder', () => {
  it('reads checkpoint-N/ and lists the final export, tmp-checkpoint-N and training state as ignored', async () => {
    const dir = await hfTrainerFolder([100, 200, 300]);
    const set = await loadCheckpointSet(dir);
    expect(set.format).toBe('safetensors');
    expect(set.checkpoints.map((c) => [c.name, c.step])).toEqual([['checkpoint-100', 100], ['checkpoint-200', 200], ['checkpoint-300', 300]]);
    const reason = new Map(set.ignored.map((i) => [i.name, i.reason]));
    expect(reason.get('model.safetensors')).toMatch(/final export/);
    expect(reason.get('tmp-checkpoint-400')).toMatch(/unfinished/);
    expect(reason.get('config.json')).toBe('configuration');
    for (const f of [...trainerFiles, 'trainer_state.json', 'config.json']) expect(reason.has(`checkpoint-200/${f}`)).toBe(true);
    expect(reason.get('checkpoint-100/optimizer.pt')).toBe('optimizer/scheduler state');
    expect(reason.get('checkpoint-100/rng_state.pth')).toBe('random-number-generator state');
    expect(reason.has('checkpoint-100/model.safetensors')).toBe(false);
  });

  it('orders the same folder by trainer_state.json with --order-by metadata', async () => {
    const dir = await hfTrainerFolder([5, 10, 15]);
    const set = await loadCheckpointSet(dir, { orderBy: 'metadata' });
    expect(set.checkpoints.map((c) => c.step)).toEqual([5, 10, 15]);
  });

  it('still fails on a top-level model without step folders beside it', async () => {
    const dir = tempDir();
    for (const n of ['a_1', 'a_2', 'final']) await writeSafetensors(path.join(dir, `${n}.safetensors`), tensors(1));
    const e = await loadCheckpointSet(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).rule).toBe('no-step');
    expect((e as InputError).message).toContain('--step-pattern');
  });
});

describe('step numbers in names', () => {
  it('prefers a number after step/iter/checkpoint/epoch over the last number', () => {
    expect(stepFromName('model_step100_lr0.01.npz')).toBe(100);
    expect(stepFromName('epoch=3-step=1200.ckpt')).toBe(1200);
    expect(stepFromName('run7_iter250_seed3.safetensors')).toBe(250);
    expect(stepFromName('resnet50_epoch12_bs256.npz')).toBe(12);
    expect(stepFromName('checkpoint-1500')).toBe(1500);
    expect(stepFromName('epoch_010.npz')).toBe(10);
    expect(stepFromName('weights_7_0.5.npz')).toBe(5);
  });

  it('reads the first capture group of --step-pattern', () => {
    const re = compileStepPattern('^w_(\\d+)_');
    expect(stepFromName('w_30_0.5.npz', re)).toBe(30);
    expect(stepFromName('final.npz', re)).toBeUndefined();
    expect(() => compileStepPattern('w_\\d+')).toThrow(UsageError);
    expect(() => compileStepPattern('w_(\\d+')).toThrow(UsageError);
  });

  it('suggests --step-pattern when every step comes out the same, and obeys it', async () => {
    const dir = tempDir();
    for (const [i, n] of [10, 20, 30].entries()) await writeNpz(path.join(dir, `w_${n}_lr0.01.npz`), tensors(i + 1));
    const e = await loadCheckpointSet(dir).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).rule).toBe('duplicate-step');
    expect((e as InputError).message).toContain('--step-pattern');
    expect((e as InputError).message.split('\n')).toHaveLength(1);
    const set = await loadCheckpointSet(dir, { stepPattern: '^w_(\\d+)_' });
    expect(set.checkpoints.map((c) => c.step)).toEqual([10, 20, 30]);
    const miss = await loadCheckpointSet(dir, { stepPattern: 'epoch(\\d+)' }).catch((x: unknown) => x);
    expect((miss as InputError).rule).toBe('no-step');
    expect((miss as InputError).message).toContain('w_10_lr0.01.npz');
  });
});

describe('nested per-tensor npy folders (flax/JAX tree dumps)', () => {
  it('names each tensor by its path under the checkpoint folder and writes the same tree back', async () => {
    const dir = tempDir();
    const tree = (seed: number): TensorToWrite[] => {
      const [w, b] = tensors(seed);
      return [
        { ...w, name: 'params/Conv_0/kernel' },
        { ...b, name: 'params/Conv_0/bias' },
        { ...b, name: 'batch_stats/BatchNorm_0/mean' },
      ];
    };
    for (const step of [100, 200, 300]) await writeNpyDir(path.join(dir, `step_${step}`), tree(step));
    const set = await loadCheckpointSet(dir);
    expect(set.format).toBe('npy');
    expect(set.checkpoints.map((c) => c.step)).toEqual([100, 200, 300]);
    expect(set.checkpoints[0].contents.tensors.map((t) => t.name)).toEqual(['batch_stats/BatchNorm_0/mean', 'params/Conv_0/bias', 'params/Conv_0/kernel']);
    expect(set.checkpoints[0].contents.tensors[2].spans[0].path).toBe(path.join(dir, 'step_100', 'params', 'Conv_0', 'kernel.npy'));
    const out = tempDir();
    await writeNpyDir(out, tree(1));
    const back = await readNpyDirCheckpoint(out);
    expect(back.tensors.map((t) => [t.name, t.shape])).toEqual(set.checkpoints[0].contents.tensors.map((t) => [t.name, t.shape]));
    expect(readFileSync(path.join(out, 'params', 'Conv_0', 'kernel.npy')).subarray(-48)).toEqual(Buffer.from(tree(1)[0].data));
  });
});

describe('reconstructed checkpoints keep what the input folder had', () => {
  it('HF checkpoint folders get config, generation config and tokenizer files, never optimizer or RNG state', async () => {
    const dir = await hfTrainerFolder([100, 200, 300]);
    for (const f of ['generation_config.json', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']) writeFileSync(path.join(dir, 'checkpoint-200', f), `{"file": "${f}"}`);
    const set = await loadCheckpointSet(dir);
    const out = tempDir();
    const written = await writeCheckpointLike(set.checkpoints[1], out, tensors(5));
    expect(written).toBe(path.join(out, 'checkpoint-200'));
    expect(readdirSync(written).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readFileSync(path.join(written, 'tokenizer.json'), 'utf8')).toBe('{"file": "tokenizer.json"}');
    const back = await readSafetensorsHeader(path.join(written, 'model.safetensors'));
    expect(back.tensors.map((t) => t.name)).toEqual(set.checkpoints[1].contents.tensors.map((t) => t.name));
  });

  it('a compressed .npz input comes back compressed, a stored one stored', async () => {
    for (const compress of [true, false]) {
      const dir = tempDir();
      for (const step of [1, 2, 3]) await writeNpz(path.join(dir, `epoch_${step}.npz`), tensors(step), { compress });
      const set = await loadCheckpointSet(dir);
      const out = tempDir();
      const written = await writeCheckpointLike(set.checkpoints[2], out, tensors(9));
      expect(written).toBe(path.join(out, 'epoch_3.npz'));
      const back = await readNpzCheckpoint(written);
      expect(back.extras?.compressed).toBe(compress);
      // ZIP local header: compression method at offset 8
      expect(readFileSync(written).readUInt16LE(8)).toBe(compress ? 8 : 0);
    }
  });
});
