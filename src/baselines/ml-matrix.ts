/**
 * ml-matrix, loaded on first use: only the PCA and DMD baselines need it, and every process that
 * merely imports the pipeline — a shard task above all (docs/scale-out.md, "Benchmark") — would
 * otherwise parse its 150 KB at start-up.
 */
import { createRequire } from 'node:module';

type MlMatrix = typeof import('ml-matrix');
let lib: MlMatrix | undefined;

export function mlMatrix(): MlMatrix {
  return (lib ??= createRequire(import.meta.url)('ml-matrix') as MlMatrix);
}
