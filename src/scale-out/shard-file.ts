/**
 * The shard file `shards/<i>-of-<n>` (docs/scale-out.md, "On-disk format"):
 *
 *   "CMDSHRD1" · u32 LE header length · header JSON · payload · accumulators · trailer (64 bytes)
 *
 * The header names the plan (its hash), the shard, its chunk range and where each model's a, b
 * and mode bytes of each tensor range lie in the payload; the workers write those bytes there by
 * position, exactly as they would into the model file. The accumulators are the per-chunk
 * results (src/pipeline/worker.ts FitResult) in the exact codec. The trailer — "CMDSHEND",
 * u64 payload start, u64 accumulators start and length, sha256 of everything before it — lets
 * `cmd merge` tell a complete file from a half-written or damaged one.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ModelledTensor } from '../checkpoints/parameter-space.ts';
import type { Chunk } from '../pipeline/chunks.ts';
import type { FitResult, TensorSlots } from '../pipeline/worker.ts';
import type { TaskResult as OnlineChunkResult } from '../online/online-tasks.ts';
import { writeFully } from '../io/atomic-file.ts';
import { asWriteError } from '../io/disk-errors.ts';
import { decodeExact, encodeExact } from './codec.ts';

const MAGIC = Buffer.from('CMDSHRD1');
const END = Buffer.from('CMDSHEND');
export const TRAILER_BYTES = 64;

/** One tensor's contiguous range [start, start + count) in a shard, and its bytes in the payload. */
export interface ShardRegion {
  tensor: number;
  start: number;
  count: number;
  /** Offsets from the payload start. */
  a: number;
  b: number;
  mode: number;
}

export interface ShardHeader {
  planHash: string;
  shard: number;
  of: number;
  /** Chunks [c0, c1) of the plan. */
  chunks: [number, number];
  /** Per model (primary, then the sweep's): mode bytes and regions. */
  models: { modeBytes: 1 | 2; regions: ShardRegion[] }[];
  payloadBytes: number;
}

export const shardName = (i: number, n: number): string => `${i}-of-${n}`;

/** The tensor ranges chunks [c0, c1) cover, in order; contiguous chunks give one range per tensor. */
function tensorRanges(chunks: readonly Chunk[], c0: number, c1: number): { tensor: number; start: number; count: number }[] {
  const out: { tensor: number; start: number; count: number }[] = [];
  for (let c = c0; c < c1; c++) {
    for (const p of chunks[c].pieces) {
      const last = out[out.length - 1];
      if (last && last.tensor === p.tensor && last.start + last.count === p.start) last.count += p.count;
      else out.push({ tensor: p.tensor, start: p.start, count: p.count });
    }
  }
  return out;
}

export function shardHeader(planHash: string, shard: number, of: number, chunks: readonly Chunk[], range: [number, number], modeBytes: readonly (1 | 2)[]): ShardHeader {
  const ranges = tensorRanges(chunks, range[0], range[1]);
  let offset = 0;
  const models = modeBytes.map((mb) => ({
    modeBytes: mb,
    regions: ranges.map((r) => {
      const region = { ...r, a: offset, b: offset + 4 * r.count, mode: offset + 8 * r.count };
      offset += (8 + mb) * r.count;
      return region;
    }),
  }));
  return { planHash, shard, of, chunks: range, models, payloadBytes: offset };
}

function headerBytes(header: ShardHeader): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(4);
  len.writeUInt32LE(json.length);
  return Buffer.concat([MAGIC, len, json]);
}

/**
 * Slots that make the workers' `slot + start × bytes` positions land in this shard's payload
 * (src/pipeline/slot-writer.ts): a tensor's range starts at its region, not at element 0.
 */
export function shardSlots(header: ShardHeader, model: number, payloadStart: number, tensors: readonly ModelledTensor[]): TensorSlots[] {
  const slots: TensorSlots[] = tensors.map(() => ({ a: 0, b: 0, mode: 0 }));
  const { modeBytes, regions } = header.models[model];
  for (const r of regions) slots[r.tensor] = { a: payloadStart + r.a - 4 * r.start, b: payloadStart + r.b - 4 * r.start, mode: payloadStart + r.mode - modeBytes * r.start };
  return slots;
}

/** A shard being written under a unique temp name beside its final name. */
export interface ShardDraft {
  temp: string;
  target: string;
  header: ShardHeader;
  payloadStart: number;
}

/**
 * A draft's name, `.<i>-of-<n>.<host>.<pid>.<12 hex>.tmp`: unique per process and attempt (two
 * tasks of the same shard never write the same file), and naming its writer, so a later task on
 * the same host can tell a draft whose writer is gone (killed, preempted) from a running one.
 */
