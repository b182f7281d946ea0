import { describe, expect, it } from 'vitest';
import { decodeExact, encodeExact } from '../../src/scale-out/codec.ts';

describe('exact JSON codec', () => {
  it('gives back typed arrays and the numbers plain JSON loses, bit for bit', () => {
    const f64 = Float64Array.from([0.1 + 0.2, -0, NaN, Infinity, 5e-324]);
    const value = { f64, f32: Float32Array.from([1 / 3]), i32: Int32Array.from([-7, 9]), u16: Uint16Array.from([65535]), n: -0, inf: -Infinity, nested: [{ x: NaN }], s: 'ok' };
    const back = decodeExact<typeof value>(encodeExact(value));
    expect(back.f64).toBeInstanceOf(Float64Array);
    expect(Buffer.from(back.f64.buffer)).toEqual(Buffer.from(f64.buffer));
    expect(back.f32).toBeInstanceOf(Float32Array);
    expect(back.f32[0]).toBe(Math.fround(1 / 3));
    expect(Array.from(back.i32)).toEqual([-7, 9]);
    expect(Array.from(back.u16)).toEqual([65535]);
    expect(Object.is(back.n, -0)).toBe(true);
    expect(back.inf).toBe(-Infinity);
    expect(back.nested[0].x).toBeNaN();
    expect(back.s).toBe('ok');
  });

  it('is deterministic: the same value encodes to the same text', () => {
    const make = () => ({ a: Float64Array.from([1, 2]), b: [3, { c: 4 }] });
    expect(encodeExact(make())).toBe(encodeExact(make()));
  });
});
