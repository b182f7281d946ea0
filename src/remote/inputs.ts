/**
 * Remote inputs (docs/scale-out.md, "Checkpoints over HTTP and the Hugging Face Hub"): a `--urls`
 * list file, or `hf://org/model` with `--revisions`, resolved to one http(s) URL per checkpoint
 * with the name it is ordered by. No bytes of a checkpoint are read here.
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { InputError, UsageError } from '../errors.ts';
import { displayUrl, isRemote, urlFileName, urlFolderName } from './url.ts';

export type RemoteInput = { kind: 'urls'; file: string } | { kind: 'hf'; repo: string; revisions: string[] };

/** One remote checkpoint: what the format reader opens and the name its step comes from. */
export interface RemoteCheckpoint {
  url: string;
  name: string;
  layout: 'file' | 'sharded';
}

export interface ResolvedRemote {
  /** Stands for the folder in listings and the model's `cmd.source`: the list file, or hf://org/model. */
  label: string;
  checkpoints: RemoteCheckpoint[];
}

/**
 * The checkpoint input of a command: a folder, a `--urls` file, or `hf://org/model` with
 * `--revisions`. Giving a folder and `--urls`, neither, or `--revisions` without `hf://` is a
 * usage error.
 */
export function checkpointInput(dir: string | undefined, flags: { urls?: string; revisions?: string | string[] }): string | RemoteInput {
  const revisions = typeof flags.revisions === 'string' ? flags.revisions.split(',').map((r) => r.trim()).filter(Boolean) : flags.revisions;
  if (flags.urls !== undefined) {
    if (dir !== undefined) throw new UsageError(`give either a checkpoint folder (${dir}) or --urls ${flags.urls}, not both`);
    if (revisions?.length) throw new UsageError('--revisions goes with hf://org/model, not with --urls');
    return { kind: 'urls', file: path.resolve(flags.urls) };
  }
  if (dir === undefined) throw new UsageError("missing required argument 'dir': a checkpoint folder, --urls FILE, or hf://org/model --revisions a,b,c (run with --help for usage)");
  if (dir.startsWith('hf://')) {
    const repo = dir.slice('hf://'.length).replace(/\/+$/, '');
    if (!/^[\w.-]+\/[\w.-]+$/.test(repo)) throw new UsageError(`${dir}: expected hf://org/model`);
    if (!revisions?.length) throw new UsageError(`${dir} needs --revisions (the branches or tags holding the checkpoints, e.g. --revisions step1000,step2000,step3000)`);
    return { kind: 'hf', repo, revisions };
  }
  if (revisions?.length) throw new UsageError('--revisions goes with hf://org/model');
  if (isRemote(dir)) throw new UsageError(`${displayUrl(dir)}: a URL is not a folder; list checkpoint URLs in a file and give it with --urls FILE`);
  return dir;
}

/** The checkpoint name of a URL: its file name, or its folder's name for `model.safetensors` and indexes (as a local `checkpoint-N/` folder is named). */
export function remoteCheckpoint(url: string, file: string, line: number): RemoteCheckpoint {
  const fileName = urlFileName(url);
  const sharded = fileName.endsWith('.safetensors.index.json');
  if (!sharded && !fileName.endsWith('.safetensors')) {
    throw new InputError(`${file}:${line}`, `${displayUrl(url)} is not a .safetensors file or a *.safetensors.index.json (remote checkpoints are read by Range requests, which only safetensors is laid out for)`, 'remote-format');
  }
  const generic = sharded || fileName === 'model.safetensors';
  const name = generic && urlFolderName(url) ? urlFolderName(url) : fileName;
  return { url, name, layout: sharded ? 'sharded' : 'file' };
}

