/**
 * The Range client and the pieces around it, in-process: redirects (Range kept, Authorization
 * dropped when the host changes), the connection bound, how ranges are merged (pass 1 fetches at
 * most twice the values' bytes), URL naming and redaction.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { RangeClient, hubAuthorization } from '../../src/remote/http-range.ts';
import { coalesce, type ByteRange } from '../../src/trajectory/remote-bytes.ts';
import { checkpointInput, remoteCheckpoint } from '../../src/remote/inputs.ts';
import { displayUrl, redactUrls } from '../../src/remote/url.ts';
import { REMOTE_PREFIX_BYTES } from '../../src/remote/remote-source.ts';
import { readSafetensorsHeader, writeSafetensors } from '../../src/formats/safetensors.ts';
import { tempDir } from '../helpers/tmp.ts';
import fs from 'node:fs';
import path from 'node:path';

const servers: http.Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function serve(handler: http.RequestListener): Promise<string> {
  const s = http.createServer(handler);
  servers.push(s);
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  return `http://127.0.0.1:${(s.address() as AddressInfo).port}`;
}

const body = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function rangeAnswer(req: http.IncomingMessage, res: http.ServerResponse) {
  const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '');
  if (!m) return res.writeHead(200, { 'Content-Length': body.length }).end(body);
  const [a, b] = [Number(m[1]), Math.min(Number(m[2]), body.length - 1)];
  res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${body.length}`, 'Content-Length': b - a + 1, ETag: '"e1"' }).end(body.subarray(a, b + 1));
}

describe('RangeClient', () => {
  it('keeps Range and drops Authorization on a redirect to another host, keeps both on the same host', async () => {
    const seen: { where: string; range?: string; auth?: string }[] = [];
    const other = await serve((req, res) => {
      seen.push({ where: 'other', range: req.headers.range, auth: req.headers.authorization });
      rangeAnswer(req, res);
    });
    const origin = await serve((req, res) => {
      seen.push({ where: req.url!, range: req.headers.range, auth: req.headers.authorization });
      if (req.url === '/hop') return res.writeHead(307, { Location: '/file' }).end();
      if (req.url === '/away') return res.writeHead(302, { Location: `${other}/file?sig=abc` }).end();
      rangeAnswer(req, res);
    });
    const client = new RangeClient({ authorization: (u) => (u.host === new URL(origin).host ? 'Bearer hf_x' : undefined), backoffMs: 1 });
    try {
      expect(Array.from(await client.range(`${origin}/hop`, 10, 4))).toEqual([10, 11, 12, 13]);
      expect(Array.from(await client.range(`${origin}/away`, 100, 3))).toEqual([100, 101, 102]);
    } finally {
      client.close();
    }
    expect(seen).toEqual([
      { where: '/hop', range: 'bytes=10-13', auth: 'Bearer hf_x' },
      { where: '/file', range: 'bytes=10-13', auth: 'Bearer hf_x' },
      { where: '/away', range: 'bytes=100-102', auth: 'Bearer hf_x' },
      { where: 'other', range: 'bytes=100-102', auth: undefined },
    ]);
  });

  it('never has more requests in flight than its connections', async () => {
    let inFlight = 0;
    let most = 0;
    const base = await serve((req, res) => {
      inFlight++;
      most = Math.max(most, inFlight);
      setTimeout(() => {
        inFlight--;
        rangeAnswer(req, res);
      }, 20);
    });
    const client = new RangeClient({ connections: 3 });
    try {
      await Promise.all(Array.from({ length: 12 }, (_, i) => client.range(`${base}/f`, i, 1)));
    } finally {
      client.close();
    }
    expect(most).toBe(3);
    expect(client.requests).toBe(12);
    expect(client.fetchedBytes).toBe(12);
  });

  it('refuses a body that ends early after the retries, naming the file without its query', async () => {
    const base = await serve((req, res) => {
      res.writeHead(206, { 'Content-Range': 'bytes 0-99/256', 'Content-Length': 100 });
      res.write(body.subarray(0, 10));
      setTimeout(() => res.socket?.destroy(), 5);
    });
    const client = new RangeClient({ retries: 2, backoffMs: 1 });
    try {
      const e = await client.range(`${base}/f.safetensors?X-Amz-Signature=SECRET`, 0, 100).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).message).toBe(`${base}/f.safetensors: body cut off after 10 of 100 bytes (gave up after 3 attempts)`);
    } finally {
      client.close();
    }
  });

  it('sends the Hub token only to the Hub host', () => {
    const auth = hubAuthorization({ HF_TOKEN: 'hf_t', HF_ENDPOINT: 'http://127.0.0.1:9' });
    expect(auth(new URL('http://127.0.0.1:9/org/m/resolve/main/model.safetensors'))).toBe('Bearer hf_t');
    expect(auth(new URL('http://127.0.0.1:10/x'))).toBeUndefined();
    expect(auth(new URL('https://cdn.example/x'))).toBeUndefined();
    expect(hubAuthorization({})(new URL('https://huggingface.co/x'))).toBeUndefined();
  });
});

describe('safetensors headers by Range requests', () => {
  it('reads a header longer than the first request like the local reader, fetching each header byte once', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'long-header.safetensors');
    const tensors = Array.from({ length: 60 }, (_, i) => ({ name: `layers.${i}.attention.query_key_value.weight`, dtype: 'F32' as const, shape: [2, 3], data: new Uint8Array(24).fill(i) }));
    await writeSafetensors(file, tensors);
    const bytes = fs.readFileSync(file);
    const headerLength = 8 + Number(bytes.readBigUInt64LE(0));
    expect(headerLength).toBeGreaterThan(REMOTE_PREFIX_BYTES);
    const ranges: string[] = [];
    const base = await serve((req, res) => {
      ranges.push(req.headers.range ?? '');
      const m = /^bytes=(\d+)-(\d+)$/.exec(req.headers.range ?? '')!;
      const [a, b] = [Number(m[1]), Math.min(Number(m[2]), bytes.length - 1)];
      res.writeHead(206, { 'Content-Range': `bytes ${a}-${b}/${bytes.length}`, 'Content-Length': b - a + 1 }).end(bytes.subarray(a, b + 1));
    });
    const url = `${base}/long-header.safetensors?sig=1`;
    const remote = await readSafetensorsHeader(url);
    const local = await readSafetensorsHeader(file);
    expect(remote.tensors.map((t) => ({ ...t, spans: t.spans.map((s) => ({ ...s, path: '' })) }))).toEqual(local.tensors.map((t) => ({ ...t, spans: t.spans.map((s) => ({ ...s, path: '' })) })));
    expect(remote.tensors[0].spans[0].path).toBe(url);
    expect(ranges).toEqual([`bytes=0-${REMOTE_PREFIX_BYTES - 1}`, `bytes=${REMOTE_PREFIX_BYTES}-${headerLength - 1}`]);
  });
});

describe('merging ranges', () => {
  it('merges across gaps no longer than one value, so at most twice the values are fetched', () => {
    const ranges: ByteRange[] = [];
    let seed = 7;
    for (let i = 0; i < 2000; i++) {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      const el = seed % 5000;
      ranges.push({ path: 'http://h/a', start: 100 + el * 4, end: 104 + el * 4 });
    }
    const unique = new Set(ranges.map((r) => r.start)).size;
    const merged = coalesce(ranges, 4);
    const fetched = merged.reduce((s, r) => s + r.end - r.start, 0);
    expect(merged.length).toBeLessThan(unique);
    expect(fetched).toBeGreaterThanOrEqual(unique * 4);
    expect(fetched).toBeLessThanOrEqual(2 * unique * 4);
    for (const r of ranges) expect(merged.some((m) => m.start <= r.start && m.end >= r.end)).toBe(true);
  });

  it('keeps files apart and caps a merged range', () => {
    const merged = coalesce([
      { path: 'b', start: 0, end: 10 },
      { path: 'a', start: 10, end: 20 },
      { path: 'a', start: 0, end: 10 },
      { path: 'a', start: 20, end: 30 },
    ], 0, 20);
    expect(merged).toEqual([{ path: 'a', start: 0, end: 20 }, { path: 'a', start: 20, end: 30 }, { path: 'b', start: 0, end: 10 }]);
  });
});

describe('remote names', () => {
  it('names a checkpoint by its file, or by its folder for model.safetensors and indexes', () => {
    expect(remoteCheckpoint('https://b.s3.example/run/epoch_010.safetensors?X-Amz-Signature=s', 'l', 1)).toEqual({ url: 'https://b.s3.example/run/epoch_010.safetensors?X-Amz-Signature=s', name: 'epoch_010.safetensors', layout: 'file' });
    expect(remoteCheckpoint('https://h/run/checkpoint-1500/model.safetensors', 'l', 1).name).toBe('checkpoint-1500');
    expect(remoteCheckpoint('https://h/run/checkpoint-2000/model.safetensors.index.json', 'l', 1)).toMatchObject({ name: 'checkpoint-2000', layout: 'sharded' });
    expect(() => remoteCheckpoint('https://h/run/epoch_1.npz', 'list.txt', 3)).toThrow(/^list\.txt:3: https:\/\/h\/run\/epoch_1\.npz is not a \.safetensors file/);
  });

  it('shows a URL as scheme://host/path, in errors too', () => {
    expect(displayUrl('https://user:pw@h.example:8443/a/b.safetensors?sig=1#x')).toBe('https://h.example:8443/a/b.safetensors');
    expect(redactUrls('failed: https://h/a?x=1 and http://g/b?y=2.')).toBe('failed: https://h/a and http://g/b.');
    expect(new InputError('https://h/a.safetensors?sig=SECRET', 'HTTP 404').message).toBe('https://h/a.safetensors: HTTP 404');
  });

  it('takes a folder, --urls or hf:// with --revisions, never two of them', () => {
    expect(checkpointInput('runs/a', {})).toBe('runs/a');
    expect(checkpointInput(undefined, { urls: 'u.txt' })).toMatchObject({ kind: 'urls' });
    expect(checkpointInput('hf://org/model', { revisions: 'step1, step2' })).toEqual({ kind: 'hf', repo: 'org/model', revisions: ['step1', 'step2'] });
    expect(() => checkpointInput('runs/a', { urls: 'u.txt' })).toThrow(/not both/);
    expect(() => checkpointInput(undefined, {})).toThrow(/missing required argument 'dir'/);
    expect(() => checkpointInput('hf://org', { revisions: 'a' })).toThrow(/expected hf:\/\/org\/model/);
    expect(() => checkpointInput('runs/a', { revisions: 'a' })).toThrow(/--revisions goes with hf:/);
  });
});
