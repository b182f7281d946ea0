import { describe, expect, it } from 'vitest';
import { crc32, encodePngRgb } from '../../src/report/png.ts';
import { decodePng } from './png-decode.ts';

describe('PNG encoder', () => {
  it('computes the standard CRC-32 check value', () => {
    expect(crc32(new TextEncoder().encode('123456789'))).toBe(0xcbf43926);
    expect(crc32(new Uint8Array(0))).toBe(0);
  });

  it('round-trips RGB pixels through the decoder', () => {
    const w = 7;
    const h = 5;
    const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37 + (i >> 3)) & 0xff);
    const img = decodePng(encodePngRgb(w, h, rgb));
    expect([img.width, img.height, img.channels]).toEqual([w, h, 3]);
    expect(Array.from(img.data)).toEqual(Array.from(rgb));
  });

  it('rejects a pixel buffer of the wrong size', () => {
    expect(() => encodePngRgb(2, 2, new Uint8Array(11))).toThrow(/needs 12 bytes, got 11/);
    expect(() => encodePngRgb(0, 2, new Uint8Array(0))).toThrow(RangeError);
  });
});
