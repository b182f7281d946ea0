/**
 * NumPy `.npz` archives: a ZIP with one `<name>.npy` member per tensor. Stored members are read
 * in place (spans point into the archive); deflated members are inflated once into scratch.
 * Format notes: docs/formats.md, "npy / npz".
 */
import { zipLibrary } from './zip-library.ts';
import { createWriteStream } from 'node:fs';
import { unlink } from 'node:fs/promises';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { crc32, deflateRawSync } from 'node:zlib';
import type { Entry, ZipFile } from 'yauzl';
import { errorText, zipEntries } from './zip-entries.ts';
import { InputError, RuntimeError } from '../errors.ts';
import { elementCount } from './dtype.ts';
import { checkWritableNames, npyHeaderBytes, npyTensor, parseNpyHeaderText, writeBytesAt } from './npy.ts';
import { diskErrorText } from '../io/disk-errors.ts';
import { writeFileAtomicWith as writeFileAtomic } from '../io/atomic-file.ts';
import { scratchPath } from './scratch.ts';
import { closeSync } from 'node:fs';
import { openRegularSync } from '../io/open-regular.ts';
import type { CheckpointContents, StoredTensor, TensorToWrite } from './types.ts';
import { DTYPES } from './dtype.ts';

const METHOD_STORED = 0;
const METHOD_DEFLATED = 8;
const U32_MAX = 0xffffffff;

function memberError(path: string, member: string, rule: string, message: string): InputError {
  return new InputError(path, `member '${member}': ${message}`, rule);
}

/** The npy header is read before anything is inflated to disk; numpy's are far below this. */
const MAX_NPY_PREFIX = (1 << 20) + 12;
const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);

/**
 * The full byte size of the .npy that starts with `head` (prefix + header + product(shape) ×
 * itemsize), or undefined while `head` is too short to tell. Throws InputError for a header
 * that is not an npy header.
 */
function npyTotalBytes(head: Buffer, path: string, member: string): number | undefined {
  if (head.length < 10) return undefined;
  if (!head.subarray(0, 6).equals(NPY_MAGIC)) throw memberError(path, member, 'npy-magic', `not an .npy member: expected magic \\x93NUMPY, found ${head.subarray(0, 8).toString('hex')}`);
  const major = head[6];
  if ((major !== 1 && major !== 2 && major !== 3) || head[7] !== 0) throw memberError(path, member, 'npy-version', `unsupported .npy format version ${major}.${head[7]}`);
  const prefix = major === 1 ? 10 : 12;
  if (head.length < prefix) return undefined;
  const headerLen = major === 1 ? head.readUInt16LE(8) : head.readUInt32LE(8);
  if (prefix + headerLen > MAX_NPY_PREFIX) throw memberError(path, member, 'npy-header-too-large', `npy header length ${headerLen} exceeds the ${MAX_NPY_PREFIX - 12}-byte limit`);
  if (head.length < prefix + headerLen) return undefined;
  const raw = head.subarray(prefix, prefix + headerLen);
  const text = major === 3 ? raw.toString('utf8') : raw.toString('latin1');
  const { descr, shape } = parseNpyHeaderText(text, { file: path, member });
  const dataBytes = elementCount(shape) * DTYPES[descr.dtype].bytes;
  if (!Number.isSafeInteger(dataBytes)) throw memberError(path, member, 'npy-shape', `shape (${shape.join(', ')}) has too many elements`);
  return prefix + headerLen + dataBytes;
}

/**
 * Passes the inflated bytes through only once the member's npy header is known, and only as
 * many as that header's shape and dtype need: a member whose declared size differs from what
 * its header needs is refused before a byte reaches the disk, and inflation stops at the bound
 * (a zip bomb never fills the scratch disk). docs/formats.md, npz.
 */
function boundedByNpyHeader(path: string, entry: Entry): Transform {
  const member = entry.fileName;
  let head: Buffer | undefined = Buffer.alloc(0);
  let limit = Infinity;
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, done) {
      seen += chunk.length;
      if (seen > limit) return done(memberError(path, member, 'npz-member-size', `inflates past the ${limit} bytes its npy header (shape and dtype) needs`));
      if (head === undefined) return done(null, chunk);
      head = Buffer.concat([head, chunk]);
      let need: number | undefined;
      try {
        need = npyTotalBytes(head, path, member);
      } catch (e) {
        return done(e as Error);
      }
      if (need === undefined) {
        if (head.length >= MAX_NPY_PREFIX) return done(memberError(path, member, 'npy-header-too-large', 'no complete npy header in its first MiB'));
        return done();
      }
      if (need !== entry.uncompressedSize) {
        return done(memberError(path, member, 'npz-member-size', `declares ${entry.uncompressedSize} bytes inflated but its npy header (shape and dtype) needs ${need}`));
      }
      limit = need;
      if (seen > limit) return done(memberError(path, member, 'npz-member-size', `inflates past the ${limit} bytes its npy header (shape and dtype) needs`));
      const all = head;
      head = undefined;
      done(null, all);
    },
    flush(done) {
      // Shorter than its header needs: reported by the npy reader as truncated data.
      done(null, head?.length ? head : undefined);
    },
  });
}

