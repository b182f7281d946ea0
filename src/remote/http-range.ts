/**
 * The HTTP Range client every remote read goes through (docs/scale-out.md, "Checkpoints over
 * HTTP and the Hugging Face Hub"): at most `connections` requests in flight, retries with
 * exponential back-off on 5xx, 408/429, timeouts, dropped connections and truncated bodies, and
 * one-line InputErrors (exit 2) for what retrying cannot fix: 401/403/404, a server that answers a
 * Range request with the whole body (200), and a file whose ETag or size changed during the run.
 * Redirects are followed by hand so that Range is kept and Authorization dropped when the
 * redirect leaves the host. Errors name a file by scheme://host/path (src/remote/url.ts).
 */
import http from 'node:http';
import https from 'node:https';
import { InputError } from '../errors.ts';
import { displayUrl } from './url.ts';

/** What the first answer told about a remote file; later answers must agree. */
export interface RemoteFileFacts {
  url: string;
  size: number;
  etag?: string;
  /** Last-Modified in ms since the epoch (0 when the server sends none). */
  mtimeMs: number;
}

export interface RangeClientOptions {
  /** Requests in flight at once (and sockets per host). */
  connections?: number;
  /** Attempts after the first, for transient failures. */
  retries?: number;
  /** An answer (headers or the next body bytes) slower than this is a transient failure. */
  timeoutMs?: number;
  /** First back-off delay; doubles per attempt. */
  backoffMs?: number;
  /** The Authorization header for a URL, or undefined (never sent after a cross-host redirect). */
  authorization?: (url: URL) => string | undefined;
}

/** Defaults, each overridable from the environment (tests shorten the timeouts). */
export function rangeClientDefaults(env: NodeJS.ProcessEnv = process.env): Required<Omit<RangeClientOptions, 'authorization'>> {
  const num = (name: string, fallback: number) => {
    const v = Number(env[name]);
    return env[name] !== undefined && Number.isFinite(v) && v >= 0 ? v : fallback;
  };
  return {
    connections: Math.max(1, num('CMD_HTTP_CONNECTIONS', 8)),
    retries: num('CMD_HTTP_RETRIES', 4),
    timeoutMs: num('CMD_HTTP_TIMEOUT_MS', 30_000),
    backoffMs: num('CMD_HTTP_BACKOFF_MS', 250),
  };
}

/**
 * The Hub token goes only to the Hub's own host (`HF_ENDPOINT`, default huggingface.co): a
 * presigned object-store URL carries its own signature.
 */
export function hubAuthorization(env: NodeJS.ProcessEnv = process.env): (url: URL) => string | undefined {
  const token = env.HF_TOKEN;
  if (!token) return () => undefined;
  const hub = new URL(env.HF_ENDPOINT || 'https://huggingface.co');
  return (url) => (url.host === hub.host && url.protocol === hub.protocol ? `Bearer ${token}` : undefined);
}

/** A failure worth another attempt. */
class Transient extends Error {}

const MAX_REDIRECTS = 5;

export class RangeClient {
  /** Body bytes received, failed attempts included. */
  fetchedBytes = 0;
  /** Requests sent (redirect hops included). */
  requests = 0;
  private readonly opts: Required<Omit<RangeClientOptions, 'authorization'>>;
  private readonly authorization: (url: URL) => string | undefined;
  private readonly known = new Map<string, RemoteFileFacts>();
  private readonly agents = { http: new http.Agent({ keepAlive: true }), https: new https.Agent({ keepAlive: true }) };
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(options: RangeClientOptions = {}) {
    const d = rangeClientDefaults();
    this.opts = {
      connections: options.connections ?? d.connections,
      retries: options.retries ?? d.retries,
      timeoutMs: options.timeoutMs ?? d.timeoutMs,
      backoffMs: options.backoffMs ?? d.backoffMs,
    };
    this.authorization = options.authorization ?? hubAuthorization();
    this.agents.http.maxSockets = this.opts.connections;
    this.agents.https.maxSockets = this.opts.connections;
  }

  get connections(): number {
    return this.opts.connections;
  }

  /** Facts learned (or given) for `url`. */
  facts(url: string): RemoteFileFacts | undefined {
    return this.known.get(url);
  }

  /** Seeds what a file must look like (a worker gets them from the main thread's header reads). */
  expect(facts: readonly RemoteFileFacts[]): void {
    for (const f of facts) this.known.set(f.url, f);
  }

