/** Opens one discovered checkpoint with its format's reader (headers only, no tensor data). */
import { readFlatNpyCheckpoint, readNpyDirCheckpoint } from '../formats/npy.ts';
import { readNpzCheckpoint } from '../formats/npz.ts';
import { readSafetensorsHeader, readShardedSafetensors } from '../formats/safetensors.ts';
import type { CheckpointContents } from '../formats/types.ts';
import type { CheckpointSource } from './discover.ts';

export interface OpenOptions {
  /** `--tensor-table`: [name, shape] pairs that split a flat .npy vector into tensors. */
  tensorTable?: [string, number[]][];
  /** `--state-key KEY`: the dict holding a PyTorch checkpoint's tensors (dotted path). */
  stateKey?: string;
}

export function openCheckpoint(source: CheckpointSource, options: OpenOptions = {}): Promise<CheckpointContents> {
  if (source.format === 'torch') return openTorch(source, options);
  switch (source.layout) {
    case 'file':
      if (source.format === 'keras-h5') return import('../formats/keras-h5.ts').then((m) => m.readKerasCheckpoint(source.path));
      return source.format === 'npz' ? readNpzCheckpoint(source.path) : readSafetensorsHeader(source.path);
    case 'sharded':
      return readShardedSafetensors(source.path);
    case 'npy-dir':
      return readNpyDirCheckpoint(source.path);
    case 'flat-npy':
      return readFlatNpyCheckpoint(source.path, options.tensorTable);
    case 'tfjs-model':
    case 'tfjs-manifest':
      // Loaded on demand: the manifest reader brings zod, which other formats do not need.
      return import('../formats/tfjs.ts').then((m) => m.readTfjsCheckpoint(source.path));
  }
}

/** PyTorch files (one archive or a sharded index); the reader is loaded only when needed. */
async function openTorch(source: CheckpointSource, options: OpenOptions): Promise<CheckpointContents> {
  const m = await import('../formats/torch.ts');
  const opts = { stateKey: options.stateKey };
  return source.layout === 'sharded' ? m.readShardedTorch(source.path, opts) : m.readTorchCheckpoint(source.path, opts);
}
