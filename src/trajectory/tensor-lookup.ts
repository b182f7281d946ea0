import type { ModelledTensor } from '../checkpoints/parameter-space.ts';

/** The tensor holding global parameter `index`: the last one whose offset is ≤ index (tensors in parameter-space order). */
export function firstTensor(tensors: readonly ModelledTensor[], index: number): number {
  let lo = 0;
  let hi = tensors.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (tensors[mid].offset <= index) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
