/**
 * Positioned reads of element ranges of stored tensors. Synchronous on purpose: it runs in
 * worker threads whose only job is to read and crunch, and a sync pread has no promise
 * overhead per call. File descriptors are cached per reader and closed by `close()`. A remote
 * span (a URL) is read from the bytes fetched ahead into this thread's cache (remote-bytes.ts).
 */
import fs from 'node:fs';
import { DTYPES, decodeInto, type FloatArray } from '../formats/dtype.ts';
import type { StoredTensor } from '../formats/types.ts';
import { InputError } from '../errors.ts';
import { openRegularSync } from '../io/open-regular.ts';
import { dequantizeInPlace } from '../formats/tfjs-codec.ts';
import { displayUrl, isRemote } from '../remote/url.ts';
import { remoteBytes } from './remote-bytes.ts';

export class ElementReader {
  private readonly fds = new Map<string, number>();
  private scratch = new Uint8Array(1 << 16);
  /** Bytes read so far (for throughput reports). */
  bytesRead = 0;

  private fd(path: string): number {
    let fd = this.fds.get(path);
    if (fd === undefined) {
      try {
        fd = openRegularSync(path);
      } catch (e) {
        if (e instanceof InputError) throw e;
        throw new InputError(path, `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
      }
      this.fds.set(path, fd);
    }
    return fd;
  }

  /** Reads `length` bytes of the tensor's byte stream, starting at `start`, into `into`. */
  private readBytes(tensor: StoredTensor, start: number, length: number, into: Uint8Array): void {
    let skip = start;
    let filled = 0;
    for (const span of tensor.spans) {
      if (filled === length) break;
      if (skip >= span.length) {
        skip -= span.length;
        continue;
      }
      const take = Math.min(span.length - skip, length - filled);
      if (isRemote(span.path)) {
        if (!remoteBytes.copy(span.path, span.offset + skip, into.subarray(filled, filled + take))) {
          throw new Error(`internal: bytes ${span.offset + skip}+${take} of ${displayUrl(span.path)} were not fetched before reading`);
        }
        filled += take;
        skip = 0;
        continue;
      }
      const fd = this.fd(span.path);
      let done = 0;
      while (done < take) {
        const n = fs.readSync(fd, into, filled + done, take - done, span.offset + skip + done);
        if (n === 0) throw new InputError(span.path, `tensor ${tensor.name}: file ended early (truncated while reading)`, 'truncated');
        done += n;
      }
      filled += take;
      skip = 0;
    }
    if (filled !== length) throw new InputError(tensor.spans[0]?.path ?? tensor.name, `tensor ${tensor.name}: byte range ${start}+${length} beyond its data`, 'out-of-bounds');
    this.bytesRead += length;
  }

  /** Copies `length` raw bytes of the tensor's stored byte stream, from byte `start`, into `into`. */
  readRaw(tensor: StoredTensor, start: number, length: number, into: Uint8Array): void {
    this.readBytes(tensor, start, length, into);
  }

  /**
   * Decodes elements [start, start + count) of `tensor` (row-major) into `out[outOffset..]`,
   * dequantizing tfjs weights on the way.
   */
  read(tensor: StoredTensor, start: number, count: number, out: FloatArray, outOffset = 0): void {
    if (count === 0) return;
    const enc = tensor.encoding;
    const size = DTYPES[enc.dtype].bytes;
    const byteStart = start * size;
    const byteLength = count * size;
    if (enc.dtype === 'F32' && !enc.bigEndian && !enc.quantization && out instanceof Float32Array) {
      // Zero-copy: read straight into the destination's memory.
      this.readBytes(tensor, byteStart, byteLength, new Uint8Array(out.buffer, out.byteOffset + outOffset * 4, byteLength));
      return;
    }
    if (this.scratch.byteLength < byteLength) this.scratch = new Uint8Array(Math.max(byteLength, this.scratch.byteLength * 2));
    const bytes = this.scratch.subarray(0, byteLength);
    this.readBytes(tensor, byteStart, byteLength, bytes);
    decodeInto(enc.dtype, bytes, count, out, outOffset, !enc.bigEndian);
    const q = enc.quantization;
    // float32 arithmetic, as the tfjs converter's own dequantized references are computed
    if (q) dequantizeInPlace(out, q.scale, q.min, outOffset, outOffset + count);
  }

  private readonly oneBytes = new Uint8Array(8);
  private readonly oneView = new DataView(this.oneBytes.buffer);
  private readonly oneValue = new Float64Array(1);

  /**
   * One element. The K × T single-element reads of pass 1 are syscall-bound, so the common
   * case (one span, float32/float64, no quantization) skips the general path's bookkeeping.
   */
  readOne(tensor: StoredTensor, element: number): number {
    const enc = tensor.encoding;
    const span = tensor.spans[0];
    if (tensor.spans.length === 1 && !enc.quantization && (enc.dtype === 'F32' || enc.dtype === 'F64') && !isRemote(span.path)) {
      const size = enc.dtype === 'F32' ? 4 : 8;
      if ((element + 1) * size <= span.length && fs.readSync(this.fd(span.path), this.oneBytes, 0, size, span.offset + element * size) === size) {
        this.bytesRead += size;
        return size === 4 ? this.oneView.getFloat32(0, !enc.bigEndian) : this.oneView.getFloat64(0, !enc.bigEndian);
      }
    }
    this.read(tensor, element, 1, this.oneValue, 0);
    return this.oneValue[0];
  }

  close(): void {
    for (const fd of this.fds.values()) fs.closeSync(fd);
    this.fds.clear();
  }
}
