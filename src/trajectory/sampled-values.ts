/**
 * The fingerprint of a checkpoint at the sampled parameters: sha256 of their values as float64,
 * in sample order (docs/architecture.md, "Reuse and provenance"). One definition, used by pass 1
 * (which has the values in memory already) and by the provenance key (which reads them).
 */
import { createHash } from 'node:crypto';

/** sha256 (hex) of `values` (one checkpoint's sampled values, float64, in sample order). */
export function sampledValuesHash(values: Float64Array): string {
  return createHash('sha256').update(new Uint8Array(values.buffer, values.byteOffset, values.byteLength)).digest('hex');
}

/**
 * The hash of every checkpoint of pass 1's K × T matrix `X` (sample-major: X[j·T + t]), for the
 * window's T checkpoints in order; over the samples `rows` (positions j, in order) when given.
 */
export function windowValueHashes(X: Float64Array, K: number, T: number, rows?: readonly number[]): string[] {
  const js = rows ?? Array.from({ length: K }, (_, j) => j);
  const values = new Float64Array(js.length);
  return Array.from({ length: T }, (_, t) => {
    js.forEach((j, q) => (values[q] = X[j * T + t]));
    return sampledValuesHash(values);
  });
}
