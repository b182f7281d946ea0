/**
 * Exact global selection of the k smallest values when the values live in per-chunk files and
 * never all in memory at once (embedded CMD picks the ⌈P%⌉ smallest coefficient drifts over all
 * N parameters, docs/method.md §13).
 *
 * Values are non-negative float64 (or NaN); a negative value marks an excluded entry. For such
 * values the IEEE-754 bit pattern read as an unsigned 64-bit integer orders exactly like the
 * numbers (NaN after +Infinity, where numpy's argsort puts it too). The k-th smallest key is
 * found by radix selection over its four 16-bit digits: each pass over the chunks counts one
 * digit of the values that share the digits found so far; as soon as the bin holding the k-th
 * value has at most `cap` members they are collected and sorted instead. Ties at the threshold
 * go to the lowest global index (chunks are visited in index order), so the result is
 * deterministic where numpy's unstable argsort is not.
 */

/** One chunk of values, read on demand (entries < 0 are excluded). */
export interface ValueSource {
  count: number;
  read(): Float64Array;
}

/** What to select: every candidate below the threshold key, plus the first `ties` equal to it. */
export interface Threshold {
  /** The k-th smallest candidate's bit pattern (high and low 32-bit words). */
  hi: number;
  lo: number;
  /** Its value. */
  value: number;
  /** Candidates strictly below the threshold (all selected). */
  below: number;
  /** Candidates equal to the threshold that are selected, lowest global index first. */
  ties: number;
  /** Total selected: min(k, candidates). */
  selected: number;
  /** Every candidate is selected (k ≥ candidates); `hi`, `lo` are then meaningless. */
  all: boolean;
  /** Passes over the sources this search needed. */
  passes: number;
}

const LITTLE_ENDIAN = new Uint8Array(Uint32Array.of(1).buffer)[0] === 1;

function words(values: Float64Array): Uint32Array {
  if (!LITTLE_ENDIAN) throw new Error('embedded CMD selection assumes a little-endian host');
  return new Uint32Array(values.buffer, values.byteOffset, values.length * 2);
}

/** Digit `level` (0 = most significant) of the key with words (hi, lo). */
function digit(hi: number, lo: number, level: number): number {
  switch (level) {
    case 0:
      return hi >>> 16;
    case 1:
      return hi & 0xffff;
    case 2:
      return lo >>> 16;
    default:
      return lo & 0xffff;
  }
}

function matches(hi: number, lo: number, prefix: number[]): boolean {
  for (let l = 0; l < prefix.length; l++) if (digit(hi, lo, l) !== prefix[l]) return false;
  return true;
}

/**
 * The threshold that selects the `k` smallest candidates of `sources` (in source order, then
 * index order, for ties). `cap` bounds the values held in memory at once (default 2^20).
 */
export function findThreshold(sources: readonly ValueSource[], k: number, cap = 1 << 20): Threshold {
  const empty = { hi: 0, lo: 0, value: NaN, below: 0, ties: 0 };
  const prefix: number[] = [];
  let remaining = k;
  let below = 0;
  let passes = 0;
  let candidates = -1;
  for (let level = 0; level < 4; level++) {
    const hist = new Float64Array(65536);
    let seen = 0;
    for (const s of sources) {
      const v = s.read();
      const w = words(v);
      for (let i = 0; i < v.length; i++) {
        if (v[i] < 0) continue;
        const lo = w[2 * i];
        const hi = w[2 * i + 1];
        if (level > 0 && !matches(hi, lo, prefix)) continue;
        hist[digit(hi, lo, level)]++;
        seen++;
      }
    }
    passes++;
    // Pass 0 also counts the candidates.
    if (level === 0) {
      candidates = seen;
      if (k <= 0) return { ...empty, selected: 0, all: false, passes };
      if (k >= candidates) return { ...empty, below: candidates, selected: candidates, all: true, passes };
    }
    let cum = 0;
    let b = 0;
    while (cum + hist[b] < remaining) cum += hist[b++];
    below += cum;
    remaining -= cum;
    prefix.push(b);
    if (level === 3) break;
    if (hist[b] <= cap) {
      // Few enough to sort: collect the bin's keys and take the remaining-th smallest.
      const keys = new BigUint64Array(hist[b]);
      let n = 0;
      for (const s of sources) {
        const v = s.read();
        const w = words(v);
        const big = new BigUint64Array(v.buffer, v.byteOffset, v.length);
        for (let i = 0; i < v.length; i++) {
          if (v[i] < 0) continue;
          if (matches(w[2 * i + 1], w[2 * i], prefix)) keys[n++] = big[i];
        }
      }
      passes++;
      keys.sort();
      const key = keys[remaining - 1];
      let less = 0;
      while (keys[less] < key) less++;
      const hi = Number(key >> 32n);
      const lo = Number(key & 0xffffffffn);
      return { hi, lo, value: new Float64Array(BigUint64Array.of(key).buffer)[0], below: below + less, ties: remaining - less, selected: k, all: false, passes };
    }
  }
  // All four digits fixed: the key itself; every remaining pick is a tie at it.
  const hi = ((prefix[0] << 16) | prefix[1]) >>> 0;
  const lo = ((prefix[2] << 16) | prefix[3]) >>> 0;
  const value = new Float64Array(Uint32Array.of(lo, hi).buffer)[0];
  return { hi, lo, value, below, ties: remaining, selected: k, all: false, passes };
}

/**
 * Applies a threshold chunk by chunk, in the same source order as {@link findThreshold}: tells
 * for each entry whether it is selected, handing out the ties in index order.
 */
export class ThresholdSelector {
  private tiesLeft: number;
  constructor(private readonly th: Threshold) {
    this.tiesLeft = th.ties;
  }

  /** Calls `take(i)` for every selected entry i of this chunk's values. */
  select(values: Float64Array, take: (i: number) => void): void {
    const { th } = this;
    if (th.selected === 0) return;
    const w = words(values);
    for (let i = 0; i < values.length; i++) {
      if (values[i] < 0) continue;
      if (th.all) {
        take(i);
        continue;
      }
      const hi = w[2 * i + 1];
      const lo = w[2 * i];
      if (hi < th.hi || (hi === th.hi && lo < th.lo)) take(i);
      else if (hi === th.hi && lo === th.lo && this.tiesLeft > 0) {
        this.tiesLeft--;
        take(i);
      }
    }
  }
}
