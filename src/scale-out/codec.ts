/**
 * Exact JSON for the numbers a plan and a shard carry (docs/scale-out.md, "On-disk format"):
 * typed arrays travel as base64 of their bytes, and the numbers JSON cannot spell (NaN, ±Inf,
 * −0) as tagged strings, so decoding gives back the very bits that were encoded. Merged sums
 * are then the in-process run's to the last bit.
 */
const TYPED = {
  Float64Array,
  Float32Array,
  Int32Array,
  Uint32Array,
  Int16Array,
  Uint16Array,
  Int8Array,
  Uint8Array,
  BigInt64Array,
} as const;
type TypedName = keyof typeof TYPED;

function specialNumber(v: number): string | undefined {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Infinity) return 'Infinity';
  if (v === -Infinity) return '-Infinity';
  if (Object.is(v, -0)) return '-0';
  return undefined;
}

/** Deterministic text for `value`: same value, same bytes (object keys keep insertion order). */
export function encodeExact(value: unknown): string {
  return JSON.stringify(value, function (this: unknown, key: string, v: unknown) {
    // `this[key]` is the raw value: a typed array before any toJSON, a number before spelling.
    const raw = (this as Record<string, unknown>)[key];
    if (ArrayBuffer.isView(raw) && !(raw instanceof DataView)) {
      const name = raw.constructor.name as TypedName;
      if (!(name in TYPED)) throw new TypeError(`encodeExact: unsupported ${name}`);
      return { $typed: name, b64: Buffer.from(raw.buffer, raw.byteOffset, raw.byteLength).toString('base64') };
    }
    if (typeof raw === 'number') {
      const s = specialNumber(raw);
      if (s !== undefined) return { $num: s };
    }
    return v;
  });
}

export function decodeExact<T = unknown>(text: string): T {
  return JSON.parse(text, (_key, v: unknown) => {
    if (v && typeof v === 'object' && !Array.isArray(v)) {
      const o = v as Record<string, unknown>;
      if (typeof o.$typed === 'string' && typeof o.b64 === 'string') {
        const Ctor = TYPED[o.$typed as TypedName];
        if (!Ctor) throw new TypeError(`decodeExact: unknown array type ${o.$typed}`);
        const bytes = Buffer.from(o.b64, 'base64');
        // Copy into a fresh, aligned buffer: Buffer's pool offsets need not suit 8-byte elements.
        const buf = new ArrayBuffer(bytes.byteLength);
        new Uint8Array(buf).set(bytes);
        return new Ctor(buf);
      }
      if (typeof o.$num === 'string' && Object.keys(o).length === 1) return Number(o.$num);
    }
    return v;
  }) as T;
}
