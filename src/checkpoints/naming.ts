/** Natural ordering of names and the step numbers read from checkpoint names. */

const chunkPattern = /(\d+)|(\D+)/g;

/**
 * Compares two names the way people count: digit runs as numbers, the rest as text
 * (`epoch_2` < `epoch_10`, `layers.2.weight` < `layers.10.weight`). Equal numbers with
 * different zero padding fall back to plain string order so the order stays total.
 */
export function naturalCompare(a: string, b: string): number {
  const ca = a.match(chunkPattern) ?? [];
  const cb = b.match(chunkPattern) ?? [];
  const n = Math.min(ca.length, cb.length);
  for (let i = 0; i < n; i++) {
    const x = ca[i];
    const y = cb[i];
    if (x === y) continue;
    const dx = /^\d/.test(x);
    const dy = /^\d/.test(y);
    if (dx && dy) {
      const nx = BigInt(x);
      const ny = BigInt(y);
      if (nx !== ny) return nx < ny ? -1 : 1;
      continue;
    }
    return x < y ? -1 : 1;
  }
  if (ca.length !== cb.length) return ca.length - cb.length;
  return a < b ? -1 : a > b ? 1 : 0;
}

const checkpointSuffixes = [
  '.safetensors.index.json',
  '.safetensors',
  '.weights_manifest.json',
  '_weights_manifest.json',
  '.npz',
  '.npy',
  '.json',
];

/** The checkpoint's name without its format suffix (`epoch_010.npz` → `epoch_010`). */
export function stripCheckpointSuffix(name: string): string {
  for (const s of checkpointSuffixes) if (name.endsWith(s) && name.length > s.length) return name.slice(0, -s.length);
  return name;
}

/**
 * The step a checkpoint's name carries: the last run of digits (`epoch_010` → 10,
 * `checkpoint-1500` → 1500, `model-step3-epoch12` → 12). Undefined when there is none.
 */
export function stepFromName(name: string): number | undefined {
  const runs = stripCheckpointSuffix(name).match(/\d+/g);
  if (!runs) return undefined;
  const n = Number(runs[runs.length - 1]);
  return Number.isSafeInteger(n) ? n : undefined;
}
