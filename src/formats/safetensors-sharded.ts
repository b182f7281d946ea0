/**
 * Hugging Face sharded safetensors checkpoints: a `*.safetensors.index.json` whose
 * `weight_map` names, for every tensor, the shard file (relative to the index's folder)
 * that holds it. Read as one checkpoint (docs/formats.md, "safetensors").
 */
import { openRegular } from '../io/open-regular.ts';
import { realpath } from 'node:fs/promises';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { InputError } from '../errors.ts';
import { readExactly, readSafetensorsHeader } from './safetensors.ts';
import { isRemote } from '../remote/url.ts';
import type { CheckpointContents, StoredTensor } from './types.ts';

/** An index is JSON text, but refuse absurd sizes before reading it into memory. */
const MAX_INDEX_BYTES = 100_000_000;

/**
 * Reads a sharded checkpoint through its index: validates the index, refuses shard paths
 * that leave the index's folder (absolute, `..`, or a symlink pointing outside), reads every
 * shard's header, and checks that the shards hold exactly the tensors of `weight_map`, each
 * in the shard the map names. Tensors come shard by shard (shards in order of first mention
 * in `weight_map`), in data-offset order within a shard. `metadata` merges the shards'
 * `__metadata__` (first value wins); the index's own `metadata` is in `extras.indexMetadata`.
 */
export async function readShardedSafetensors(indexPath: string): Promise<CheckpointContents> {
  const index = await readIndexJson(indexPath);
  const fail = (rule: string, message: string): never => {
    throw new InputError(indexPath, message, rule);
  };
  if (!isPlainObject(index)) return fail('index-not-object', 'index JSON is not an object');
  const indexMetadata = index.metadata;
  if (indexMetadata !== undefined && indexMetadata !== null && !isPlainObject(indexMetadata)) {
    fail('index-metadata-invalid', '"metadata" is not an object');
  }
  const weightMap = index.weight_map;
  if (!isPlainObject(weightMap)) return fail('index-weight-map-invalid', '"weight_map" is missing or not an object of tensor name → shard file');
  const entries = Object.entries(weightMap);
  if (entries.length === 0) fail('index-weight-map-invalid', '"weight_map" is empty');

  const folder = dirname(indexPath);
  const shards: string[] = [];
  for (const [name, shard] of entries) {
    if (typeof shard !== 'string' || shard === '') return fail('index-weight-map-invalid', `weight_map[${JSON.stringify(name)}] is not a shard file name`);
    if (!shards.includes(shard)) shards.push(shard);
  }
  const remote = isRemote(indexPath);
  for (const shard of shards) {
    if (remote) remoteShardUrl(indexPath, shard);
    else await checkInsideFolder(indexPath, folder, shard);
  }

  const tensors: StoredTensor[] = [];
  const files = [indexPath];
  const metadata: Record<string, string> = {};
  const found = new Set<string>();
  for (const shard of shards) {
    const shardPath = remote ? remoteShardUrl(indexPath, shard) : join(folder, shard);
    const contents = await readSafetensorsHeader(shardPath);
    files.push(shardPath);
    for (const t of contents.tensors) {
      if (!Object.hasOwn(weightMap, t.name)) {
        fail('shard-extra-tensor', `shard ${JSON.stringify(shard)} holds tensor ${JSON.stringify(t.name)}, which weight_map does not list`);
      }
      if (weightMap[t.name] !== shard) {
        fail('shard-mismatch', `tensor ${JSON.stringify(t.name)} is in shard ${JSON.stringify(shard)}, but weight_map puts it in ${JSON.stringify(weightMap[t.name])}`);
      }
      found.add(t.name);
      tensors.push(t);
    }
    for (const [k, v] of Object.entries(contents.metadata)) {
      if (!Object.hasOwn(metadata, k)) Object.defineProperty(metadata, k, { value: v, enumerable: true, writable: true, configurable: true });
    }
  }
  for (const [name, shard] of entries) {
    if (!found.has(name)) fail('shard-missing-tensor', `weight_map puts tensor ${JSON.stringify(name)} in shard ${JSON.stringify(shard)}, which does not hold it`);
  }
  return {
    format: 'safetensors',
    files,
    tensors,
    metadata,
    extras: { indexMetadata: (indexMetadata ?? {}) as Record<string, unknown> },
  };
}

