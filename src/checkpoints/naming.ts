/** Natural ordering of names and the step numbers read from checkpoint names. */
import { UsageError } from '../errors.ts';

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
  '.weights.h5',
  '.keras',
  '.json',
];

/** The checkpoint's name without its format suffix (`epoch_010.npz` → `epoch_010`). */
export function stripCheckpointSuffix(name: string): string {
  for (const s of checkpointSuffixes) if (name.endsWith(s) && name.length > s.length) return name.slice(0, -s.length);
  return name;
}

/**
 * Words after which a number is a step, most specific first: Lightning's
 * `epoch=3-step=1200` is step 1200, `model_step100_lr0.01` is step 100 (docs/formats.md).
 */
const stepKeywords = ['step', 'iter', 'checkpoint', 'epoch'];

/**
 * The step a checkpoint's name carries. With `pattern` (`--step-pattern`), its first capture
 * group. Otherwise a number that follows `step`/`iter`/`checkpoint`/`epoch` (that priority),
 * else the last run of digits (`epoch_010` → 10, `checkpoint-1500` → 1500,
 * `run3-epoch12` → 12). Undefined when there is none.
 */
export function stepFromName(name: string, pattern?: RegExp): number | undefined {
  if (pattern) {
    const m = pattern.exec(name);
    if (!m || m[1] === undefined || !/^\d+$/.test(m[1])) return undefined;
    const n = Number(m[1]);
    return Number.isSafeInteger(n) ? n : undefined;
  }
  const base = stripCheckpointSuffix(name);
  for (const word of stepKeywords) {
    const hits = [...base.matchAll(new RegExp(`${word}(?:s|ation)?[-_=.]?(\\d+)`, 'gi'))];
    if (hits.length) {
      const n = Number(hits[hits.length - 1][1]);
      if (Number.isSafeInteger(n)) return n;
    }
  }
  const runs = base.match(/\d+/g);
  if (!runs) return undefined;
  const n = Number(runs[runs.length - 1]);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Compiles `--step-pattern`: a regular expression whose first capture group is the step. */
export function compileStepPattern(source: string): RegExp {
  let re: RegExp;
  try {
    re = new RegExp(source);
  } catch (e) {
    throw new UsageError(`--step-pattern ${source}: ${(e as Error).message}`);
  }
  // A capture group exists when the empty alternative of the pattern yields one more match slot.
  if (new RegExp(`${source}|`).exec('')!.length < 2) throw new UsageError(`--step-pattern ${source}: needs a capture group around the step number, e.g. 'step(\\d+)'`);
  return re;
}

/** The hint the step errors end with. */
export const STEP_PATTERN_HINT = "give the step's place with --step-pattern REGEX (first capture group), e.g. --step-pattern 'step(\\d+)'";
