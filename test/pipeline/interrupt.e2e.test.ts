/**
 * Ctrl-C during `cmd analyze`: the process exits 130 within a few seconds and leaves
 * neither the output folder nor its `.<out>.partial-*` staging folder behind.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, afterAll, describe, expect, it } from 'vitest';
import { resnet18Tensors, writeSyntheticCheckpoints } from '../../scripts/synthetic.mjs';
import { interrupt, startCli, waitForStage } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

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

/** Starts analyze, interrupts it once `ready(parent)` holds and `delayMs` more have passed. */
async function interruptWhen(ready: (parent: string) => boolean, delayMs: number, extra: string[]) {
  const parent = tempDir('cmd-interrupt-out-');
  const out = path.join(parent, 'out');
  const cli = startCli(['analyze', input, '-o', out, '--modes', '10', '--samples', '1000', '--quiet', ...extra]);
  await waitForStage(cli, () => ready(parent), 'the stage to interrupt');
  await sleep(delayMs);
  const status = await interrupt(cli);
  return { status, stderr: cli.stderr(), left: fs.readdirSync(parent) };
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
