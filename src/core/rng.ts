/**
 * Seeded pseudo-random numbers for reproducible sampling.
 *
 * The official CMD code draws its sample with Python's unseeded `random.sample`, so no run can be
 * reproduced. We use xoshiro128** (32-bit state words, plain `Math.imul` arithmetic, no BigInt)
 * seeded through splitmix32, so the same seed gives the same sample on every platform.
 */

/** A deterministic source of random numbers. */
export interface Rng {
  /** Uniform integer in [0, 2^32). */
  nextUint32(): number;
  /** Uniform float in [0, 1) with 53 random bits. */
  nextFloat(): number;
  /** Uniform integer in [0, n) without modulo bias; n is an integer in [1, 2^53]. */
  nextInt(n: number): number;
}

const TWO_32 = 4294967296;
const TWO_53 = 9007199254740992;

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** splitmix32 step: spreads a (possibly poor) seed over the whole state. */
function splitmix32(state: { s: number }): number {
  state.s = (state.s + 0x9e3779b9) | 0;
  let z = state.s;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

class Xoshiro128StarStar implements Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;

  constructor(seed: number) {
    // Fold both halves of a seed up to 2^53 in, so seeds 1 and 2^32+1 differ.
    const lo = seed >>> 0;
    const hi = Math.floor(seed / TWO_32) >>> 0;
    const st = { s: lo ^ Math.imul(hi, 0x85ebca6b) };
    this.s0 = splitmix32(st);
    this.s1 = splitmix32(st);
    this.s2 = splitmix32(st);
    this.s3 = splitmix32(st);
    // The all-zero state is a fixed point of xoshiro; splitmix32 cannot produce it for all four
    // words in practice, but guard anyway.
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  nextFloat(): number {
    const a = this.nextUint32() >>> 5; // 27 bits
    const b = this.nextUint32() >>> 6; // 26 bits
    return (a * 67108864 + b) / TWO_53;
  }

  nextInt(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > TWO_53) {
      throw new RangeError(`nextInt: n must be an integer in [1, 2^53], got ${n}`);
    }
    if (n <= TWO_32) {
      // Rejection sampling: accept only the largest multiple of n below 2^32.
      const limit = TWO_32 - (TWO_32 % n);
      for (;;) {
        const x = this.nextUint32();
        if (x < limit) return x % n;
      }
    }
    const limit = TWO_53 - (TWO_53 % n);
    for (;;) {
      const x = (this.nextUint32() >>> 11) * TWO_32 + this.nextUint32();
      if (x < limit) return x % n;
    }
  }
}

/**
 * Creates a seeded xoshiro128** generator. `seed` may be any finite number; its integer part
 * modulo 2^53 is used (negative seeds are folded through `>>> 0`).
 */
export function createRng(seed: number): Rng {
  if (!Number.isFinite(seed)) throw new RangeError(`createRng: seed must be finite, got ${seed}`);
  return new Xoshiro128StarStar(Math.trunc(seed));
}

/**
 * Draws `k` distinct integers uniformly from [lo, hiExclusive), returned in draw order.
 *
 * Partial Fisher–Yates over a virtual array held in a Map: only swapped slots are stored, so
 * memory is O(k) even for ranges of 1e9. Draw j picks uniformly among the range − j values not
 * drawn yet, so every ordered k-subset is equally likely.
 */
export function sampleDistinct(rng: Rng, lo: number, hiExclusive: number, k: number): number[] {
  const range = hiExclusive - lo;
  if (!Number.isInteger(lo) || !Number.isInteger(hiExclusive) || !Number.isInteger(k) || k < 0) {
    throw new RangeError(`sampleDistinct: lo, hi and k must be integers, got ${lo}, ${hiExclusive}, ${k}`);
  }
  if (k > range) throw new RangeError(`sampleDistinct: cannot draw ${k} distinct values from a range of ${range}`);
  const swapped = new Map<number, number>();
  const out = new Array<number>(k);
  for (let j = 0; j < k; j++) {
    const r = j + rng.nextInt(range - j);
    const atR = swapped.get(r) ?? r;
    // Slot j is never visited again, so only slot r needs to remember what was at j.
    if (r !== j) swapped.set(r, swapped.get(j) ?? j);
    swapped.delete(j);
    out[j] = lo + atR;
  }
  return out;
}
