/**
 * HTTP servers the remote tests start on 127.0.0.1 (random ports): a static file server with
 * Range support and injectable faults, and a Hub-shaped one (the file-list API of
 * @huggingface/hub and `/<org>/<model>/resolve/<rev>/<file>` answering 302 to the static server).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { writeSafetensors } from '../../src/formats/safetensors.ts';
import { ElementReader } from '../../src/trajectory/element-reader.ts';
import { DTYPES } from '../../src/formats/dtype.ts';
import type { TensorToWrite } from '../../src/formats/types.ts';
import { fileURLToPath } from 'node:url';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export interface Faults {
  /** Delay before answering (ms), for the first `slowCount` requests of a file. */
  slowMs?: number;
  slowCount?: number;
  /** This many 503s per file before answering. */
  fail503?: number;
  /** This many answers per file cut off halfway through the body. */
  truncate?: number;
  /** Ignore Range: answer 200 with the whole file. */
  noRange?: boolean;
  /** After this many requests of a file, its ETag changes. */
  etagChangeAfter?: number;
  /** Ranges longer than this (pass 2's, not headers or sampled values) see a new ETag. */
  etagChangeOnLargeRanges?: number;
  /** The first this-many ranges longer than 4 KiB (pass 2's) of each file answer 503. */
  fail503Large?: number;
  /** Fixed status for files whose name matches. */
  status?: { match: RegExp; code: number };
}

export interface RequestLog {
  path: string;
  range?: string;
  authorization?: string;
  status: number;
  bytes: number;
}

export interface TestServer {
  base: string;
  port: number;
  log: RequestLog[];
  faults: Faults;
  close(): Promise<void>;
}

function listen(server: http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** Serves the files under `root` by path, with Range (one range per request) and `faults`. */
export async function startStaticServer(root: string, faults: Faults = {}): Promise<TestServer> {
  const log: RequestLog[] = [];
  const perFile = new Map<string, number>();
  const largeSeen = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const rel = decodeURIComponent(url.pathname);
    const file = path.join(root, rel);
    const n = (perFile.get(rel) ?? 0) + 1;
    perFile.set(rel, n);
    const entry: RequestLog = { path: rel, range: req.headers.range, authorization: req.headers.authorization, status: 0, bytes: 0 };
    log.push(entry);
    const send = (status: number, headers: Record<string, string | number>, body?: Buffer, cut = false) => {
      entry.status = status;
      res.writeHead(status, headers);
      if (!body) return res.end();
      if (cut) {
        entry.bytes = Math.floor(body.length / 2);
        res.write(body.subarray(0, entry.bytes));
        setTimeout(() => res.socket?.destroy(), 5);
        return;
      }
      entry.bytes = body.length;
      res.end(body);
    };
    const answer = () => {
      if (faults.status && faults.status.match.test(rel)) return send(faults.status.code, {});
      if (faults.fail503 && n <= faults.fail503) return send(503, { 'Content-Length': 0 });
      if (!rel.startsWith('/') || rel.includes('..') || !fs.existsSync(file) || !fs.statSync(file).isFile()) return send(404, { 'Content-Length': 0 });
      const data = fs.readFileSync(file);
      const m = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
      const length = m !== null && m[2] !== '' ? Number(m[2]) - Number(m[1]) + 1 : 0;
      const large = faults.etagChangeOnLargeRanges !== undefined && length > faults.etagChangeOnLargeRanges;
      if (faults.fail503Large && length > 4096) {
        const k = (largeSeen.get(rel) ?? 0) + 1;
        largeSeen.set(rel, k);
        if (k <= faults.fail503Large) return send(503, { 'Content-Length': 0 });
      }
      const etag = `"${data.length}-${(faults.etagChangeAfter !== undefined && n > faults.etagChangeAfter) || large ? 'v2' : 'v1'}"`;
      const common = { ETag: etag, 'Last-Modified': new Date(1_700_000_000_000).toUTCString(), 'Accept-Ranges': 'bytes' };
      const cut = faults.truncate !== undefined && n <= faults.truncate;
      if (!m || faults.noRange) return send(200, { ...common, 'Content-Length': data.length }, data, cut);
      const start = Number(m[1]);
      const end = Math.min(m[2] === '' ? data.length - 1 : Number(m[2]), data.length - 1);
      if (start >= data.length) return send(416, { 'Content-Range': `bytes */${data.length}` });
      const body = data.subarray(start, end + 1);
      send(206, { ...common, 'Content-Range': `bytes ${start}-${end}/${data.length}`, 'Content-Length': body.length }, body, cut);
    };
    if (faults.slowMs && n <= (faults.slowCount ?? 1)) setTimeout(answer, faults.slowMs);
    else answer();
  });
  const port = await listen(server);
  return {
    base: `http://127.0.0.1:${port}`,
    port,
    log,
    faults,
    close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }),
  };
}

