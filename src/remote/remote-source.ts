/**
 * A remote file as a byte source for the header readers (src/io/byte-source.ts): the first
 * request asks for a small prefix, which also tells the file's size (Content-Range) and ETag;
 * a header longer than the prefix costs one more request.
 */
import type { ByteSource } from '../io/byte-source.ts';
import { remoteClient } from './http-range.ts';

/** Holds a small model's header; a larger header takes a second request (≤ 1 KiB wasted per file, docs/scale-out.md). */
export const REMOTE_PREFIX_BYTES = 1024;

export async function openRemoteSource(url: string): Promise<ByteSource> {
  const client = remoteClient();
  const prefix = await client.range(url, 0, REMOTE_PREFIX_BYTES, true);
  const size = client.facts(url)?.size ?? prefix.byteLength;
  return {
    size,
    async read(position: number, length: number): Promise<Uint8Array> {
      if (position + length <= prefix.byteLength) return prefix.subarray(position, position + length);
      if (position >= prefix.byteLength) return client.range(url, position, length);
      // A header longer than the prefix: fetch only what the prefix lacks.
      const rest = await client.range(url, prefix.byteLength, position + length - prefix.byteLength);
      const out = new Uint8Array(length);
      out.set(prefix.subarray(position));
      out.set(rest, prefix.byteLength - position);
      return out;
    },
    async close() {},
  };
}
