/**
 * Whole-checkpoint tensor sets, as writers take them: the original checkpoint t, its CMD
 * reconstruction ŵ(t) = a ⊙ r(t)[mode] + b, and the uniform average of several checkpoints.
 * One checkpoint at a time is held in memory, never the trajectory.
 */
import type { CheckpointInfo, CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { DTYPES, decodeInto, elementCount, encodeFloats, isFloat } from '../formats/dtype.ts';
import type { StoredTensor, TensorToWrite } from '../formats/types.ts';
import type { CmdModel } from '../output/model-reader.ts';
import { ElementReader } from '../trajectory/element-reader.ts';

/** Reads a stored tensor as little-endian bytes of its logical dtype (dequantized, byte-swapped). */
function readAsLittleEndian(io: ElementReader, t: StoredTensor): Uint8Array {
  const n = elementCount(t.shape);
  const enc = t.encoding;
  if (enc.dtype === t.dtype && !enc.bigEndian && !enc.quantization) {
    const out = new Uint8Array(n * DTYPES[t.dtype].bytes);
    io.readRaw(t, 0, out.byteLength, out);
    return out;
  }
  const values = new Float64Array(n);
  io.read(t, 0, n, values);
  return encodeFloats(t.dtype, values);
}

/** The original checkpoint's tensors, in its storage order. */
export function originalTensors(checkpoint: CheckpointInfo): TensorToWrite[] {
  const io = new ElementReader();
  try {
    return checkpoint.contents.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: readAsLittleEndian(io, t) }));
  } finally {
    io.close();
  }
}

/**
 * ŵ_i(t) for one modelled tensor, in float32 arithmetic as the official reconstruction
 * (`r(t)[mode] * a + b` on float32 tensors): fround(fround(a · r) + b).
 */
export function reconstructTensor(model: CmdModel, name: string, count: number, position: number, original?: ArrayLike<number>): Float32Array {
  const a = new Float32Array(count);
  const b = new Float32Array(count);
  const mode = new Float32Array(count);
  model.read(name, 'a', 0, count, a);
  model.read(name, 'b', 0, count, b);
  model.read(name, 'mode', 0, count, mode);
  const T = model.checkpoints.length;
  const M = model.params.modes;
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    // A mode ≥ M is the --skip-nonfinite sentinel: the parameter is carried as-is.
    out[i] = mode[i] < M ? Math.fround(Math.fround(a[i] * model.refs[mode[i] * T + position]) + b[i]) : (original?.[i] ?? NaN);
  }
  return out;
}

/**
 * Checkpoint `checkpoint` with every modelled tensor replaced by its CMD reconstruction at
 * model position `position`, cast back to the tensor's dtype; everything else copied.
 */
export function reconstructedTensors(set: CheckpointSet, model: CmdModel, checkpoint: CheckpointInfo, position: number): TensorToWrite[] {
  const modelled = new Map(set.space.tensors.map((t) => [t.name, t]));
  const original = originalTensors(checkpoint);
  return original.map((t) => {
    const m = modelled.get(t.name);
    if (!m) return t;
    const original = new Float64Array(m.count);
    decodeInto(t.dtype, t.data, m.count, original);
    return { ...t, data: encodeFloats(t.dtype, reconstructTensor(model, t.name, m.count, position, original)) };
  });
}

/**
 * A tensor-by-tensor combination of several checkpoints into one (the baselines' final models):
 * each floating tensor is folded in float64 over the checkpoints in order with `step`
 * (`skip`ped checkpoints are not even read), optionally `finish`ed, and cast back to its dtype;
 * integer and bool tensors come from the last checkpoint. One tensor in memory at a time.
 */
function combineCheckpoints(
  checkpoints: CheckpointInfo[],
  step: (acc: Float64Array, values: Float64Array, k: number) => void,
  options: { skip?: (k: number) => boolean; finish?: (acc: Float64Array) => void } = {},
): TensorToWrite[] {
  const last = checkpoints[checkpoints.length - 1];
  const io = new ElementReader();
  try {
    return last.contents.tensors.map((t) => {
      if (!isFloat(t.dtype)) return { name: t.name, dtype: t.dtype, shape: [...t.shape], data: readAsLittleEndian(io, t) };
      const n = elementCount(t.shape);
      const acc = new Float64Array(n);
      const values = new Float64Array(n);
      checkpoints.forEach((c, k) => {
        if (options.skip?.(k)) return;
        io.read(c.contents.tensors.find((x) => x.name === t.name) as StoredTensor, 0, n, values);
        step(acc, values, k);
      });
      options.finish?.(acc);
      return { name: t.name, dtype: t.dtype, shape: [...t.shape], data: encodeFloats(t.dtype, acc) };
    });
  } finally {
    io.close();
  }
}

/** The uniform average of `checkpoints` (timm/fairseq checkpoint averaging). */
export function averagedTensors(checkpoints: CheckpointInfo[]): TensorToWrite[] {
  return combineCheckpoints(
    checkpoints,
    (sum, v) => {
      for (let i = 0; i < v.length; i++) sum[i] += v[i];
    },
    {
      finish: (sum) => {
        for (let i = 0; i < sum.length; i++) sum[i] /= checkpoints.length;
      },
    },
  );
}

/** The exponential moving average (ema_0 = w_0, ema_t = β·ema_{t−1} + (1 − β)·w_t) at the last checkpoint. */
export function emaTensors(checkpoints: CheckpointInfo[], beta: number): TensorToWrite[] {
  return combineCheckpoints(checkpoints, (ema, v, k) => {
    if (k === 0) ema.set(v);
    else for (let i = 0; i < v.length; i++) ema[i] = beta * ema[i] + (1 - beta) * v[i];
  });
}

/** Σ_s weights[s]·w_s over `checkpoints` (the final PCA / DMD baseline models). */
export function weightedTensors(checkpoints: CheckpointInfo[], weights: ArrayLike<number>): TensorToWrite[] {
  return combineCheckpoints(
    checkpoints,
    (sum, v, k) => {
      for (let i = 0; i < v.length; i++) sum[i] += weights[k] * v[i];
    },
    { skip: (k) => weights[k] === 0 },
  );
}

/** Decodes a tensor to write back into float32 values (for in-process evaluation). */
export function tensorValues(t: TensorToWrite): Float32Array | Int32Array {
  const n = elementCount(t.shape);
  if (isFloat(t.dtype)) {
    const out = new Float32Array(n);
    decodeInto(t.dtype, t.data, n, out);
    return out;
  }
  const tmp = new Float64Array(n);
  decodeInto(t.dtype, t.data, n, tmp);
  return Int32Array.from(tmp);
}