const DRAFT = /^\.(\d+-of-\d+)\.(.+)\.(\d+)\.[0-9a-f]{12}\.tmp$/;

/** This host's name as it goes into draft names (no path separators). */
function hostTag(): string {
  return os.hostname().replace(/[^A-Za-z0-9.-]/g, '_') || 'localhost';
}

/** Whether process `pid` runs on this host (EPERM: it runs, as another user). */
function running(pid: number): boolean {
  if (pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A draft in a shards folder: its name, the shard file it is for, who wrote it, its size. */
export interface Draft {
  name: string;
  shard: string;
  host: string;
  pid: number;
  bytes: number;
}

/** The drafts in a shards folder, by name. */
export async function listDrafts(dir: string): Promise<Draft[]> {
  const names = await fsp.readdir(dir).catch(() => [] as string[]);
  const drafts: Draft[] = [];
  for (const name of names.sort()) {
    const m = DRAFT.exec(name);
    if (!m) continue;
    const st = await fsp.stat(path.join(dir, name)).catch(() => undefined);
    if (st) drafts.push({ name, shard: m[1], host: m[2], pid: Number(m[3]), bytes: st.size });
  }
  return drafts;
}

/**
 * Removes the drafts of shard file `shard` (e.g. `1-of-4`) in `dir` that were written on this
 * host by a process that no longer runs: what a killed or preempted attempt left (a SIGKILL runs
 * no clean-up). Drafts of other hosts, or of a running process, are kept: their writer may still
 * commit. Returns the names removed.
 */
export async function removeDeadDrafts(dir: string, shard: string): Promise<string[]> {
  const host = hostTag();
  const removed: string[] = [];
  for (const d of await listDrafts(dir)) {
    if (d.shard !== shard || d.host !== host || running(d.pid)) continue;
    await fsp.unlink(path.join(dir, d.name)).then(
      () => removed.push(d.name),
      () => undefined,
    );
  }
  return removed;
}

export async function startShard(target: string, header: ShardHeader): Promise<ShardDraft> {
  const temp = path.join(path.dirname(target), `.${path.basename(target)}.${hostTag()}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  const head = headerBytes(header);
  try {
    const fh = await fsp.open(temp, 'wx');
    try {
      await writeFully(fh, head, 0);
      await fh.truncate(head.length + header.payloadBytes);
    } finally {
      await fh.close();
    }
  } catch (e) {
    await fsp.unlink(temp).catch(() => undefined);
    throw asWriteError(target, e);
  }
  return { temp, target, header, payloadStart: head.length };
}

/** Appends the accumulators and the trailer, syncs, and renames the draft into place (last step). */
export async function commitShard(draft: ShardDraft, results: readonly FitResult[] | readonly OnlineChunkResult[]): Promise<void> {
  try {
    const acc = Buffer.from(encodeExact(results));
    const accStart = draft.payloadStart + draft.header.payloadBytes;
    const fh = await fsp.open(draft.temp, 'r+');
    try {
      await writeFully(fh, acc, accStart);
      const hash = createHash('sha256');
      await hashRange(fh, 0, accStart + acc.length, hash);
      const trailer = Buffer.alloc(TRAILER_BYTES);
      END.copy(trailer, 0);
      trailer.writeBigUInt64LE(BigInt(draft.payloadStart), 8);
      trailer.writeBigUInt64LE(BigInt(accStart), 16);
      trailer.writeBigUInt64LE(BigInt(acc.length), 24);
      hash.digest().copy(trailer, 32);
      await writeFully(fh, trailer, accStart + acc.length);
      await fh.sync();
    } finally {
      await fh.close();
    }
    await fsp.rename(draft.temp, draft.target);
  } catch (e) {
    await fsp.unlink(draft.temp).catch(() => undefined);
    throw asWriteError(draft.target, e);
  }
}

export async function abandonShard(draft: ShardDraft): Promise<void> {
  await fsp.unlink(draft.temp).catch(() => undefined);
}

const BLOCK = 8 << 20;

async function hashRange(fh: fsp.FileHandle, from: number, to: number, hash: ReturnType<typeof createHash>): Promise<void> {
  const buf = Buffer.allocUnsafe(Math.min(BLOCK, Math.max(1, to - from)));
  for (let pos = from; pos < to; ) {
    const { bytesRead } = await fh.read(buf, 0, Math.min(buf.length, to - pos), pos);
    if (bytesRead <= 0) throw new Error(`unexpected end of file at byte ${pos}`);
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
}

/** A shard file whose framing holds (magic, lengths, trailer, header); its checksum is checked as it is read. */
export interface ShardFile {
  file: string;
  header: ShardHeader;
  payloadStart: number;
  accStart: number;
  accLength: number;
  /** The sha256 the trailer records for every byte before it. */
  checksum: Buffer;
}

/**
 * Checks a shard file's framing — magic, trailer, lengths, header — without reading its payload;
 * returns why it is not whole, or the file. A damaged header is told apart by its checksum.
 */
export async function openShard(file: string): Promise<ShardFile | { problem: string }> {
  let fh: fsp.FileHandle;
  try {
    fh = await fsp.open(file, 'r');
  } catch (e) {
    return { problem: `cannot open (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
  }
  try {
    const size = (await fh.stat()).size;
    if (size < MAGIC.length + 4 + TRAILER_BYTES) return { problem: `only ${size} bytes` };
    const start = Buffer.alloc(MAGIC.length + 4);
    await fh.read(start, 0, start.length, 0);
    if (!start.subarray(0, MAGIC.length).equals(MAGIC)) return { problem: 'not a cmd shard file' };
    const trailer = Buffer.alloc(TRAILER_BYTES);
    await fh.read(trailer, 0, TRAILER_BYTES, size - TRAILER_BYTES);
    if (!trailer.subarray(0, END.length).equals(END)) return { problem: 'no trailer (half-written?)' };
    const payloadStart = Number(trailer.readBigUInt64LE(8));
    const accStart = Number(trailer.readBigUInt64LE(16));
    const accLength = Number(trailer.readBigUInt64LE(24));
    if (accStart + accLength + TRAILER_BYTES !== size) return { problem: `length ${size} does not match its trailer` };
    const headerLength = start.readUInt32LE(MAGIC.length);
    if (MAGIC.length + 4 + headerLength !== payloadStart) return { problem: 'header length does not match its trailer' };
    const checksum = trailer.subarray(32, 64);
    const headerBuf = Buffer.alloc(headerLength);
    await fh.read(headerBuf, 0, headerLength, MAGIC.length + 4);
    let header: ShardHeader;
    try {
      header = JSON.parse(headerBuf.toString('utf8')) as ShardHeader;
    } catch (e) {
      const hash = createHash('sha256');
      await hashRange(fh, 0, accStart + accLength, hash);
      return { problem: hash.digest().equals(checksum) ? `unreadable header (${(e as Error).message})` : DAMAGED };
    }
    if (payloadStart + header.payloadBytes !== accStart) return { problem: 'payload length does not match its header' };
    return { file, header, payloadStart, accStart, accLength, checksum };
  } catch (e) {
    return { problem: `unreadable (${(e as Error).message})` };
  } finally {
    await fh.close();
  }
}

export const DAMAGED = 'checksum mismatch (damaged)';

/** Hashes a framed shard whole: undefined when its checksum holds, else why not. */
export function verifyShard(shard: ShardFile, buf: Buffer): string | undefined {
  return readShard(shard, buf, () => undefined).ok ? undefined : DAMAGED;
}

/**
 * Reads a framed shard once, front to back, `buf` at a time: hashes every byte, passes each
 * block's payload bytes to `payload(bytes, offset from the payload start)` as they come, and
 * returns the accumulators' bytes and whether the checksum held. The verdict comes at the end,
 * so a caller writes the payload only where a failure leaves nothing behind (a staging folder).
 */
export function readShard(shard: ShardFile, buf: Buffer, payload: (bytes: Buffer, offset: number) => void): { ok: boolean; accumulators: Buffer } {
  const end = shard.accStart + shard.accLength;
  const payloadEnd = shard.accStart;
  const accumulators = Buffer.allocUnsafe(shard.accLength);
  const hash = createHash('sha256');
  const fd = fs.openSync(shard.file, 'r');
  try {
    for (let pos = 0; pos < end; ) {
      const n = fs.readSync(fd, buf, 0, Math.min(buf.length, end - pos), pos);
      if (n <= 0) throw new Error(`${shard.file}: unexpected end of shard at byte ${pos}`);
      const block = buf.subarray(0, n);
      hash.update(block);
      const p0 = Math.max(pos, shard.payloadStart);
      const p1 = Math.min(pos + n, payloadEnd);
      if (p1 > p0) payload(block.subarray(p0 - pos, p1 - pos), p0 - shard.payloadStart);
      const a0 = Math.max(pos, shard.accStart);
      if (pos + n > a0) block.copy(accumulators, a0 - shard.accStart, a0 - pos, n);
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { ok: hash.digest().equals(shard.checksum), accumulators };
}

/** The per-chunk results a shard carries, in chunk order (an online plan's: the online chunk tasks'). */
export function decodeShardResults<R = FitResult>(accumulators: Buffer): R[] {
  return decodeExact<R[]>(accumulators.toString('utf8'));
}

export const COPY_BLOCK = BLOCK;
