/**
 * Ctrl-C during a shard task that fits on its own thread (`--workers 1`, no worker pool: the
 * fit runs inline, docs/scale-out.md "Benchmark"): the task exits 130 within a few seconds and
 * leaves no shard and no draft behind.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resnet18Tensors, writeSyntheticCheckpoints } from '../../scripts/synthetic.mjs';
import { interrupt, runCli, startCli, waitForStage } from '../helpers/cli.ts';
import { tempDir } from '../helpers/tmp.ts';

let input: string;
let out: string;

beforeAll(() => {
  // 1.1M parameters × 40 checkpoints in chunks of 5,000: a couple of hundred chunks for one task.
  input = tempDir('cmd-shard-interrupt-in-');
  writeSyntheticCheckpoints(input, { tensors: resnet18Tensors(0.1), checkpoints: 40, modes: 5, seed: 7 });
  out = path.join(tempDir('cmd-shard-interrupt-out-'), 'out');
  const r = runCli(['analyze', input, '-o', out, '--modes', '5', '--samples', '300', '--chunk-size', '5000', '--plan-only', '--shards', '1', '-q']);
  if (r.status !== 0) throw new Error(`plan failed: ${r.stderr}`);
});

afterAll(() => {
  fs.rmSync(input, { recursive: true, force: true });
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const shards = () => (fs.existsSync(path.join(out, 'shards')) ? fs.readdirSync(path.join(out, 'shards')) : []);

describe('a one-thread shard task on SIGINT', () => {
  it('exits 130 during the fit and leaves neither its shard nor its draft', async () => {
    const cli = startCli(['analyze', '--plan', out, '--shard', '0/1', '--workers', '1', '-q']);
    // The fit has started once the draft (pre-sized shard file) exists; let it run a little longer.
    await waitForStage(cli, () => shards().some((f) => f.endsWith('.tmp')), 'its fit');
    await sleep(100);
    expect(await interrupt(cli)).toBe(130);
    expect(cli.stderr()).toMatch(/interrupted/);
    expect(shards()).toEqual([]);
    // The same task, not interrupted, completes its shard.
    expect(runCli(['analyze', '--plan', out, '--shard', '0/1', '--workers', '1', '-q']).status).toBe(0);
    expect(shards()).toEqual(['0-of-1']);
  });
});