/**
 * Inflates a deflated member into a scratch file, bounded by its npy header, checking its
 * size (yauzl) and CRC-32 (here). A disk error on the scratch file names the scratch file,
 * not the input (the archive is fine; the disk is full).
 */
async function inflateToScratch(path: string, zip: ZipFile, entry: Entry): Promise<string> {
  const out = scratchPath(entry.fileName);
  let crc = 0;
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const checksum = new Transform({
      transform(chunk: Buffer, _enc, done) {
        crc = crc32(chunk, crc);
        done(null, chunk);
      },
    });
    await pipeline(stream, boundedByNpyHeader(path, entry), checksum, createWriteStream(out, { flags: 'wx' }));
  } catch (e) {
    await unlink(out).catch(() => undefined);
    if (e instanceof InputError) throw e;
    const disk = diskErrorText(e);
    if (disk !== undefined) throw new RuntimeError(`${out}: cannot write scratch space (inflating member '${entry.fileName}' of ${path}): ${disk}`);
    const msg = errorText(e);
    const rule = /not enough bytes|unexpected end|overflows file bounds/i.test(msg) ? 'npz-member-truncated' : 'npz-member-corrupt';
    throw memberError(path, entry.fileName, rule, `cannot inflate (${msg})`);
  }
  if (crc >>> 0 !== entry.crc32 >>> 0) {
    await unlink(out).catch(() => undefined);
    throw memberError(
      path,
      entry.fileName,
      'npz-crc',
      `CRC-32 mismatch: archive says ${entry.crc32.toString(16).padStart(8, '0')}, data gives ${(crc >>> 0).toString(16).padStart(8, '0')}`,
    );
  }
  return out;
}

async function memberTensor(path: string, zip: ZipFile, entry: Entry, name: string): Promise<StoredTensor> {
  const member = entry.fileName;
  if (entry.isEncrypted()) throw memberError(path, member, 'npz-method', 'is encrypted');
  if (entry.compressionMethod === METHOD_STORED) {
    if (entry.compressedSize !== entry.uncompressedSize) {
      throw memberError(path, member, 'npz-corrupt', `stored member has compressed size ${entry.compressedSize} ≠ size ${entry.uncompressedSize}`);
    }
    let start: number;
    try {
      // The local header's extra field (numpy writes a ZIP64 one) differs from the central one.
      start = (await zip.readLocalFileHeaderPromise(entry, { minimal: true })).fileDataStart;
    } catch (e) {
      const msg = errorText(e);
      throw memberError(path, member, /overflows file bounds|unexpected EOF/i.test(msg) ? 'npz-member-truncated' : 'npz-corrupt', msg);
    }
    return npyTensor(path, name, { start, length: entry.uncompressedSize, member });
  }
  if (entry.compressionMethod === METHOD_DEFLATED) {
    const inflated = await inflateToScratch(path, zip, entry);
    try {
      const t = await npyTensor(inflated, name, { errorFile: path, member });
      // A Fortran-order member was copied once more; the inflated bytes are no longer referenced.
      if (t.spans.every((s) => s.path !== inflated)) await unlink(inflated).catch(() => undefined);
      return t;
    } catch (e) {
      await unlink(inflated).catch(() => undefined);
      throw e;
    }
  }
  throw memberError(path, member, 'npz-method', `compression method ${entry.compressionMethod} is not supported (expected 0 stored or 8 deflated)`);
}

/**
 * Reads an .npz checkpoint: member `<name>.npy` becomes tensor `<name>` (only the trailing
 * `.npy` is removed), in archive order. Errors name the archive and the member.
 */
