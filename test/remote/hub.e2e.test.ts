/**
 * `cmd analyze|inspect hf://org/model --revisions …` against a Hub-shaped server on 127.0.0.1
 * (`HF_ENDPOINT`): files listed through @huggingface/hub, fetched from `/resolve/<rev>/<file>`,
 * which answers 302 to another port with a signed URL. The token goes to the Hub only; Range
 * survives the redirect; neither the token nor the signature reaches an output.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lenetSafetensors, runCliAsync, startHubServer, startStaticServer, type TestServer } from './servers.ts';
import { modelParts, outputsOf } from './model-parts.ts';

const TOKEN = 'hf_SECRETTOKEN';
const REVISIONS = ['step1000', 'step2000', 'step3000', 'step4000', 'step5000'];
let root: string;
let hubRoot: string;
let local: string;
let files: TestServer;
let hub: TestServer;
const args = ['--samples', '200', '--modes', '4', '--workers', '2'];

beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'cmd-hub-'));
  local = path.join(root, 'local');
  hubRoot = path.join(root, 'hub');
  fs.mkdirSync(local);
  const names = await lenetSafetensors(local, REVISIONS.length);
  // The same checkpoints as revisions of one Hub repository, each with a config beside it.
  names.forEach((n, i) => {
    fs.mkdirSync(path.join(hubRoot, REVISIONS[i]), { recursive: true });
    fs.copyFileSync(path.join(local, n), path.join(hubRoot, REVISIONS[i], 'model.safetensors'));
    fs.writeFileSync(path.join(hubRoot, REVISIONS[i], 'config.json'), '{}');
    fs.renameSync(path.join(local, n), path.join(local, `${REVISIONS[i]}.safetensors`));
  });
  files = await startStaticServer(hubRoot);
  hub = await startHubServer(hubRoot, 'org/model', files, TOKEN);
});

afterAll(async () => {
  await hub?.close();
  await files?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

const env = () => ({ HF_ENDPOINT: hub.base, HF_TOKEN: TOKEN, CMD_HTTP_BACKOFF_MS: '10' });

describe('hf://org/model --revisions', () => {
  it('fits the model the local run fits, the token sent to the Hub only, Range kept across the redirect', async () => {
    const l = await runCliAsync(['analyze', local, '-o', path.join(root, 'out-local'), ...args]);
    expect(l.status, l.stderr).toBe(0);
    const out = path.join(root, 'out-hub');
    // Revisions in any order: they are ordered by the step in their names.
    const r = await runCliAsync(['analyze', 'hf://org/model', '--revisions', [...REVISIONS].reverse().join(','), '-o', out, ...args], env());
    expect(r.status, r.stderr).toBe(0);
    const a = modelParts(path.join(root, 'out-local', 'cmd-model.safetensors'));
    const b = modelParts(path.join(out, 'cmd-model.safetensors'));
    expect(b.dataSha256).toBe(a.dataSha256);
    expect(JSON.parse(b.metadata['cmd.source'])).toEqual({ dir: 'hf://org/model', format: 'safetensors' });
    expect(JSON.parse(b.metadata['cmd.checkpoints']).map((c: { name: string }) => c.name)).toEqual(REVISIONS);

    expect(hub.log.some((e) => e.path.startsWith('/api/models/org/model/tree/step1000'))).toBe(true);
    const resolves = hub.log.filter((e) => e.path.includes('/resolve/'));
    expect(resolves.length).toBeGreaterThan(0);
    for (const e of [...hub.log]) expect(e.authorization).toBe(`Bearer ${TOKEN}`);
    for (const e of resolves) expect(e.range).toMatch(/^bytes=\d+-\d+$/);
    expect(files.log.length).toBe(resolves.length);
    for (const e of files.log) {
      expect(e.authorization).toBeUndefined();
      expect(e.range).toMatch(/^bytes=\d+-\d+$/);
      expect(e.status).toBe(206);
    }
    for (const [file, text] of outputsOf(out)) {
      expect(text.includes(TOKEN), file).toBe(false);
      expect(text.includes('secret-sig'), file).toBe(false);
    }
    expect(r.stderr).not.toContain(TOKEN);
  });

  it('inspect names each checkpoint by its revision', async () => {
    const r = await runCliAsync(['inspect', 'hf://org/model', '--revisions', 'step3000,step1000,step2000', '--json'], env());
    expect(r.status, r.stderr).toBe(0);
    const d = JSON.parse(r.stdout);
    expect(d.dir).toBe('hf://org/model');
    expect(d.checkpoints.map((c: { name: string; step: number }) => [c.name, c.step])).toEqual([['step1000', 1000], ['step2000', 2000], ['step3000', 3000]]);
  });

  it('exits 2 with one line without HF_TOKEN (401), for a missing revision (404), and without --revisions', async () => {
    const cases: [string[], Record<string, string>, RegExp][] = [
      [['inspect', 'hf://org/model', '--revisions', 'step1000,step2000'], { HF_ENDPOINT: hub.base, HF_TOKEN: '' }, /^cmd: hf:\/\/org\/model@step1000: cannot list the files: HTTP 401 \(set HF_TOKEN/],
      [['inspect', 'hf://org/model', '--revisions', 'step1000,step9999'], env(), /^cmd: hf:\/\/org\/model@step9999: cannot list the files: HTTP 404/],
      [['inspect', 'hf://org/model'], env(), /needs --revisions/],
    ];
    for (const [argv, e, message] of cases) {
      const r = await runCliAsync(argv, e);
      expect(r.status, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
      expect(r.stderr).toMatch(message);
      expect(r.stderr).not.toContain(TOKEN);
    }
  });
});
