/**
 * Ctrl-C during `cmd analyze`: the process exits 130 within a few seconds and leaves
 * neither the output folder nor its `.<out>.partial-*` staging folder behind.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { resnet18Tensors, writeSyntheticCheckpoints } from '../../scripts/synthetic.mjs';
import { repoRoot, tempDir } from '../helpers/tmp.ts';

const cli = path.join(repoRoot, 'bin', 'cmd.js');
let input: string;

beforeAll(() => {
  // 2.8M parameters × 40 checkpoints (450 MB): several seconds of pass 2 on one worker.
  input = fs.mkdtempSync(path.join(os.tmpdir(), 'cmd-interrupt-in-'));
  writeSyntheticCheckpoints(input, { tensors: resnet18Tensors(0.25), checkpoints: 40, modes: 10, seed: 5 });
});

afterAll(() => {
  fs.rmSync(input, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The staging folder's model file, once pass 2 is about to start (empty string: none yet). */
function stagedModel(parent: string): string {
  for (const d of fs.readdirSync(parent)) {
    if (!d.startsWith('.out.partial-')) continue;
    const f = path.join(parent, d, 'cmd-model.safetensors');
    if (fs.existsSync(f)) return f;
  }
  return '';
}

const hasStaging = (parent: string) => fs.readdirSync(parent).some((d) => d.startsWith('.out.partial-'));

/**
 * Starts analyze, waits for `ready(parent)` (polling) and `delayMs` more, sends SIGINT and reports how the
 * process ended. A run that ignores SIGINT fails the 15 s hang guard below (a guard against a
 * stuck process, not an assertion on speed: the run would otherwise finish with outputs).
 */
async function interruptWhen(ready: (parent: string) => boolean, delayMs: number, extra: string[]) {
  const parent = tempDir('cmd-interrupt-out-');
  const out = path.join(parent, 'out');
  const child = spawn(process.execPath, [cli, 'analyze', input, '-o', out, '--modes', '10', '--samples', '1000', '--quiet', ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  const ended = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  let exitedEarly = false;
  void ended.then(() => (exitedEarly = true));
  const deadline = Date.now() + 60_000;
  while (!ready(parent)) {
    if (exitedEarly) throw new Error(`analyze ended before it could be interrupted: ${stderr}`);
    if (Date.now() > deadline) throw new Error('analyze never reached the stage to interrupt');
    await sleep(10);
  }
  await sleep(delayMs);
  if (exitedEarly) throw new Error(`analyze ended before it could be interrupted: ${stderr}`);
  child.kill('SIGINT');
  const end = await Promise.race([ended, sleep(15_000).then(() => undefined)]);
  if (!end) {
    child.kill('SIGKILL');
    throw new Error('analyze did not exit within 15 s of SIGINT');
  }
  // A shell reports death by SIGINT as 128 + 2 = 130, same as exiting with 130.
  const status = end.code ?? (end.signal === 'SIGINT' ? 130 : -1);
  return { status, stderr, left: fs.readdirSync(parent) };
}

describe('cmd analyze on SIGINT', () => {
  it('exits 130 and leaves nothing behind when interrupted during pass 2', async () => {
    // Pass 2 has started once the pre-sized model file exists; let it run a little longer.
    const r = await interruptWhen((p) => stagedModel(p) !== '', 100, ['--workers', '1', '--chunk-size', '5000']);
    expect(r.status).toBe(130);
    expect(r.left).toEqual([]);
    expect(r.stderr).toMatch(/interrupted/);
  });

  it('exits 130 and leaves nothing behind when interrupted before pass 2', async () => {
    const r = await interruptWhen(hasStaging, 0, ['--workers', '2']);
    expect(r.status).toBe(130);
    expect(r.left).toEqual([]);
  });
});