async function readIndexJson(indexPath: string): Promise<unknown> {
  let text: string;
  try {
    if (isRemote(indexPath)) {
      const { remoteClient } = await import('../remote/http-range.ts');
      text = new TextDecoder('utf-8', { fatal: true }).decode(await remoteClient().whole(indexPath, MAX_INDEX_BYTES));
      return parseIndexText(indexPath, text);
    }
    const fh = await openRegular(indexPath);
    try {
      const { size } = await fh.stat();
      if (size > MAX_INDEX_BYTES) throw new InputError(indexPath, `index is ${size} bytes, over the ${MAX_INDEX_BYTES}-byte limit`, 'index-too-large');
      text = new TextDecoder('utf-8', { fatal: true }).decode(await readExactly(fh, 0, size));
    } finally {
      await fh.close();
    }
  } catch (err) {
    if (err instanceof InputError) throw err;
    throw new InputError(indexPath, `cannot read index (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, 'unreadable');
  }
  return parseIndexText(indexPath, text);
}

function parseIndexText(indexPath: string, text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new InputError(indexPath, `index is not valid JSON (${(err as Error).message.replace(/\s+/g, ' ')})`, 'index-json');
  }
}

/**
 * A remote index's shard: resolved against the index URL (its query string, a signature for the
 * index alone, is not carried over), refused when it is absolute, carries `..`, a query or a
 * scheme, or lands outside the index's folder on the same host.
 */
function remoteShardUrl(indexUrl: string, shard: string): string {
  const refuse = (why: string): never => {
    throw new InputError(indexUrl, `shard path ${JSON.stringify(shard)} ${why}; shards must lie inside the index's folder`, 'shard-path-escape');
  };
  if (/^[a-z][a-z0-9+.-]*:/i.test(shard) || shard.startsWith('/') || shard.startsWith('\\')) refuse('is absolute');
  if (shard.split(/[\\/]/).includes('..')) refuse('contains ".."');
  if (/[?#]/.test(shard)) refuse('carries a query or fragment');
  const base = new URL(indexUrl);
  const url = new URL(shard.split('/').map(encodeURIComponent).join('/'), base);
  const folderPath = base.pathname.slice(0, base.pathname.lastIndexOf('/') + 1);
  if (url.origin !== base.origin || !url.pathname.startsWith(folderPath)) refuse('leaves the folder');
  return url.href;
}

/** Refuses shard names that resolve, lexically or through symlinks, outside `folder`. */
async function checkInsideFolder(indexPath: string, folder: string, shard: string): Promise<void> {
  const refuse = (why: string): never => {
    throw new InputError(indexPath, `shard path ${JSON.stringify(shard)} ${why}; shards must lie inside the index's folder`, 'shard-path-escape');
  };
  if (isAbsolute(shard) || /^[A-Za-z]:[\\/]/.test(shard) || shard.startsWith('\\')) refuse('is absolute');
  if (shard.split(/[\\/]/).includes('..')) refuse('contains ".."');
  if (!isWithin(resolve(folder), resolve(folder, shard))) refuse('leaves the folder');
  let real: string;
  try {
    real = await realpath(join(folder, shard));
  } catch {
    return; // a missing shard is reported when its header is read
  }
  if (!isWithin(await realpath(folder), real)) refuse('is a symlink leading outside the folder');
}

function isWithin(folder: string, target: string): boolean {
  const rel = relative(folder, target);
  return rel !== '' && !rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
