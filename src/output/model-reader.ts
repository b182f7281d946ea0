/**
 * Reading a `cmd-model.safetensors` back: its run description from `__metadata__`, the
 * reference trajectories, and a/b/mode of any tensor by positioned reads.
 */
import { InputError } from '../errors.ts';
import { readSafetensorsHeader } from '../formats/safetensors.ts';
import type { FloatArray } from '../formats/dtype.ts';
import type { StoredTensor } from '../formats/types.ts';
import { ElementReader } from '../trajectory/element-reader.ts';

export interface ModelCheckpoint {
  index: number;
  step: number;
  name: string;
  bytes: number;
}

export interface ModelTensorInfo {
  name: string;
  shape: number[];
  dtype: string;
  offset: number;
}

export interface ModelParams {
  variant: 'post-hoc' | 'online';
  modesRequested: number;
  modes: number;
  samplesRequested: number;
  samples: number;
  sampling: 'U_B' | 'U' | 'file';
  seed: number | null;
  window: { from: number; to: number };
  warmup?: number;
}

export interface CmdModel {
  path: string;
  source: { dir: string; format: string };
  checkpoints: ModelCheckpoint[];
  tensors: ModelTensorInfo[];
  carried: { name: string; shape: number[]; dtype: string; reason: string }[];
  params: ModelParams;
  references: [string, number][];
  version: string;
  /** M' × T reference trajectories. */
  refs: Float32Array;
  referenceIndex: number[];
  sampleIndex: number[];
  /** Reads elements [start, start+count) of `<tensor>.<field>` into `out`. */
  read(tensor: string, field: 'a' | 'b' | 'mode', start: number, count: number, out: FloatArray, outOffset?: number): void;
  close(): void;
}

function parseJson<T>(file: string, metadata: Record<string, string>, key: string): T {
  const text = metadata[key];
  if (text === undefined) throw new InputError(file, `is not a cmd model: __metadata__ has no ${key}`, 'not-cmd-model');
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new InputError(file, `is not a cmd model: __metadata__ ${key} is not JSON`, 'not-cmd-model');
  }
}

export async function openCmdModel(file: string): Promise<CmdModel> {
  const contents = await readSafetensorsHeader(file);
  const md = contents.metadata;
  if (md.format !== 'cmd-model') throw new InputError(file, 'is not a cmd model (no __metadata__ format "cmd-model")', 'not-cmd-model');
  const byName = new Map<string, StoredTensor>(contents.tensors.map((t) => [t.name, t]));
  const io = new ElementReader();
  const tensor = (name: string): StoredTensor => {
    const t = byName.get(name);
    if (!t) throw new InputError(file, `cmd model has no tensor ${name}`, 'not-cmd-model');
    return t;
  };
  const readAll = (name: string): Float64Array => {
    const t = tensor(name);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const out = new Float64Array(n);
    io.read(t, 0, n, out);
    return out;
  };
  const params = parseJson<ModelParams>(file, md, 'cmd.params');
  const refs = Float32Array.from(readAll('refs'));
  return {
    path: file,
    source: parseJson(file, md, 'cmd.source'),
    checkpoints: parseJson(file, md, 'cmd.checkpoints'),
    tensors: parseJson(file, md, 'cmd.tensors'),
    carried: parseJson(file, md, 'cmd.carried'),
    params,
    references: parseJson(file, md, 'cmd.references'),
    version: md['cmd.version'] ?? '',
    refs,
    referenceIndex: Array.from(readAll('reference_index')),
    sampleIndex: Array.from(readAll('sample_index')),
    read(name, field, start, count, out, outOffset = 0) {
      io.read(tensor(`${name}.${field}`), start, count, out, outOffset);
    },
    close() {
      io.close();
    },
  };
}