export async function readNpzCheckpoint(path: string): Promise<CheckpointContents> {
  // A raw descriptor: once yauzl has it, zip.close() closes it (FdSlicer.unref).
  let fd: number;
  try {
    fd = openRegularSync(path);
  } catch (e) {
    if (e instanceof InputError) throw e;
    const code = (e as NodeJS.ErrnoException).code;
    throw new InputError(path, `cannot open (${code ?? errorText(e)})`, code === 'ENOENT' ? 'file-missing' : 'file-unreadable');
  }
  let zip: ZipFile;
  try {
    zip = await (await zipLibrary()).fromFdPromise(fd, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true });
  } catch (e) {
    closeSync(fd);
    throw new InputError(path, `not a readable zip archive (${errorText(e)})`, 'npz-corrupt');
  }
  try {
    const tensors: StoredTensor[] = [];
    const seen = new Set<string>();
    let compressed = false;
    for await (const entry of zipEntries(zip, (msg) => new InputError(path, `corrupt zip central directory (${msg})`, 'npz-corrupt'))) {
      if (entry.fileName.endsWith('/')) continue; // a folder entry carries no data
      if (!entry.fileName.endsWith('.npy')) {
        throw memberError(path, entry.fileName, 'npz-member-name', 'is not a .npy file (an .npz checkpoint holds only <tensor>.npy members)');
      }
      const name = entry.fileName.slice(0, -'.npy'.length);
      if (seen.has(name)) throw memberError(path, entry.fileName, 'npz-duplicate-member', 'appears twice in the archive');
      seen.add(name);
      if (entry.compressionMethod === METHOD_DEFLATED) compressed = true;
      tensors.push(await memberTensor(path, zip, entry, name));
    }
    if (tensors.length === 0) throw new InputError(path, 'archive holds no .npy members', 'npz-empty');
    // `np.savez_compressed` deflates every member; writers keep that choice (docs/formats.md).
    return { format: 'npz', files: [path], tensors, metadata: {}, extras: { compressed } };
  } finally {
    zip.close();
  }
}

// ------------------------------------------------------------------ writer

export interface WriteNpzOptions {
  /** Always write ZIP64 records (numpy does for local headers); large archives get them anyway. */
  forceZip64?: boolean;
  /** Deflate the members, as `np.savez_compressed` does. */
  compress?: boolean;
}

interface CentralRecord {
  name: Buffer;
  utf8: boolean;
  crc: number;
  size: number;
  /** Bytes of the member's data in the archive (= size when stored). */
  csize: number;
  method: number;
  offset: number;
  zip64Local: boolean;
}

// DOS date 1980-01-01 00:00, what Python's zipfile stamps on members written through ZipFile.open.
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const DOS_TIME = 0;

function localHeader(r: CentralRecord): Buffer {
  const extra = r.zip64Local ? 20 : 0;
  const b = Buffer.alloc(30 + r.name.length + extra);
  b.writeUInt32LE(0x04034b50, 0);
  b.writeUInt16LE(r.zip64Local ? 45 : 20, 4);
  b.writeUInt16LE(r.utf8 ? 0x800 : 0, 6);
  b.writeUInt16LE(r.method, 8);
  b.writeUInt16LE(DOS_TIME, 10);
  b.writeUInt16LE(DOS_DATE, 12);
  b.writeUInt32LE(r.crc, 14);
  b.writeUInt32LE(r.zip64Local ? U32_MAX : r.csize, 18);
  b.writeUInt32LE(r.zip64Local ? U32_MAX : r.size, 22);
  b.writeUInt16LE(r.name.length, 26);
  b.writeUInt16LE(extra, 28);
  r.name.copy(b, 30);
  if (r.zip64Local) {
    const e = 30 + r.name.length;
    b.writeUInt16LE(0x0001, e);
    b.writeUInt16LE(16, e + 2);
    b.writeBigUInt64LE(BigInt(r.size), e + 4);
    b.writeBigUInt64LE(BigInt(r.csize), e + 12);
  }
  return b;
}

function centralHeader(r: CentralRecord, force: boolean): Buffer {
  const bigSize = force || r.size >= U32_MAX || r.csize >= U32_MAX;
  const bigOffset = force || r.offset >= U32_MAX;
  const fields = [...(bigSize ? [r.size, r.csize] : []), ...(bigOffset ? [r.offset] : [])];
  const extra = fields.length ? 4 + 8 * fields.length : 0;
  const b = Buffer.alloc(46 + r.name.length + extra);
  const version = extra || r.zip64Local ? 45 : 20;
  b.writeUInt32LE(0x02014b50, 0);
  b.writeUInt16LE((3 << 8) | version, 4); // made by: Unix
  b.writeUInt16LE(version, 6);
  b.writeUInt16LE(r.utf8 ? 0x800 : 0, 8);
  b.writeUInt16LE(r.method, 10);
  b.writeUInt16LE(DOS_TIME, 12);
  b.writeUInt16LE(DOS_DATE, 14);
  b.writeUInt32LE(r.crc, 16);
  b.writeUInt32LE(bigSize ? U32_MAX : r.csize, 20);
  b.writeUInt32LE(bigSize ? U32_MAX : r.size, 24);
  b.writeUInt16LE(r.name.length, 28);
  b.writeUInt16LE(extra, 30);
  // comment length, disk number, internal attributes: 0
  b.writeUInt32LE((0o600 << 16) >>> 0, 38);
  b.writeUInt32LE(bigOffset ? U32_MAX : r.offset, 42);
  r.name.copy(b, 46);
  if (extra) {
    let p = 46 + r.name.length;
    b.writeUInt16LE(0x0001, p);
    b.writeUInt16LE(8 * fields.length, p + 2);
    p += 4;
    for (const f of fields) {
      b.writeBigUInt64LE(BigInt(f), p);
      p += 8;
    }
  }
  return b;
}

