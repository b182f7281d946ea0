/**
 * The zip container `torch.save` has written since PyTorch 1.6 (docs/formats.md, "PyTorch"):
 * `<archive>/data.pkl` (the pickled object), `<archive>/data/<key>` (one *stored* entry per
 * storage, raw little-endian bytes), `<archive>/version`, and in PyTorch 2.x
 * `<archive>/byteorder` and `<archive>/.data/serialization_id`. Only the central directory, the
 * pickle and small records are read; storages are located by position, never loaded.
 */
import { zipLibrary } from './zip-library.ts';
import { open } from 'node:fs/promises';
import type { Entry, ZipFile } from 'yauzl';
import { errorText, zipEntries } from './zip-entries.ts';
import { InputError } from '../errors.ts';

const METHOD_STORED = 0;
/** data.pkl of a state_dict is kilobytes; a limit keeps a hostile size field from exhausting memory. */
const MAX_PICKLE_BYTES = 512 * 1024 * 1024;
const MAX_RECORD_BYTES = 4096;
/** `torch.save`'s legacy (pre-1.6) format starts with a pickled magic number: PROTO 2, LONG1 10 bytes. */
const LEGACY_MAGIC = Buffer.from([0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);

export interface TorchArchive {
  path: string;
  /** Entry name prefix, `archive/` or whatever folder name torch chose. */
  prefix: string;
  pickle: Uint8Array;
  byteOrder: 'little' | 'big';
  /** Storage key → where its bytes start in the file and how many there are. */
  storage(key: string): Promise<{ start: number; length: number }>;
  close(): void;
}

/** What the first bytes say the file is, for discovery and for clear refusals. */
export type TorchSniff = 'zip' | 'legacy' | 'other';

export async function sniffTorchFile(path: string): Promise<TorchSniff> {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch {
    return 'other';
  }
  try {
    const b = Buffer.alloc(LEGACY_MAGIC.length);
    const { bytesRead } = await fh.read(b, 0, b.length, 0);
    if (bytesRead >= 4 && b.readUInt32LE(0) === 0x04034b50) return 'zip';
    if (bytesRead === b.length && b.equals(LEGACY_MAGIC)) return 'legacy';
    return 'other';
  } finally {
    await fh.close();
  }
}

/**
 * Lists a zip's entry names from its central directory (no data read), undefined when the
 * central directory cannot be read. Names are not validated here (a `../` name must still
 * make the file a torch archive, so that the reader refuses it instead of discovery skipping it).
 */
export async function zipEntryNames(path: string): Promise<string[] | undefined> {
  let zip: ZipFile;
  try {
    zip = await (await zipLibrary()).openPromise(path, { lazyEntries: true, autoClose: false, decodeStrings: false });
  } catch {
    return undefined;
  }
  try {
    const names: string[] = [];
    for await (const e of zip.eachEntry()) names.push(Buffer.from(e.fileName as unknown as Uint8Array).toString('utf8'));
    return names;
  } catch {
    return undefined;
  } finally {
    zip.close();
  }
}

/** A zip holding exactly one `<folder>/data.pkl` is a torch.save archive (content, not extension). */
export function isTorchZipListing(names: string[]): boolean {
  return names.some((n) => /^[^/]+\/data\.pkl$/.test(n));
}

async function readEntry(path: string, zip: ZipFile, entry: Entry, limit: number): Promise<Uint8Array> {
  if (entry.uncompressedSize > limit) throw new InputError(path, `entry '${entry.fileName}' is ${entry.uncompressedSize} bytes, more than the ${limit} allowed`, 'torch-entry-too-large');
  try {
    const stream = await zip.openReadStreamPromise(entry);
    const chunks: Buffer[] = [];
    for await (const c of stream) chunks.push(c as Buffer);
    return Buffer.concat(chunks);
  } catch (e) {
    throw new InputError(path, `entry '${entry.fileName}' cannot be read (${errorText(e)}; truncated file?)`, 'torch-entry-truncated');
  }
}

/**
 * Opens a torch.save zip: validates entry names (no absolute or `..` paths), finds the single
 * `<prefix>/data.pkl`, refuses TorchScript archives, and reads the pickle and the byte order.
 */
export async function openTorchArchive(path: string): Promise<TorchArchive> {
  const sniff = await sniffTorchFile(path);
  if (sniff === 'legacy') {
    throw new InputError(path, 'is in the legacy (pre-1.6) torch.save format, which cmd does not read; re-save it with torch.save from PyTorch ≥ 1.6 (docs/formats.md)', 'torch-legacy');
  }
  if (sniff !== 'zip') throw new InputError(path, 'is not a torch.save zip archive (no zip header)', 'torch-not-zip');
  let zip: ZipFile;
  try {
    zip = await (await zipLibrary()).openPromise(path, { lazyEntries: true, autoClose: false, validateEntrySizes: true, decodeStrings: true });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code !== undefined) throw new InputError(path, `cannot open (${code})`, 'unreadable');
    throw new InputError(path, `not a readable zip archive (${errorText(e)})`, 'torch-corrupt');
  }
  let ok = false;
  try {
    const entries = new Map<string, Entry>();
    // yauzl refuses absolute and `..` names itself ("invalid relative path").
    const refuse = (msg: string) => new InputError(path, `zip entry refused (${msg})`, /relative path|absolute path|backslash/i.test(msg) ? 'torch-path-traversal' : 'torch-corrupt');
    for await (const entry of zipEntries(zip, refuse)) {
      const name = entry.fileName;
      if (name.split('/').some((part) => part === '..') || name.startsWith('/')) {
        throw new InputError(path, `zip entry '${name}' points outside the archive`, 'torch-path-traversal');
      }
      entries.set(name, entry);
    }
    const pickles = [...entries.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n));
    if (pickles.length !== 1) {
      throw new InputError(path, pickles.length ? `holds ${pickles.length} data.pkl entries; a torch.save archive has one` : 'is a zip without <archive>/data.pkl, so not a torch.save checkpoint', 'torch-no-pickle');
    }
    const prefix = pickles[0].slice(0, -'data.pkl'.length);
    if (entries.has(`${prefix}constants.pkl`) || [...entries.keys()].some((n) => n.startsWith(`${prefix}code/`))) {
      throw new InputError(path, 'is a TorchScript archive (torch.jit.save), which holds code; cmd reads torch.save state_dicts only', 'torch-torchscript');
    }
    const pickle = await readEntry(path, zip, entries.get(pickles[0])!, MAX_PICKLE_BYTES);
    let byteOrder: 'little' | 'big' = 'little';
    const bo = entries.get(`${prefix}byteorder`);
    if (bo) {
      const text = Buffer.from(await readEntry(path, zip, bo, MAX_RECORD_BYTES)).toString('latin1').trim();
      if (text !== 'little' && text !== 'big') throw new InputError(path, `byteorder record says '${text.slice(0, 20)}', expected little or big`, 'torch-corrupt');
      byteOrder = text;
    }
    const fh = await open(path, 'r');
    const fileSize = (await fh.stat()).size;
    await fh.close();
    const archive: TorchArchive = {
      path,
      prefix,
      pickle,
      byteOrder,
      async storage(key: string) {
        const entry = entries.get(`${prefix}data/${key}`);
        if (!entry) throw new InputError(path, `storage '${key}' is missing (no entry ${prefix}data/${key})`, 'torch-storage-missing');
        if (entry.compressionMethod !== METHOD_STORED) {
          throw new InputError(path, `storage entry '${entry.fileName}' is compressed (method ${entry.compressionMethod}); torch.save stores storages uncompressed so they can be read in place`, 'torch-storage-compressed');
        }
        if (entry.isEncrypted()) throw new InputError(path, `storage entry '${entry.fileName}' is encrypted`, 'torch-storage-compressed');
        let start: number;
        try {
          start = (await zip.readLocalFileHeaderPromise(entry, { minimal: true })).fileDataStart;
        } catch (e) {
          throw new InputError(path, `storage entry '${entry.fileName}': ${errorText(e)} (truncated file?)`, 'torch-storage-truncated');
        }
        if (start + entry.uncompressedSize > fileSize) {
          throw new InputError(path, `storage entry '${entry.fileName}' runs past the end of the file (truncated file?)`, 'torch-storage-truncated');
        }
        return { start, length: entry.uncompressedSize };
      },
      close: () => zip.close(),
    };
    ok = true;
    return archive;
  } finally {
    if (!ok) zip.close();
  }
}