  /**
   * Bytes [start, start + length) of `url`. With `upTo`, fewer come back when the file ends
   * first (the first read of a header, before the size is known).
   */
  async range(url: string, start: number, length: number, upTo = false): Promise<Uint8Array> {
    if (length === 0) return new Uint8Array(0);
    return this.withRetries(url, () => this.once(url, { Range: `bytes=${start}-${start + length - 1}` }, { start, length, upTo }));
  }

  /** The whole body of a small file (a sharded index), refused beyond `maxBytes`. */
  async whole(url: string, maxBytes: number): Promise<Uint8Array> {
    return this.withRetries(url, () => this.once(url, {}, { maxBytes }));
  }

  close(): void {
    this.agents.http.destroy();
    this.agents.https.destroy();
  }

  private async withRetries(url: string, attempt: () => Promise<Uint8Array>): Promise<Uint8Array> {
    let last: Error | undefined;
    for (let i = 0; i <= this.opts.retries; i++) {
      if (i > 0) await sleep(this.opts.backoffMs * 2 ** (i - 1));
      await this.acquire();
      try {
        return await attempt();
      } catch (e) {
        if (!(e instanceof Transient)) throw e;
        last = e;
      } finally {
        this.release();
      }
    }
    throw new InputError(displayUrl(url), `${last?.message ?? 'failed'} (gave up after ${this.opts.retries + 1} attempts)`, 'remote-unavailable');
  }

  private acquire(): Promise<void> {
    if (this.active < this.opts.connections) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise((resolve) => this.waiting.push(() => resolve()));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.active--;
  }