/**
 * A Hub-shaped server for repository `repo`: revision `rev` holds the files of `<root>/<rev>/`.
 * `/api/models/<repo>/tree/<rev>` lists them (what @huggingface/hub's listFiles reads);
 * `/<repo>/resolve/<rev>/<file>` answers 302 to the static server `files` (another port).
 */
export async function startHubServer(root: string, repo: string, files: TestServer, token?: string): Promise<TestServer> {
  const log: RequestLog[] = [];
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const p = decodeURIComponent(url.pathname);
    const entry: RequestLog = { path: p + url.search, range: req.headers.range, authorization: req.headers.authorization, status: 0, bytes: 0 };
    log.push(entry);
    const send = (status: number, headers: Record<string, string>, body = '') => {
      entry.status = status;
      res.writeHead(status, headers);
      res.end(body);
    };
    if (token && req.headers.authorization !== `Bearer ${token}`) return send(401, { 'Content-Type': 'application/json' }, JSON.stringify({ error: 'Invalid credentials' }));
    const tree = new RegExp(`^/api/models/${repo}/tree/([^/]+)$`).exec(p);
    if (tree) {
      const dir = path.join(root, tree[1]);
      if (!fs.existsSync(dir)) return send(404, { 'Content-Type': 'application/json' }, JSON.stringify({ error: 'Revision not found' }));
      const items = fs.readdirSync(dir).map((f) => ({ type: 'file', path: f, size: fs.statSync(path.join(dir, f)).size, oid: '0'.repeat(40) }));
      return send(200, { 'Content-Type': 'application/json' }, JSON.stringify(items));
    }
    const resolve = new RegExp(`^/${repo}/resolve/([^/]+)/(.+)$`).exec(p);
    if (resolve) return send(302, { Location: `${files.base}/${encodeURIComponent(resolve[1])}/${resolve[2]}?X-Signature=secret-sig` });
    send(404, {});
  });
  const port = await listen(server);
  return { base: `http://127.0.0.1:${port}`, port, log, faults: {}, close: () => new Promise((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** The tensors of the held LeNet-5 checkpoints (fixtures/lenet5-fmnist/npz), first `count`, in file order. */
async function lenetTensors(count: number): Promise<{ name: string; tensors: TensorToWrite[] }[]> {
  const src = path.join(repoRoot, 'fixtures', 'lenet5-fmnist', 'npz');
  const names = fs.readdirSync(src).filter((f) => f.endsWith('.npz')).sort().slice(0, count);
  const io = new ElementReader();
  try {
    const out: { name: string; tensors: TensorToWrite[] }[] = [];
    for (const f of names) {
      const c = await readNpzCheckpoint(path.join(src, f));
      const tensors = c.tensors.map((t) => {
        const bytes = t.shape.reduce((a, b) => a * b, 1) * DTYPES[t.encoding.dtype].bytes;
        const data = new Uint8Array(bytes);
        io.readRaw(t, 0, bytes, data);
        return { name: t.name, dtype: t.dtype, shape: t.shape, data };
      });
      out.push({ name: f.replace(/\.npz$/, ''), tensors });
    }
    return out;
  } finally {
    io.close();
  }
}

/**
 * The held LeNet-5 trajectory rewritten as safetensors by the project's writer (byte-identical
 * to the reference library's, test/formats/safetensors.test.ts): `count` checkpoints
 * `epoch_NNN.safetensors` in `dir`.
 */
export async function lenetSafetensors(dir: string, count = 25): Promise<string[]> {
  const out: string[] = [];
  for (const c of await lenetTensors(count)) {
    await writeSafetensors(path.join(dir, `${c.name}.safetensors`), c.tensors);
    out.push(`${c.name}.safetensors`);
  }
  return out;
}

/**
 * The same checkpoints as Hugging Face sharded folders `checkpoint-<epoch>/` holding two shards
 * and `model.safetensors.index.json` (tensors split in half by name order). Returns the folder names.
 */
export async function lenetSharded(dir: string, count: number): Promise<string[]> {
  const out: string[] = [];
  for (const c of await lenetTensors(count)) {
    const folder = `checkpoint-${Number(c.name.replace(/\D/g, ''))}`;
    fs.mkdirSync(path.join(dir, folder));
    const sorted = [...c.tensors].sort((a, b) => (a.name < b.name ? -1 : 1));
    const half = Math.ceil(sorted.length / 2);
    const shards = [sorted.slice(0, half), sorted.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, part] of shards.entries()) {
      const file = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(path.join(dir, folder, file), part);
      for (const t of part) weightMap[t.name] = file;
    }
    fs.writeFileSync(path.join(dir, folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
    out.push(folder);
  }
  return out;
}

export interface AsyncCliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the built CLI without blocking this process's event loop (the servers live here). */
export function runCliAsync(args: string[], env: Record<string, string> = {}, cwd = repoRoot): Promise<AsyncCliResult> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(repoRoot, 'bin', 'cmd.js'), ...args], { cwd, env: { ...process.env, NO_COLOR: '1', ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}
