/**
 * The parameter space CMD works in: which tensors are modelled, in which order their
 * elements are numbered, and the mapping between a global element index and
 * (tensor, element offset). One order for every format: modelled tensors in natural order
 * of their names, row-major inside each tensor.
 */
import picomatch from 'picomatch';
import { DTYPES, elementCount, type DType } from '../formats/dtype.ts';
import type { StoredTensor } from '../formats/types.ts';
import { naturalCompare } from './naming.ts';

export interface ModelledTensor {
  name: string;
  shape: number[];
  dtype: DType;
  /** Global index of the tensor's first element. */
  offset: number;
  count: number;
}

export interface CarriedTensor {
  name: string;
  shape: number[];
  dtype: DType;
  reason: 'scalar' | 'integer' | 'bool' | 'excluded' | 'empty';
}

export interface ParameterSpace {
  tensors: ModelledTensor[];
  carried: CarriedTensor[];
  /** N, the number of modelled parameters. */
  total: number;
}

export interface SpaceOptions {
  /** Globs of tensor names to leave out of the model (carried through unchanged). */
  excludeTensors?: string[];
}

function carryReason(t: Pick<StoredTensor, 'dtype' | 'shape' | 'name'>, excluded?: (s: string) => boolean): CarriedTensor['reason'] | undefined {
  const kind = DTYPES[t.dtype].kind;
  if (kind === 'bool') return 'bool';
  if (kind === 'int') return 'integer';
  if (t.shape.length === 0) return 'scalar';
  if (elementCount(t.shape) === 0) return 'empty';
  if (excluded?.(t.name)) return 'excluded';
  return undefined;
}

/**
 * Builds the space from one checkpoint's tensor list. Floating tensors with ≥ 1 dimension
 * are modelled (BatchNorm running statistics included, as the published method does);
 * scalars, integer and bool tensors are carried through unchanged.
 */
export function buildParameterSpace(tensors: readonly Pick<StoredTensor, 'name' | 'dtype' | 'shape'>[], options: SpaceOptions = {}): ParameterSpace {
  const excluded = options.excludeTensors?.length ? picomatch(options.excludeTensors) : undefined;
  const modelled: Omit<ModelledTensor, 'offset'>[] = [];
  const carried: CarriedTensor[] = [];
  for (const t of tensors) {
    const reason = carryReason(t, excluded);
    if (reason) carried.push({ name: t.name, shape: [...t.shape], dtype: t.dtype, reason });
    else modelled.push({ name: t.name, shape: [...t.shape], dtype: t.dtype, count: elementCount(t.shape) });
  }
  modelled.sort((a, b) => naturalCompare(a.name, b.name));
  carried.sort((a, b) => naturalCompare(a.name, b.name));
  let offset = 0;
  const out: ModelledTensor[] = modelled.map((t) => {
    const m = { ...t, offset };
    offset += t.count;
    return m;
  });
  return { tensors: out, carried, total: offset };
}

/** Index of the modelled tensor that holds global element `index` (binary search). */
export function tensorIndexOf(space: ParameterSpace, index: number): number {
  if (!(index >= 0 && index < space.total)) throw new RangeError(`global index ${index} outside [0, ${space.total})`);
  let lo = 0;
  let hi = space.tensors.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (space.tensors[mid].offset <= index) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** Global index → tensor name and element offset inside it. */
export function locate(space: ParameterSpace, index: number): { tensor: string; element: number } {
  const t = space.tensors[tensorIndexOf(space, index)];
  return { tensor: t.name, element: index - t.offset };
}

/** Tensor name and element offset → global index; undefined when the name is not modelled or the offset is out of range. */
export function globalIndex(space: ParameterSpace, tensor: string, element: number): number | undefined {
  const t = space.tensors.find((x) => x.name === tensor);
  if (!t || !Number.isInteger(element) || element < 0 || element >= t.count) return undefined;
  return t.offset + element;
}