  /** One request, following redirects by hand. */
  private async once(url: string, headers: Record<string, string>, want: { start?: number; length?: number; upTo?: boolean; maxBytes?: number }): Promise<Uint8Array> {
    const origin = new URL(url);
    let current = origin;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const h: Record<string, string> = { ...headers, 'Accept-Encoding': 'identity' };
      // Authorization only while on the host it was meant for; Range is kept on every hop.
      if (current.host === origin.host) {
        const auth = this.authorization(current);
        if (auth) h.Authorization = auth;
      }
      const res = await this.send(current, h);
      const status = res.statusCode ?? 0;
      if (status >= 300 && status < 400 && status !== 304) {
        const location = res.headers.location;
        res.destroy();
        if (!location) throw new InputError(displayUrl(url), `HTTP ${status} without a Location header`, 'remote-redirect');
        current = new URL(location, current);
        continue;
      }
      return this.answer(url, res, status, want);
    }
    throw new InputError(displayUrl(url), `more than ${MAX_REDIRECTS} redirects`, 'remote-redirect');
  }

  private send(url: URL, headers: Record<string, string>): Promise<http.IncomingMessage> {
    const isHttps = url.protocol === 'https:';
    if (!isHttps && url.protocol !== 'http:') return Promise.reject(new InputError(displayUrl(url.href), `unsupported scheme ${url.protocol}`, 'remote-scheme'));
    this.requests++;
    return new Promise((resolve, reject) => {
      const req = (isHttps ? https : http).request(url, { method: 'GET', headers, agent: isHttps ? this.agents.https : this.agents.http }, resolve);
      req.setTimeout(this.opts.timeoutMs, () => req.destroy(new Transient(`no answer within ${this.opts.timeoutMs} ms`)));
      req.on('error', (e) => reject(e instanceof Transient ? e : new Transient(`connection failed (${(e as NodeJS.ErrnoException).code ?? e.message})`)));
      req.end();
    });
  }

  private async answer(url: string, res: http.IncomingMessage, status: number, want: { start?: number; length?: number; upTo?: boolean; maxBytes?: number }): Promise<Uint8Array> {
    const name = displayUrl(url);
    const refuse = (rule: string, message: string): never => {
      res.destroy();
      throw new InputError(name, message, rule);
    };
    if (status === 401 || status === 403) refuse('remote-denied', `HTTP ${status} (${status === 401 ? 'unauthorized' : 'forbidden'}); check HF_TOKEN or the URL's signature`);
    if (status === 404 || status === 410) refuse('remote-missing', `HTTP ${status} (not found)`);
    if (status >= 500 || status === 408 || status === 429) {
      res.destroy();
      throw new Transient(`HTTP ${status}`);
    }
    const ranged = want.start !== undefined;
    if (ranged && status === 200) refuse('remote-no-range', 'the server answered a Range request with the whole file (HTTP 200); it must support HTTP Range requests (206)');
    if (status === 416) refuse('remote-changed', 'HTTP 416 (range not satisfiable): the file is shorter than when its header was read');
    if (status !== (ranged ? 206 : 200)) refuse('remote-status', `unexpected HTTP ${status}`);

    let expected: number;
    let total: number | undefined;
    if (ranged) {
      const m = /^bytes (\d+)-(\d+)\/(\d+|\*)$/.exec(String(res.headers['content-range'] ?? '').trim());
      if (!m) refuse('remote-no-range', `HTTP 206 without a usable Content-Range (${JSON.stringify(res.headers['content-range'] ?? null)})`);
      const [first, last] = [Number(m![1]), Number(m![2])];
      total = m![3] === '*' ? undefined : Number(m![3]);
      const wantLast = want.start! + want.length! - 1;
      const shortAtEnd = want.upTo && total !== undefined && last === total - 1 && last < wantLast;
      if (first !== want.start || (last !== wantLast && !shortAtEnd)) refuse('remote-range-mismatch', `asked for bytes ${want.start}-${wantLast}, the server sent ${first}-${last}`);
      expected = last - first + 1;
    } else {
      const len = res.headers['content-length'];
      expected = len === undefined ? -1 : Number(len);
      total = expected >= 0 ? expected : undefined;
      if (want.maxBytes !== undefined && expected > want.maxBytes) refuse('remote-too-large', `${expected} bytes, over the ${want.maxBytes}-byte limit`);
    }
    this.checkUnchanged(url, name, res, total, refuse);

    const body = await this.readBody(res, expected, want.maxBytes, refuse);
    if (expected < 0 && total === undefined) this.checkUnchanged(url, name, res, body.byteLength, refuse);
    return body;
  }

  /** The first answer records ETag and size; a later one that differs means the file was replaced. */
  private checkUnchanged(url: string, name: string, res: http.IncomingMessage, size: number | undefined, refuse: (rule: string, message: string) => never): void {
    const etag = typeof res.headers.etag === 'string' ? res.headers.etag : undefined;
    const seen = this.known.get(url);
    if (!seen) {
      if (size === undefined) return;
      const lm = res.headers['last-modified'] ? Date.parse(String(res.headers['last-modified'])) : NaN;
      this.known.set(url, { url, size, etag, mtimeMs: Number.isFinite(lm) ? lm : 0 });
      return;
    }
    if (size !== undefined && size !== seen.size) refuse('remote-changed', `file changed during the run: ${seen.size} bytes when first read, ${size} now`);
    if (etag !== undefined && seen.etag !== undefined && etag !== seen.etag) refuse('remote-changed', `file changed during the run: ETag ${seen.etag} when first read, ${etag} now`);
  }

  private readBody(res: http.IncomingMessage, expected: number, maxBytes: number | undefined, refuse: (rule: string, message: string) => never): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      const parts: Buffer[] = [];
      let got = 0;
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        res.destroy();
        reject(e);
      };
      res.setTimeout(this.opts.timeoutMs, () => fail(new Transient(`body stalled for ${this.opts.timeoutMs} ms`)));
      res.on('data', (chunk: Buffer) => {
        got += chunk.byteLength;
        this.fetchedBytes += chunk.byteLength;
        if (expected >= 0 && got > expected) return fail(new Transient(`body longer than the ${expected} bytes announced`));
        if (maxBytes !== undefined && got > maxBytes) {
          try {
            refuse('remote-too-large', `over the ${maxBytes}-byte limit`);
          } catch (e) {
            return fail(e as Error);
          }
        }
        parts.push(chunk);
      });
      res.on('error', () => fail(new Transient(`body cut off after ${got} of ${expected} bytes`)));
      res.on('aborted', () => fail(new Transient(`body cut off after ${got} of ${expected} bytes`)));
      res.on('close', () => {
        if (!settled && !res.complete) fail(new Transient(`body cut off after ${got} of ${expected} bytes`));
      });
      res.on('end', () => {
        if (settled) return;
        if (expected >= 0 && got !== expected) return fail(new Transient(`body cut off after ${got} of ${expected} bytes`));
        settled = true;
        const out = Buffer.concat(parts, got);
        resolve(new Uint8Array(out.buffer, out.byteOffset, out.byteLength));
      });
    });
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let shared: RangeClient | undefined;

/** This thread's client (the main thread's header reads and pass 1; one per worker for pass 2). */
export function remoteClient(): RangeClient {
  shared ??= new RangeClient();
  return shared;
}

/** Closes this thread's client (its keep-alive sockets), if one was made. */
export function closeRemoteClient(): void {
  shared?.close();
  shared = undefined;
}

/** Bytes this thread's client has received so far (0 when no remote file was read). */
export function remoteFetchedBytes(): number {
  return shared?.fetchedBytes ?? 0;
}
