/**
 * Small tfjs helpers that the hot paths need without loading the manifest reader (and zod):
 * dequantization and the per-process layer-name counters.
 */
import type { FloatArray } from './dtype.ts';

/**
 * Applies tfjs affine dequantization in place to `values[from..to)`: value = q × scale + min in
 * float32 arithmetic (float32 scale and min, product and sum each rounded to float32), which is
 * what numpy computes and what the golden `*-expected.npz` files hold. tfjs-core's own loader
 * evaluates the same formula in double and rounds once, so its values can differ from these by
 * one float32 ulp of max(|min|, |q × scale|) where the two nearly cancel.
 */
export function dequantizeInPlace(values: FloatArray, scale: number, min: number, from = 0, to = values.length): void {
  const s = Math.fround(scale);
  const m = Math.fround(min);
  // q has ≤ 16 bits, so q*s is exact in double and fround gives the correctly rounded product;
  // double rounding of a float32 sum through double is harmless (53 ≥ 2·24 + 2).
  for (let i = from; i < to; i++) values[i] = Math.fround(Math.fround(values[i] * s) + m);
}


function toSnakeCase(name: string): string {
  // Same rule as tfjs-layers' generic_utils.toSnakeCase, which builds default layer names.
  const s = name.replace(/(.)([A-Z][a-z0-9]+)/g, '$1_$2').replace(/([a-z])([A-Z])/g, '$1_$2').toLowerCase();
  return s[0] === '_' ? 'private' + s : s;
}

/**
 * Removes tfjs-layers' per-process counters from auto-generated names:
 * `dense_Dense12/kernel` → `dense_Dense/kernel`, `batch_normalization_BatchNormalization3/gamma`
 * → `batch_normalization_BatchNormalization/gamma`. A path segment is only changed when it has
 * the default-name shape `<snake_case(Class)>_<Class><digits>`, so user-chosen names survive.
 */
export function stripTfjsCounter(name: string): string {
  return name.split('/').map(stripSegment).join('/');
}

function stripSegment(segment: string): string {
  for (let i = segment.indexOf('_'); i > 0; i = segment.indexOf('_', i + 1)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*?\D)(\d+)$/.exec(segment.slice(i + 1));
    if (m && toSnakeCase(m[1]) === segment.slice(0, i)) return `${segment.slice(0, i)}_${m[1]}`;
  }
  return segment;
}

