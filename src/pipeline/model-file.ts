/**
 * Layout of `cmd-model.safetensors`: per modelled tensor `<name>.mode`, `<name>.a`,
 * `<name>.b`; `refs` (modes × T float32); `reference_index` and `sample_index` (int64 global
 * indices, never float32: the official code's rounding, docs/method.md §9); and `__metadata__` describing the run.
 */
import { promises as fsp } from 'node:fs';
import { writeFileAtomicWith, writeFully } from '../io/atomic-file.ts';
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';
import { planSafetensors, type SafetensorsPlan } from '../formats/safetensors.ts';
import type { DType } from '../formats/dtype.ts';
import type { TensorSlots } from './worker.ts';
import { writingTo } from '../io/disk-errors.ts';

export const MODEL_FILE = 'cmd-model.safetensors';
/** Folder of the extra models of a mode sweep. */
export const SWEEP_DIR = 'sweep';
export const sweepModelName = (modes: number): string => `cmd-model-M${modes}.safetensors`;

export interface ModelLayout {
  plan: SafetensorsPlan;
  modeDtype: 'U8' | 'U16';
  slots: TensorSlots[];
  position(name: string): number;
}

/**
 * uint8 up to 256 modes, else uint16. With --skip-nonfinite the largest value (255 / 65535)
 * marks parameters left out of the model, so uint8 then holds at most 255 modes.
 */
export function modeDtypeFor(modes: number, sentinel = false): 'U8' | 'U16' {
  return modes <= (sentinel ? 255 : 256) ? 'U8' : 'U16';
}

export function planModelFile(tensors: readonly ModelledTensor[], modes: number, checkpoints: number, samples: number, metadata: Record<string, string>, sentinel = false): ModelLayout {
  const modeDtype = modeDtypeFor(modes, sentinel);
  const specs: { name: string; dtype: DType; shape: number[] }[] = [];
  for (const t of tensors) {
    specs.push({ name: `${t.name}.mode`, dtype: modeDtype, shape: t.shape });
    specs.push({ name: `${t.name}.a`, dtype: 'F32', shape: t.shape });
    specs.push({ name: `${t.name}.b`, dtype: 'F32', shape: t.shape });
  }
  specs.push({ name: 'refs', dtype: 'F32', shape: [modes, checkpoints] });
  specs.push({ name: 'reference_index', dtype: 'I64', shape: [modes] });
  specs.push({ name: 'sample_index', dtype: 'I64', shape: [samples] });
  const plan = planSafetensors(specs, metadata);
  const position = (name: string) => {
    const o = plan.offsets.get(name);
    if (!o) throw new RangeError(`model layout has no tensor ${name}`);
    return plan.header.length + o.begin;
  };
  const slots = tensors.map((t) => ({ a: position(`${t.name}.a`), b: position(`${t.name}.b`), mode: position(`${t.name}.mode`) }));
  return { plan, modeDtype, slots, position };
}

/**
 * Creates the pre-sized model file with its header, through the project's atomic writer (the
 * file appears whole, header and size, or not at all); tensor data is then filled in by position.
 */
export async function createModelFile(path: string, layout: ModelLayout): Promise<void> {
  await writeFileAtomicWith(path, async (fh) => {
    await fh.truncate(layout.plan.totalBytes);
    await writeFully(fh, layout.plan.header, 0);
  });
}

/** Writes `bytes` into the model file at `position`, all of them (short writes are continued). */
export async function writeAtPosition(path: string, position: number, bytes: Uint8Array): Promise<void> {
  await writingTo(path, async () => {
    const fh = await fsp.open(path, 'r+');
    try {
      await writeFully(fh, bytes, position);
    } finally {
      await fh.close();
    }
  });
}

export async function syncFile(path: string): Promise<void> {
  await writingTo(path, async () => {
    const fh = await fsp.open(path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  });
}
