/** What `cmd inspect` reports about a checkpoint folder, as plain data. */
import { DTYPES } from '../formats/dtype.ts';
import type { CheckpointSet } from './checkpoint-set.ts';

export interface FolderDescription {
  dir: string;
  format: string;
  checkpoints: { index: number; step: number; name: string; bytes: number }[];
  tensors: { name: string; shape: number[]; dtype: string; elements: number; role: 'modelled' | 'carried'; reason?: string }[];
  ignored: { name: string; reason: string }[];
  modelledParameters: number;
  /** Bytes the modelled tensors take in one checkpoint (as stored). */
  modelledBytesPerCheckpoint: number;
  totalBytes: number;
  notes: string[];
}

export function describeCheckpointSet(set: CheckpointSet): FolderDescription {
  const first = set.checkpoints[0].contents;
  const modelled = new Set(set.space.tensors.map((t) => t.name));
  const carried = new Map(set.space.carried.map((t) => [t.name, t.reason]));
  const tensors = [...set.space.tensors.map((t) => t.name), ...set.space.carried.map((t) => t.name)].map((name) => {
    const t = first.tensors.find((x) => x.name === name)!;
    const elements = t.shape.reduce((a, b) => a * b, 1);
    return modelled.has(name)
      ? { name, shape: t.shape, dtype: t.dtype, elements, role: 'modelled' as const }
      : { name, shape: t.shape, dtype: t.dtype, elements, role: 'carried' as const, reason: carried.get(name) };
  });
  const modelledBytes = first.tensors
    .filter((t) => modelled.has(t.name))
    .reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1) * DTYPES[t.encoding.dtype].bytes, 0);
  return {
    dir: set.dir,
    format: set.format,
    checkpoints: set.checkpoints.map((c) => ({ index: c.index, step: c.step, name: c.name, bytes: c.bytes })),
    tensors,
    ignored: [...set.ignored, ...entriesIgnoredInside(set)],
    modelledParameters: set.space.total,
    modelledBytesPerCheckpoint: modelledBytes,
    totalBytes: set.checkpoints.reduce((s, c) => s + c.bytes, 0),
    notes: set.notes,
  };
}

/**
 * Entries inside the first checkpoint that are not tensors of the model (a PyTorch file's
 * epoch counter, optimizer state, Lightning hyper_parameters), as `<checkpoint>: <key>`.
 */
function entriesIgnoredInside(set: CheckpointSet): { name: string; reason: string }[] {
  const first = set.checkpoints[0];
  const inside = (first.contents.extras?.torch as { ignored?: { name: string; reason: string }[] } | undefined)?.ignored ?? [];
  return inside.map((i) => ({ name: `${first.name}: ${i.name}`, reason: i.reason }));
}