function endRecords(count: number, cdOffset: number, cdSize: number, force: boolean): Buffer {
  const zip64 = force || count >= 0xffff || cdOffset >= U32_MAX || cdSize >= U32_MAX;
  const eocd = Buffer.alloc(22);
  eocd.writeUInt32LE(0x06054b50, 0);
  eocd.writeUInt16LE(zip64 ? 0xffff : count, 8);
  eocd.writeUInt16LE(zip64 ? 0xffff : count, 10);
  eocd.writeUInt32LE(zip64 ? U32_MAX : cdSize, 12);
  eocd.writeUInt32LE(zip64 ? U32_MAX : cdOffset, 16);
  if (!zip64) return eocd;
  const rec = Buffer.alloc(56);
  rec.writeUInt32LE(0x06064b50, 0);
  rec.writeBigUInt64LE(44n, 4);
  rec.writeUInt16LE((3 << 8) | 45, 12);
  rec.writeUInt16LE(45, 14);
  rec.writeBigUInt64LE(BigInt(count), 24);
  rec.writeBigUInt64LE(BigInt(count), 32);
  rec.writeBigUInt64LE(BigInt(cdSize), 40);
  rec.writeBigUInt64LE(BigInt(cdOffset), 48);
  const loc = Buffer.alloc(20);
  loc.writeUInt32LE(0x07064b50, 0);
  loc.writeBigUInt64LE(BigInt(cdOffset + cdSize), 8);
  loc.writeUInt32LE(1, 16);
  return Buffer.concat([rec, loc, eocd]);
}

/**
 * Writes tensors as an .npz that numpy reads, atomically, members in the given order: stored,
 * or deflated with `compress` (what `np.savez_compressed` writes). BF16/F8 tensors are refused
 * (numpy has no such dtype).
 */
export async function writeNpz(path: string, tensors: readonly TensorToWrite[], opts: WriteNpzOptions = {}): Promise<void> {
  const force = opts.forceZip64 ?? false;
  checkWritableNames(tensors, false);
  const headers = tensors.map((t) => {
    const header = npyHeaderBytes(t.dtype, t.shape, t.name);
    const expected = elementCount(t.shape) * DTYPES[t.dtype].bytes;
    if (t.data.byteLength !== expected) {
      throw new RangeError(`tensor '${t.name}': ${t.data.byteLength} data bytes, expected ${expected}`);
    }
    return header;
  });
  await writeFileAtomic(path, async (fh) => {
    let pos = 0;
    const records: CentralRecord[] = [];
    for (let i = 0; i < tensors.length; i++) {
      const t = tensors[i];
      const memberName = `${t.name}.npy`;
      const size = headers[i].length + t.data.byteLength;
      // zlib's default level, as Python's zipfile uses for ZIP_DEFLATED.
      const body = opts.compress ? [deflateRawSync(Buffer.concat([headers[i], t.data]))] : [headers[i], t.data];
      const csize = body.reduce((n, b) => n + b.byteLength, 0);
      const record: CentralRecord = {
        name: Buffer.from(memberName, 'utf8'),
        utf8: /[^\x20-\x7e]/.test(memberName),
        crc: crc32(t.data, crc32(headers[i])) >>> 0,
        size,
        csize,
        method: opts.compress ? METHOD_DEFLATED : METHOD_STORED,
        zip64Local: force || size >= U32_MAX || csize >= U32_MAX,
        offset: pos,
      };
      records.push(record);
      for (const chunk of [localHeader(record), ...body]) {
        await writeBytesAt(fh, chunk, pos);
        pos += chunk.byteLength;
      }
    }
    const central = Buffer.concat(records.map((r) => centralHeader(r, force)));
    await writeBytesAt(fh, central, pos);
    await writeBytesAt(fh, endRecords(records.length, pos, central.length, force), pos + central.length);
  });
}
