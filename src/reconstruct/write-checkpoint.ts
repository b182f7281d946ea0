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
import { averagedTensors } from './checkpoint-tensors.ts';
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

/** `epoch_3.pt` → `epoch_3.safetensors`; Hugging Face's `pytorch_model.bin` → `model.safetensors`. */
export function safetensorsNameForTorch(file: string): string {
  if (file === 'pytorch_model.bin') return 'model.safetensors';
  const dot = file.lastIndexOf('.');
  return `${dot > 0 ? file.slice(0, dot) : file}.safetensors`;
}

/**
 * A PyTorch input comes back as safetensors, never as a pickle (docs/formats.md, "PyTorch"),
 * named so `from_pretrained` finds it: `model.safetensors`, or for a sharded
 * `pytorch_model.bin.index.json` the files `model-0000k-of-0000n.safetensors` and
 * `model.safetensors.index.json`.
 */
async function writeTorchAsSafetensors(source: CheckpointInfo, outDir: string, tensors: TensorToWrite[], name: string): Promise<string> {
  const inFolder = source.entry !== source.path;
  const metadata = source.contents.metadata;
  if (source.layout !== 'sharded') {
    const file = safetensorsNameForTorch(path.basename(inFolder ? source.path : name));
    const dest = inFolder ? path.join(outDir, name, file) : path.join(outDir, file);
    await fsp.mkdir(path.dirname(dest), { recursive: true });
    await writeSafetensors(dest, tensors, metadata);
    return inFolder ? path.dirname(dest) : dest;
  }
  const destDir = inFolder ? path.join(outDir, name) : outDir;
  await fsp.mkdir(destDir, { recursive: true });
  const shards = (source.contents.extras?.torch as { shards?: string[] } | undefined)?.shards ?? [];
  const stored = new Map(source.contents.tensors.map((t) => [t.name, t]));
  const pad = (k: number) => String(k).padStart(5, '0');
  const shardName = (i: number) => `model-${pad(i + 1)}-of-${pad(shards.length)}.safetensors`;
  const byShard = new Map<number, TensorToWrite[]>();
  for (const t of tensors) {
    const from = path.basename(stored.get(t.name)?.spans[0]?.path ?? '');
    const i = Math.max(0, shards.indexOf(from));
    byShard.set(i, [...(byShard.get(i) ?? []), t]);
  }
  const weightMap: Record<string, string> = {};
  let total = 0;
  for (const [i, list] of [...byShard].sort((a, b) => a[0] - b[0])) {
    await writeSafetensors(path.join(destDir, shardName(i)), list, metadata);
    for (const t of list) {
      weightMap[t.name] = shardName(i);
      total += t.data.byteLength;
    }
  }
  const sortedMap = Object.fromEntries(Object.keys(weightMap).sort().map((k) => [k, weightMap[k]]));
  const index = `${JSON.stringify({ metadata: { total_size: total }, weight_map: sortedMap }, null, 2)}\n`;
  await writeFileAtomic(path.join(destDir, 'model.safetensors.index.json'), Buffer.from(index));
  return inFolder ? destDir : path.join(destDir, 'model.safetensors.index.json');
}

/**
 * Writes `tensors` as a checkpoint shaped like `source` under `outDir`, named `name`
 * (default: the source's own entry name). Returns the path written (file or folder).
 */
export async function writeCheckpointLike(source: CheckpointInfo, outDir: string, tensors: TensorToWrite[], format: OutputFormat = 'same', name = source.name): Promise<string> {
  await fsp.mkdir(outDir, { recursive: true });
  const inFolder = source.entry !== source.path; // the checkpoint is a folder (HF checkpoint-N/, tfjs epoch_1/, npy dir)
  const metadata = source.contents.metadata;
  if (format === 'torch' && source.contents.format !== 'torch') throw new UsageError('--format torch: cmd never writes pickles; PyTorch inputs come back as safetensors');
  if (source.contents.format === 'torch' && (format === 'same' || format === 'torch' || format === 'safetensors')) {
    return writeTorchAsSafetensors(source, outDir, tensors, name);
  }
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

/**
 * Writes the uniform mean of `averaged` (the window's last k checkpoints) shaped like the last of
 * them, named `avg-last-<k>` plus that checkpoint's suffix (`.safetensors`, …). Returns the path.
 */
export async function writeAverageLike(averaged: CheckpointInfo[], outDir: string, format: OutputFormat = 'same'): Promise<string> {
  const last = averaged[averaged.length - 1];
  const name = `avg-last-${averaged.length}${last.name.slice(stripCheckpointSuffix(last.name).length)}`;
  return writeCheckpointLike(last, outDir, averagedTensors(averaged), format, name);
}
