/**
 * Element types of every supported format, named as safetensors names them, and the
 * conversions between their bytes and JS numbers.
 */
export type DType =
  | 'F64' | 'F32' | 'F16' | 'BF16' | 'F8_E4M3' | 'F8_E5M2'
  | 'I64' | 'U64' | 'I32' | 'U32' | 'I16' | 'U16' | 'I8' | 'U8' | 'BOOL';

export interface DTypeInfo {
  readonly bytes: number;
  readonly kind: 'float' | 'int' | 'bool';
}

export const DTYPES: Readonly<Record<DType, DTypeInfo>> = {
  F64: { bytes: 8, kind: 'float' },
  F32: { bytes: 4, kind: 'float' },
  F16: { bytes: 2, kind: 'float' },
  BF16: { bytes: 2, kind: 'float' },
  F8_E4M3: { bytes: 1, kind: 'float' },
  F8_E5M2: { bytes: 1, kind: 'float' },
  I64: { bytes: 8, kind: 'int' },
  U64: { bytes: 8, kind: 'int' },
  I32: { bytes: 4, kind: 'int' },
  U32: { bytes: 4, kind: 'int' },
  I16: { bytes: 2, kind: 'int' },
  U16: { bytes: 2, kind: 'int' },
  I8: { bytes: 1, kind: 'int' },
  U8: { bytes: 1, kind: 'int' },
  BOOL: { bytes: 1, kind: 'bool' },
};

export function isDType(s: unknown): s is DType {
  return typeof s === 'string' && Object.prototype.hasOwnProperty.call(DTYPES, s);
}

export function isFloat(dtype: DType): boolean {
  return DTYPES[dtype].kind === 'float';
}

export type FloatArray = Float64Array | Float32Array;

// ---------------------------------------------------------------- half precision tables
let f16Table: Float32Array | undefined;
function halfTable(): Float32Array {
  if (!f16Table) {
    f16Table = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = halfBitsToNumber(h);
  }
  return f16Table;
}

function halfBitsToNumber(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

function makeF8Table(expBits: number, bias: number, ieee: boolean): Float32Array {
  const t = new Float32Array(256);
  const manBits = 7 - expBits;
  const expMax = (1 << expBits) - 1;
  for (let v = 0; v < 256; v++) {
    const sign = v & 0x80 ? -1 : 1;
    const exp = (v >> manBits) & expMax;
    const man = v & ((1 << manBits) - 1);
    let x: number;
    if (exp === 0) x = (man / (1 << manBits)) * 2 ** (1 - bias);
    else if (ieee && exp === expMax) x = man ? NaN : Infinity;
    else if (!ieee && exp === expMax && man === (1 << manBits) - 1) x = NaN; // E4M3FN: only S.1111.111 is NaN
    else x = (1 + man / (1 << manBits)) * 2 ** (exp - bias);
    t[v] = sign * x;
  }
  return t;
}
let e4m3: Float32Array | undefined;
let e5m2: Float32Array | undefined;

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** Rounds a number to the nearest float16 (ties to even) and returns its bit pattern. */
export function numberToHalfBits(value: number): number {
  f32Scratch[0] = value; // float64 -> float32 first, as numpy's astype(float16) on float32 data
  const x = u32Scratch[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let man = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (man ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    man |= 0x800000;
    const shift = 14 - e;
    let half = man >>> shift;
    const rem = man & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && (half & 1))) half++;
    return sign | half;
  }
  let half = (e << 10) | (man >>> 13);
  const rem = man & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (half & 1))) half++; // may carry into the exponent: correct
  return sign | half;
}

