/**
 * Writing a checkpoint "like" an input one: same format, layout, file names, tensor names,
 * shapes, dtypes and metadata (or another format on request).
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointInfo } from '../checkpoints/checkpoint-set.ts';
import { stripCheckpointSuffix } from '../checkpoints/naming.ts';
import { UsageError } from '../errors.ts';
import { FLAT_TENSOR_NAME, writeNpy, writeNpyDir } from '../formats/npy.ts';
import { writeNpz } from '../formats/npz.ts';
import { writeSafetensors } from '../formats/safetensors.ts';
import { writeTfjsCheckpoint } from '../formats/tfjs.ts';
import type { FormatName, TensorToWrite } from '../formats/types.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import { copyCompanionFiles } from './companion-files.ts';

export type OutputFormat = 'same' | FormatName;

/** tfjs has float32, int32 and bool only: wider or narrower floats are written as float32. */
function asTfjsTensors(tensors: TensorToWrite[]): TensorToWrite[] {
  return tensors.map((t) => {
    if (t.dtype === 'F32' || t.dtype === 'I32' || t.dtype === 'BOOL') return t;
    throw new UsageError(`--format tfjs: tensor ${t.name} is ${t.dtype}, which tfjs cannot store`);
  });
}

function concatFlat(tensors: TensorToWrite[]): TensorToWrite {
  const dtype = tensors[0].dtype;
  const total = tensors.reduce((s, t) => s + t.data.byteLength, 0);
  const data = new Uint8Array(total);
  let o = 0;
  for (const t of tensors) {
    data.set(t.data, o);
    o += t.data.byteLength;
  }
  const count = tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
  return { name: FLAT_TENSOR_NAME, dtype, shape: [count], data };
}

/** Writes shards named as in the source's index, plus a copy of the index. */
async function writeSharded(source: CheckpointInfo, destDir: string, tensors: TensorToWrite[]): Promise<void> {
  const byShard = new Map<string, TensorToWrite[]>();
  const stored = new Map(source.contents.tensors.map((t) => [t.name, t]));
  for (const t of tensors) {
    const shard = path.basename(stored.get(t.name)!.spans[0]?.path ?? 'model.safetensors');
    byShard.set(shard, [...(byShard.get(shard) ?? []), t]);
  }
  await fsp.mkdir(destDir, { recursive: true });
  for (const [shard, list] of byShard) await writeSafetensors(path.join(destDir, shard), list, source.contents.metadata);
  await writeFileAtomic(path.join(destDir, path.basename(source.path)), await fsp.readFile(source.path));
}

/**
 * Writes `tensors` as a checkpoint shaped like `source` under `outDir`, named `name`
 * (default: the source's own entry name). Returns the path written (file or folder).
 */
export async function writeCheckpointLike(source: CheckpointInfo, outDir: string, tensors: TensorToWrite[], format: OutputFormat = 'same', name = source.name): Promise<string> {
  await fsp.mkdir(outDir, { recursive: true });
  const inFolder = source.entry !== source.path; // the checkpoint is a folder (HF checkpoint-N/, tfjs epoch_1/, npy dir)
  const metadata = source.contents.metadata;
  if (format !== 'same' && format !== source.contents.format) {
    const stem = stripCheckpointSuffix(name);
    switch (format) {
      case 'safetensors': {
        const dest = path.join(outDir, `${stem}.safetensors`);
        await writeSafetensors(dest, tensors, metadata);
        return dest;
      }
      case 'npz': {
        const dest = path.join(outDir, `${stem}.npz`);
        await writeNpz(dest, tensors);
        return dest;
      }
      case 'npy': {
        const dest = path.join(outDir, stem);
        await writeNpyDir(dest, tensors);
        return dest;
      }
      case 'tfjs': {
        const dest = path.join(outDir, stem);
        await writeTfjsCheckpoint(dest, asTfjsTensors(tensors));
        return dest;
      }
      case 'keras-h5':
        throw new UsageError('--format keras-h5 needs a Keras input to copy the layout from; write safetensors, npz or npy instead');
    }
  }
  switch (source.layout) {
    case 'file': {
      if (source.contents.format === 'keras-h5') {
        // A .keras archive comes back as the .weights.h5 it holds (docs/formats.md).
        const dest = path.join(outDir, source.contents.extras?.archive ? `${stripCheckpointSuffix(name)}.weights.h5` : name);
        const { writeKerasWeights } = await import('../formats/keras-h5.ts');
        await writeKerasWeights(dest, tensors, source.contents.extras?.h5 as string);
        return dest;
      }
      if (source.contents.format === 'npz') {
        const dest = path.join(outDir, name);
        await writeNpz(dest, tensors, { compress: source.contents.extras?.compressed === true });
        return dest;
      }
      const dest = inFolder ? path.join(outDir, name, path.basename(source.path)) : path.join(outDir, name);
      await fsp.mkdir(path.dirname(dest), { recursive: true });
      await writeSafetensors(dest, tensors, metadata);
      if (inFolder) await copyCompanionFiles(source.entry, path.dirname(dest));
      return inFolder ? path.dirname(dest) : dest;
    }
    case 'sharded': {
      const dest = inFolder ? path.join(outDir, name) : outDir;
      await writeSharded(source, dest, tensors);
      if (inFolder) await copyCompanionFiles(source.entry, dest);
      return inFolder ? dest : path.join(outDir, name);
    }
    case 'npy-dir': {
      const dest = path.join(outDir, name);
      await writeNpyDir(dest, tensors);
      return dest;
    }
    case 'flat-npy': {
      const dest = path.join(outDir, name);
      await writeNpy(dest, concatFlat(tensors));
      return dest;
    }
    case 'tfjs-model':
    case 'tfjs-manifest': {
      const dest = inFolder ? path.join(outDir, name) : path.join(outDir, stripCheckpointSuffix(name));
      await writeTfjsCheckpoint(dest, asTfjsTensors(tensors), source.contents.extras);
      return dest;
    }
  }
}