/** Parses a `--urls` file: one http(s) URL per line; blank lines and `#` comments skipped. */
export async function readUrlList(file: string): Promise<ResolvedRemote> {
  let text: string;
  try {
    text = await fsp.readFile(file, 'utf8');
  } catch (e) {
    throw new InputError(file, `cannot read the URL list (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, 'unreadable');
  }
  const checkpoints: RemoteCheckpoint[] = [];
  const names = new Map<string, number>();
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    let url: URL;
    try {
      url = new URL(line);
    } catch {
      throw new InputError(`${file}:${i + 1}`, `not a URL: ${JSON.stringify(displayUrl(line).slice(0, 80))}`, 'bad-url');
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new InputError(`${file}:${i + 1}`, `${url.protocol} URLs are not supported (http or https)`, 'bad-url');
    const c = remoteCheckpoint(url.href, file, i + 1);
    const seen = names.get(c.name);
    if (seen !== undefined) throw new InputError(`${file}:${i + 1}`, `checkpoint name ${c.name} (from ${displayUrl(url.href)}) repeats line ${seen}`, 'duplicate-name');
    names.set(c.name, i + 1);
    checkpoints.push(c);
  });
  if (checkpoints.length === 0) throw new InputError(file, 'lists no URLs', 'empty-folder');
  return { label: file, checkpoints };
}

/** The Hub's address: `HF_ENDPOINT` (a mirror, or a test's local server) or huggingface.co. */
export function hubEndpoint(env: NodeJS.ProcessEnv = process.env): string {
  return (env.HF_ENDPOINT || 'https://huggingface.co').replace(/\/+$/, '');
}

/**
 * `hf://org/model` at each revision: the revision's file list through @huggingface/hub, the
 * checkpoint picked as in a local folder (an index, else model.safetensors, else the one
 * .safetensors file), fetched from `<endpoint>/<repo>/resolve/<revision>/<file>`. The
 * checkpoint is named by its revision, whose step orders it.
 */
export async function resolveHub(repo: string, revisions: string[]): Promise<ResolvedRemote> {
  const { listFiles } = await import('@huggingface/hub');
  const endpoint = hubEndpoint();
  const label = `hf://${repo}`;
  const checkpoints: RemoteCheckpoint[] = [];
  for (const rev of revisions) {
    const where = `${label}@${rev}`;
    const files: string[] = [];
    try {
      for await (const f of listFiles({ repo, revision: rev, hubUrl: endpoint, accessToken: process.env.HF_TOKEN || undefined })) {
        if (f.type === 'file') files.push(f.path);
      }
    } catch (e) {
      const status = (e as { statusCode?: number }).statusCode;
      const why = status ? `HTTP ${status}${status === 401 || status === 403 ? ' (set HF_TOKEN for a private or gated repository)' : status === 404 ? ' (no such repository or revision)' : ''}` : (e as Error).message.split('\n')[0];
      throw new InputError(where, `cannot list the files: ${why}`, status === 401 || status === 403 ? 'remote-denied' : status === 404 ? 'remote-missing' : 'remote-unavailable');
    }
    const indexes = files.filter((f) => f.endsWith('.safetensors.index.json') && !f.includes('/'));
    const plain = files.filter((f) => f.endsWith('.safetensors') && !f.includes('/'));
    let pick: string | undefined;
    if (indexes.length) pick = indexes.includes('model.safetensors.index.json') ? 'model.safetensors.index.json' : indexes.sort()[0];
    else if (plain.includes('model.safetensors')) pick = 'model.safetensors';
    else if (plain.length === 1) pick = plain[0];
    if (!pick) throw new InputError(where, plain.length > 1 ? `holds ${plain.length} .safetensors files but no model.safetensors or index saying which make up the model` : 'holds no .safetensors checkpoint at its top level', 'empty-folder');
    const url = `${endpoint}/${repo}/resolve/${encodeURIComponent(rev)}/${encodeURIComponent(pick)}`;
    checkpoints.push({ url, name: rev, layout: pick.endsWith('.index.json') ? 'sharded' : 'file' });
  }
  return { label, checkpoints };
}

export function resolveRemote(input: RemoteInput): Promise<ResolvedRemote> {
  return input.kind === 'urls' ? readUrlList(input.file) : resolveHub(input.repo, input.revisions);
}
