/**
 * Remote bytes fetched ahead of the synchronous reads (docs/scale-out.md, "Checkpoints over
 * HTTP and the Hugging Face Hub"). The element reader stays synchronous (it runs in worker
 * threads, one pread per range); for a span whose path is a URL it copies from this per-thread
 * cache instead, which an async step fills first: pass 1 with the K × T sampled values (ranges
 * merged only across gaps no longer than one value, so at most twice the values' bytes), each
 * pass-2 chunk with its spans as large ranges.
 */
import { DTYPES } from '../formats/dtype.ts';
import { CancelledError } from '../errors.ts';
import type { StoredTensor } from '../formats/types.ts';
import { remoteClient, type RangeClient } from '../remote/http-range.ts';
import { isRemote } from '../remote/url.ts';
import type { TrajectoryPlan } from './trajectory-reader.ts';
import { firstTensor } from './tensor-lookup.ts';

export interface ByteRange {
  path: string;
  start: number;
  end: number;
}

interface Block {
  start: number;
  bytes: Uint8Array;
}

/** Fetched blocks per URL, sorted by start. */
class RemoteBytes {
  private readonly files = new Map<string, Block[]>();

  add(path: string, start: number, bytes: Uint8Array): void {
    let list = this.files.get(path);
    if (!list) this.files.set(path, (list = []));
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].start < start) lo = mid + 1;
      else hi = mid;
    }
    list.splice(lo, 0, { start, bytes });
  }

  /** The block holding all of [start, end), if any. */
  private find(path: string, start: number, end: number): Block | undefined {
    const list = this.files.get(path);
    if (!list) return undefined;
    let lo = 0;
    let hi = list.length - 1;
    let at = -1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      if (list[mid].start <= start) {
        at = mid;
        lo = mid + 1;
      } else hi = mid - 1;
    }
    // Blocks can overlap (a later prefetch of a wider range); look back over a few for one that covers.
    for (let i = at; i >= 0 && i >= at - 8; i--) {
      const b = list[i];
      if (b.start <= start && b.start + b.bytes.byteLength >= end) return b;
    }
    return undefined;
  }

  has(r: ByteRange): boolean {
    return this.find(r.path, r.start, r.end) !== undefined;
  }

  /** Copies [start, start + into.length) of `path` into `into`; false when it was not fetched. */
  copy(path: string, start: number, into: Uint8Array): boolean {
    const b = this.find(path, start, start + into.byteLength);
    if (!b) return false;
    into.set(b.bytes.subarray(start - b.start, start - b.start + into.byteLength));
    return true;
  }

  clear(): void {
    this.files.clear();
  }
}

/** This thread's fetched bytes (what ElementReader reads remote spans from). */
export const remoteBytes = new RemoteBytes();

/** Does the plan read any remote file? */
export function planIsRemote(plan: TrajectoryPlan): boolean {
  return plan.stored.some((row) => row.some((t) => t.spans.some((s) => isRemote(s.path))));
}

/** The file ranges holding bytes [byteStart, byteStart + byteLength) of a tensor's byte stream. */
function tensorByteRanges(tensor: StoredTensor, byteStart: number, byteLength: number, out: ByteRange[]): void {
  let skip = byteStart;
  let left = byteLength;
  for (const span of tensor.spans) {
    if (left === 0) break;
    if (skip >= span.length) {
      skip -= span.length;
      continue;
    }
    const take = Math.min(span.length - skip, left);
    if (isRemote(span.path)) out.push({ path: span.path, start: span.offset + skip, end: span.offset + skip + take });
    left -= take;
    skip = 0;
  }
}

/** The ranges of the values of parameters `indices` at checkpoints from..to-1 (pass 1, the key's hashes). */
export function valueRanges(plan: TrajectoryPlan, indices: ArrayLike<number>, from: number, to: number): ByteRange[] {
  const out: ByteRange[] = [];
  for (let j = 0; j < indices.length; j++) {
    const k = firstTensor(plan.tensors, indices[j]);
    const el = indices[j] - plan.tensors[k].offset;
    for (let t = from; t < to; t++) {
      const stored = plan.stored[t][k];
      const size = DTYPES[stored.encoding.dtype].bytes;
      tensorByteRanges(stored, el * size, size, out);
    }
  }
  return out;
}

/** The ranges of parameters [start, end) at checkpoints from..to-1 (a pass-2 chunk piece). */
export function blockRanges(plan: TrajectoryPlan, start: number, end: number, from: number, to: number, out: ByteRange[] = []): ByteRange[] {
  for (let t = from; t < to; t++) {
    let k = firstTensor(plan.tensors, start);
    let pos = start;
    while (pos < end) {
      const tensor = plan.tensors[k];
      const take = Math.min(end, tensor.offset + tensor.count) - pos;
      const stored = plan.stored[t][k];
      const size = DTYPES[stored.encoding.dtype].bytes;
      tensorByteRanges(stored, (pos - tensor.offset) * size, take * size, out);
      pos += take;
      k++;
    }
  }
  return out;
}

/**
 * Sorts and merges ranges of one file that overlap or are at most `maxGap` bytes apart, up to
 * `maxLength` bytes per merged range.
 */
export function coalesce(ranges: ByteRange[], maxGap: number, maxLength = Infinity): ByteRange[] {
  const sorted = [...ranges].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : a.start - b.start));
  const out: ByteRange[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && last.path === r.path && r.start - last.end <= maxGap && Math.max(last.end, r.end) - last.start <= maxLength) last.end = Math.max(last.end, r.end);
    else out.push({ ...r });
  }
  return out;
}

/**
 * Fetches the ranges not already held into this thread's cache, `client.connections` at a
 * time. Returns the bytes received.
 */
export async function prefetch(ranges: ByteRange[], maxGap: number, client: RangeClient = remoteClient(), maxLength = 64 << 20, signal?: AbortSignal): Promise<number> {
  const missing = coalesce(ranges.filter((r) => !remoteBytes.has(r)), maxGap, maxLength);
  const before = client.fetchedBytes;
  let next = 0;
  const lane = async () => {
    while (next < missing.length) {
      // Ctrl-C stops between requests: pass 1 over a slow store can take minutes.
      if (signal?.aborted) throw new CancelledError();
      const r = missing[next++];
      remoteBytes.add(r.path, r.start, await client.range(r.path, r.start, r.end - r.start));
    }
  };
  await Promise.all(Array.from({ length: Math.min(missing.length, client.connections) }, lane));
  return client.fetchedBytes - before;
}

/** Pass 1 and the key's hashes: gaps up to one value merge, so at most twice the values' bytes are fetched. */
export function prefetchValues(plan: TrajectoryPlan, indices: ArrayLike<number>, from: number, to: number, signal?: AbortSignal): Promise<number> {
  if (!planIsRemote(plan)) return Promise.resolve(0);
  const size = Math.max(...plan.stored[0].map((t) => DTYPES[t.encoding.dtype].bytes));
  return prefetch(valueRanges(plan, indices, from, to), size, remoteClient(), undefined, signal);
}
