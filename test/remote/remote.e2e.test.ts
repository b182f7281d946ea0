/**
 * `cmd analyze|inspect --urls FILE` against a static server with Range on 127.0.0.1: the result
 * equals the local run's, pass 1 fetches about K × T values plus headers, signatures never reach
 * an output, and the servers' faults give retries or one-line errors (exit 2, nothing written).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lenetSafetensors, lenetSharded, runCliAsync, startStaticServer, type Faults, type TestServer } from './servers.ts';
import { modelParts, outputsOf, safetensorsHeaderBytes } from './model-parts.ts';
import { interrupt, startCli, waitForStage } from '../helpers/cli.ts';

const SAMPLES = 300;
const T = 10;
let root: string;
let data: string;
let names: string[];
let server: TestServer;
let urls: string;
let local: string;
let remote: string;
let remoteRun: { status: number | null; stdout: string; stderr: string };

const quick = ['--samples', '100', '--modes', '4', '--workers', '2'];
// Short timeouts and back-off so the fault cases finish in a second or two.
const fastEnv = { CMD_HTTP_TIMEOUT_MS: '400', CMD_HTTP_BACKOFF_MS: '10', CMD_HTTP_RETRIES: '3' };

function urlFile(base: string, dir = root, file = 'urls.txt', query = '?X-Amz-Signature=SECRETSIG&token=SECRETTOK'): string {
  const p = path.join(dir, file);
  fs.writeFileSync(p, `# LeNet-5 over HTTP\n${names.map((n) => `${base}/${n}${query}`).join('\n')}\n`);
  return p;
}

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cmd-remote-'));
  data = path.join(root, 'data');
  fs.mkdirSync(data);
  names = await lenetSafetensors(data, T);
  server = await startStaticServer(data);
  urls = urlFile(server.base);
  local = path.join(root, 'out-local');
  remote = path.join(root, 'out-remote');
  const args = ['--samples', String(SAMPLES), '--modes', '6', '--workers', '2'];
  const l = await runCliAsync(['analyze', data, '-o', local, ...args]);
  expect(l.status, l.stderr).toBe(0);
  remoteRun = await runCliAsync(['analyze', '--urls', urls, '-o', remote, ...args]);
});

afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('analyze --urls', () => {
  it('fits the model the local run fits: same tensors byte for byte, same metadata but the source', () => {
    expect(remoteRun.status, remoteRun.stderr).toBe(0);
    const a = modelParts(path.join(local, 'cmd-model.safetensors'));
    const b = modelParts(path.join(remote, 'cmd-model.safetensors'));
    expect(b.dataSha256).toBe(a.dataSha256);
    expect(b.tensors).toEqual(a.tensors);
    const { 'cmd.source': srcA, ...restA } = a.metadata;
    const { 'cmd.source': srcB, ...restB } = b.metadata;
    expect(restB).toEqual(restA);
    // The only difference: where the checkpoints came from (the folder, or the URL list file).
    expect(JSON.parse(srcA)).toEqual({ dir: data, format: 'safetensors' });
    expect(JSON.parse(srcB)).toEqual({ dir: urls, format: 'safetensors' });
  });

  it('writes a report that differs from the local one only where the source path is (input.dir, and the model header it lengthens)', () => {
    const a = JSON.parse(fs.readFileSync(path.join(local, 'report.json'), 'utf8'));
    const b = JSON.parse(fs.readFileSync(path.join(remote, 'report.json'), 'utf8'));
    expect(b.input.dir).toBe(urls);
    expect(b.provenance.inputs).toBe(a.provenance.inputs);
    expect(b.provenance.model).not.toBe(a.provenance.model);
    // cmd.source in the model's header holds the path, so the model's size (and the ratios made of it) move with its length.
    // (the header is space-padded to a multiple of 8, hence "within 8").
    const longer = Buffer.byteLength(JSON.stringify(urls)) - Buffer.byteLength(JSON.stringify(data));
    expect(Math.abs(b.storage.modelBytes - a.storage.modelBytes - longer)).toBeLessThan(8);
    for (const r of [a, b]) {
      delete r.input.dir;
      delete r.provenance.model;
      for (const k of ['modelBytes', 'compressionVsFinalCheckpoint', 'compressionVsTrajectory']) delete r.storage[k];
    }
    expect(b).toEqual(a);
  });

  it('is byte-identical to the local run (model sha256 and report) when the source path is the same string', async () => {
    // The folder analysed locally is replaced by a URL list file of the same path, so that
    // cmd.source agrees and every other byte must come from the checkpoints' values.
    const same = path.join(root, 'same');
    fs.cpSync(data, same, { recursive: true });
    const args = ['--samples', String(SAMPLES), '--modes', '6', '--workers', '2'];
    const l = await runCliAsync(['analyze', same, '-o', path.join(root, 'same-local'), ...args]);
    expect(l.status, l.stderr).toBe(0);
    fs.rmSync(same, { recursive: true });
    urlFile(server.base, root, 'same');
    const r = await runCliAsync(['analyze', '--urls', same, '-o', path.join(root, 'same-remote'), ...args]);
    expect(r.status, r.stderr).toBe(0);
    const sha = (p: string) => createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    expect(sha(path.join(root, 'same-remote', 'cmd-model.safetensors'))).toBe(sha(path.join(root, 'same-local', 'cmd-model.safetensors')));
    expect(fs.readFileSync(path.join(root, 'same-remote', 'report.json'), 'utf8')).toBe(fs.readFileSync(path.join(root, 'same-local', 'report.json'), 'utf8'));
  });

  it('never writes or prints the query strings (signatures, tokens)', () => {
    for (const [file, text] of outputsOf(remote)) expect(text.includes('SECRET'), file).toBe(false);
    expect(remoteRun.stderr + remoteRun.stdout).not.toContain('SECRET');
  });

  it('counts the bytes fetched: pass 1 is about K × T values plus headers, not whole files', () => {
    const info = JSON.parse(fs.readFileSync(path.join(remote, 'run-info.json'), 'utf8'));
    const r = info.analyze.remote;
    const headers = names.reduce((s, n) => s + safetensorsHeaderBytes(path.join(data, n)), 0);
    const values = SAMPLES * T * 4;
    expect(r.checkpoints).toBe(T);
    expect(r.pass1Bytes).toBeGreaterThanOrEqual(values);
    expect(r.pass1Bytes).toBeLessThanOrEqual(2 * values);
    expect(r.headerBytes + r.pass1Bytes).toBeLessThanOrEqual(2 * (values + headers));
    const fileBytes = names.reduce((s, n) => s + fs.statSync(path.join(data, n)).size, 0);
    // Pass 2 reads every modelled value once: the data sections, never more than the files.
    expect(r.pass2Bytes).toBeGreaterThan(fileBytes - headers - 1024);
    expect(r.pass2Bytes).toBeLessThanOrEqual(fileBytes);
    expect(r.bytesFetched).toBe(r.headerBytes + r.pass1Bytes + r.pass2Bytes);
  });

  it('inspect --urls lists the checkpoints in step order with the names local files get', async () => {
    const shuffled = path.join(root, 'shuffled.txt');
    fs.writeFileSync(shuffled, [...names].reverse().map((n) => `${server.base}/${n}?sig=SECRET`).join('\n'));
    const r = await runCliAsync(['inspect', '--urls', shuffled, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const l = await runCliAsync(['inspect', data, '--json']);
    const a = JSON.parse(l.stdout);
    const b = JSON.parse(r.stdout);
    expect(b.checkpoints).toEqual(a.checkpoints);
    expect(b.tensors).toEqual(a.tensors);
    expect(b.dir).toBe(shuffled);
    expect(r.stdout).not.toContain('SECRET');
  });

  it('refuses a folder and --urls together, a URL as the folder, and --revisions without hf:// (exit 2, one line)', async () => {
    const never = path.join(root, 'never');
    const cases = [
      ['analyze', data, '--urls', urls, '-o', never],
      ['analyze', `${server.base}/epoch_001.safetensors?sig=SECRET`, '-o', never],
      ['analyze', '--revisions', 'a,b', '-o', never],
      ['analyze', 'hf://org/model', '-o', never],
      ['inspect'],
    ];
    for (const args of cases) {
      const r = await runCliAsync(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).not.toContain('SECRET');
    }
    expect(fs.existsSync(never)).toBe(false);
  });
});

describe('faults of the server', () => {
  async function faulty(faults: Faults, name: string) {
    const s = await startStaticServer(data, faults);
    try {
      const out = path.join(root, `out-${name}`);
      const r = await runCliAsync(['analyze', '--urls', urlFile(s.base, root, `urls-${name}.txt`), '-o', out, ...quick], fastEnv);
      return { r, out, log: s.log };
    } finally {
      await s.close();
    }
  }

  it.each([
    ['503 twice, then answers', { fail503: 2 }],
    ['slower than the timeout once per file', { slowMs: 1500, slowCount: 1 }],
    ['cuts the first body of every file off halfway', { truncate: 1 }],
    ['answers 503 to the first pass-2 range of every file (retried in the worker)', { fail503Large: 1 }],
  ] as [string, Faults][])('retries when the server %s, and fits the same model', async (label, faults) => {
    const { r, out, log } = await faulty(faults, label.replace(/\W+/g, '-'));
    expect(r.status, r.stderr).toBe(0);
    const plain = await faulty({}, `plain-${label.replace(/\W+/g, '-')}`);
    expect(plain.r.status, plain.r.stderr).toBe(0);
    // The fault happened: the faulty run needed more requests than the plain one.
    expect(log.length).toBeGreaterThan(plain.log.length);
    expect(modelParts(path.join(out, 'cmd-model.safetensors')).dataSha256).toBe(modelParts(path.join(plain.out, 'cmd-model.safetensors')).dataSha256);
  });

  it.each([
    ['ignores Range (200 with the whole body)', { noRange: true }, /Range/],
    ['changes the file (ETag) during the run', { etagChangeAfter: 1 }, /changed during the run: ETag/],
    ['changes the file (ETag) before pass 2 reads it in a worker', { etagChangeOnLargeRanges: 4096 }, /changed during the run: ETag/],
    ['answers 404 for one file', { status: { match: /epoch_004/, code: 404 } }, /epoch_004\.safetensors: HTTP 404/],
    ['answers 401', { status: { match: /epoch_/, code: 401 } }, /HTTP 401/],
    ['answers 403', { status: { match: /epoch_/, code: 403 } }, /HTTP 403/],
    ['answers 503 every time', { fail503: 1000 }, /HTTP 503 \(gave up after 4 attempts\)/],
  ] as [string, Faults, RegExp][])('exits 2 with one line when the server %s, writing nothing', async (label, faults, message) => {
    const { r, out } = await faulty(faults, label.replace(/\W+/g, '-'));
    expect(r.status, r.stderr).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(message);
    expect(lines[0]).toMatch(/^cmd: http:\/\/127\.0\.0\.1:\d+\/epoch_\d+\.safetensors: /);
    expect(r.stderr).not.toContain('SECRET');
    expect(fs.existsSync(out)).toBe(false);
  });
});

describe('interrupted while fetching', () => {
  it('Ctrl-C during pass 1 over a slow server exits 130 and writes nothing', async () => {
    const s = await startStaticServer(data, { slowMs: 300, slowCount: 1e9 });
    const out = path.join(root, 'out-interrupted');
    try {
      const cli = startCli(['analyze', '--urls', urlFile(s.base, root, 'urls-slow.txt'), '-o', out, ...quick]);
      // Interrupt once pass 1 has started: the server has seen a sampled-value range (4 bytes).
      const sampleRange = (e: { range?: string }) => /^bytes=(\d+)-(\d+)$/.test(e.range ?? '') && Number(/-(\d+)$/.exec(e.range!)![1]) - Number(/=(\d+)/.exec(e.range!)![1]) < 16;
      await waitForStage(cli, () => s.log.some(sampleRange), 'pass 1');
      const atKill = s.log.length;
      expect(await interrupt(cli), cli.stderr()).toBe(130);
      // Pass 1 stops between requests: only those in flight (8 connections) or just started finish,
      // not the hundreds left.
      expect(s.log.length - atKill).toBeLessThanOrEqual(16);
      expect(fs.existsSync(out)).toBe(false);
    } finally {
      await s.close();
    }
  });
});

describe('sharded checkpoints (*.safetensors.index.json) over HTTP', () => {
  it('reads the index and its shards by URL and fits the model of the local folders', async () => {
    const sharded = path.join(root, 'sharded');
    fs.mkdirSync(sharded);
    const folders = await lenetSharded(sharded, 4);
    const s = await startStaticServer(sharded);
    try {
      const list = path.join(root, 'sharded-urls.txt');
      fs.writeFileSync(list, folders.map((f) => `${s.base}/${f}/model.safetensors.index.json?sig=SECRET`).join('\n'));
      const l = await runCliAsync(['analyze', sharded, '-o', path.join(root, 'sharded-local'), ...quick]);
      expect(l.status, l.stderr).toBe(0);
      const r = await runCliAsync(['analyze', '--urls', list, '-o', path.join(root, 'sharded-remote'), ...quick]);
      expect(r.status, r.stderr).toBe(0);
      const a = modelParts(path.join(root, 'sharded-local', 'cmd-model.safetensors'));
      const b = modelParts(path.join(root, 'sharded-remote', 'cmd-model.safetensors'));
      expect(b.dataSha256).toBe(a.dataSha256);
      expect(b.metadata['cmd.checkpoints']).toBe(a.metadata['cmd.checkpoints']);
      // Shards were fetched by Range, relative to the index URL, without its query string.
      expect(s.log.some((e) => /model-00002-of-00002\.safetensors$/.test(e.path) && e.status === 206)).toBe(true);

      // A shard path that leaves the index's folder is refused before anything is fetched from it.
      const index = path.join(sharded, folders[0], 'model.safetensors.index.json');
      const json = JSON.parse(fs.readFileSync(index, 'utf8'));
      json.weight_map[Object.keys(json.weight_map)[0]] = '../checkpoint-2/model-00001-of-00002.safetensors';
      fs.writeFileSync(index, JSON.stringify(json));
      const bad = await runCliAsync(['inspect', '--urls', list]);
      expect(bad.status, bad.stderr).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(/checkpoint-1\/model\.safetensors\.index\.json: shard path .* contains ".."/);
      expect(bad.stderr).not.toContain('SECRET');
    } finally {
      await s.close();
    }
  });
});