/** Rounds to the nearest bfloat16 (ties to even), as torch's float32 -> bfloat16 cast. */
export function numberToBfloat16Bits(value: number): number {
  f32Scratch[0] = value;
  const x = u32Scratch[0];
  if ((x & 0x7fffffff) > 0x7f800000) return ((x >>> 16) | 0x40) & 0xffff; // quiet NaN
  const rounded = x + 0x7fff + ((x >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

/**
 * Decodes `count` elements of `dtype` from `bytes` (starting at byte 0) into `out[outOffset..]`.
 * 64-bit integers become the nearest double. `bytes` may sit at any alignment.
 */
export function decodeInto(
  dtype: DType,
  bytes: Uint8Array,
  count: number,
  out: FloatArray,
  outOffset = 0,
  littleEndian = true,
): void {
  const size = DTYPES[dtype].bytes;
  if (bytes.byteLength < count * size) throw new RangeError(`decodeInto: ${count} ${dtype} need ${count * size} bytes, got ${bytes.byteLength}`);
  // Fast paths: an aligned little-endian typed-array view copied in one go.
  if (littleEndian && bytes.byteOffset % size === 0) {
    const buf = bytes.buffer;
    const o = bytes.byteOffset;
    switch (dtype) {
      case 'F32': out.set(new Float32Array(buf, o, count), outOffset); return;
      case 'F64': out.set(new Float64Array(buf, o, count), outOffset); return;
      case 'I32': out.set(new Int32Array(buf, o, count), outOffset); return;
      case 'U32': out.set(new Uint32Array(buf, o, count), outOffset); return;
      case 'I16': out.set(new Int16Array(buf, o, count), outOffset); return;
      case 'U16': out.set(new Uint16Array(buf, o, count), outOffset); return;
      case 'I8': out.set(new Int8Array(buf, o, count), outOffset); return;
      case 'U8': case 'BOOL': out.set(new Uint8Array(buf, o, count), outOffset); return;
      default: break;
    }
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = littleEndian;
  switch (dtype) {
    case 'F64': for (let i = 0; i < count; i++) out[outOffset + i] = view.getFloat64(i * 8, le); return;
    case 'F32': for (let i = 0; i < count; i++) out[outOffset + i] = view.getFloat32(i * 4, le); return;
    case 'F16': {
      const t = halfTable();
      for (let i = 0; i < count; i++) out[outOffset + i] = t[view.getUint16(i * 2, le)];
      return;
    }
    case 'BF16':
      for (let i = 0; i < count; i++) {
        u32Scratch[0] = view.getUint16(i * 2, le) << 16;
        out[outOffset + i] = f32Scratch[0];
      }
      return;
    case 'F8_E4M3': {
      const t = (e4m3 ??= makeF8Table(4, 7, false));
      for (let i = 0; i < count; i++) out[outOffset + i] = t[bytes[i]];
      return;
    }
    case 'F8_E5M2': {
      const t = (e5m2 ??= makeF8Table(5, 15, true));
      for (let i = 0; i < count; i++) out[outOffset + i] = t[bytes[i]];
      return;
    }
    case 'I64': for (let i = 0; i < count; i++) out[outOffset + i] = Number(view.getBigInt64(i * 8, le)); return;
    case 'U64': for (let i = 0; i < count; i++) out[outOffset + i] = Number(view.getBigUint64(i * 8, le)); return;
    case 'I32': for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt32(i * 4, le); return;
    case 'U32': for (let i = 0; i < count; i++) out[outOffset + i] = view.getUint32(i * 4, le); return;
    case 'I16': for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt16(i * 2, le); return;
    case 'U16': for (let i = 0; i < count; i++) out[outOffset + i] = view.getUint16(i * 2, le); return;
    case 'I8': for (let i = 0; i < count; i++) out[outOffset + i] = view.getInt8(i); return;
    case 'U8': case 'BOOL': for (let i = 0; i < count; i++) out[outOffset + i] = bytes[i]; return;
  }
}

/**
 * Encodes `values` as little-endian `dtype` bytes. Floats round to nearest-even; integer
 * dtypes round half away from zero and saturate (only used for carried tensors' round trips).
 */
export function encodeFloats(dtype: DType, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  const size = DTYPES[dtype].bytes;
  const out = new Uint8Array(n * size);
  const view = new DataView(out.buffer);
  switch (dtype) {
    case 'F64': for (let i = 0; i < n; i++) view.setFloat64(i * 8, values[i], true); break;
    case 'F32': for (let i = 0; i < n; i++) view.setFloat32(i * 4, values[i], true); break;
    case 'F16': for (let i = 0; i < n; i++) view.setUint16(i * 2, numberToHalfBits(values[i]), true); break;
    case 'BF16': for (let i = 0; i < n; i++) view.setUint16(i * 2, numberToBfloat16Bits(values[i]), true); break;
    case 'I64': for (let i = 0; i < n; i++) view.setBigInt64(i * 8, BigInt(Math.round(values[i])), true); break;
    case 'U64': for (let i = 0; i < n; i++) view.setBigUint64(i * 8, BigInt(Math.max(0, Math.round(values[i]))), true); break;
    case 'I32': for (let i = 0; i < n; i++) view.setInt32(i * 4, Math.round(values[i]), true); break;
    case 'U32': for (let i = 0; i < n; i++) view.setUint32(i * 4, Math.round(values[i]), true); break;
    case 'I16': for (let i = 0; i < n; i++) view.setInt16(i * 2, Math.round(values[i]), true); break;
    case 'U16': for (let i = 0; i < n; i++) view.setUint16(i * 2, Math.round(values[i]), true); break;
    case 'I8': for (let i = 0; i < n; i++) view.setInt8(i, Math.round(values[i])); break;
    case 'U8': for (let i = 0; i < n; i++) view.setUint8(i, Math.round(values[i])); break;
    case 'BOOL': for (let i = 0; i < n; i++) out[i] = values[i] ? 1 : 0; break;
    default: throw new RangeError(`encodeFloats: cannot encode ${dtype}`);
  }
  return out;
}

/** Number of elements of a shape (1 for a scalar `[]`). */
export function elementCount(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
