import { describe, expect, it } from 'vitest';
import { align16, MemoryLayout } from '../../src/core/wasm/instantiate.ts';

describe('MemoryLayout (the WebAssembly bindings\' shared layout helper)', () => {
  it('places buffers one after another on 16-byte boundaries and sizes the memory', () => {
    const L = new MemoryLayout();
    expect(L.take(10)).toBe(0);
    expect(L.take(16)).toBe(16);
    expect(L.takeEach(3, 8)).toEqual([32, 48, 64]);
    expect(L.take(0)).toBe(80);
    expect(L.take(1)).toBe(80);
    expect(L.bytes).toBe(96);
    expect([0, 1, 15, 16, 17].map(align16)).toEqual([0, 16, 16, 16, 32]);
  });

  it('grows a memory to the layout, in whole 64 KiB pages, and never shrinks it', () => {
    const pages: number[] = [];
    let size = 65536;
    const memory = {
      get buffer() {
        return new ArrayBuffer(size);
      },
      grow(n: number) {
        pages.push(n);
        size += n * 65536;
        return 0;
      },
    };
    const L = new MemoryLayout();
    L.take(65536 + 1);
    expect(L.ensure(memory).byteLength).toBe(2 * 65536);
    expect(pages).toEqual([1]);
    expect(new MemoryLayout().ensure(memory).byteLength).toBe(2 * 65536);
    expect(pages).toEqual([1]);
  });
});
