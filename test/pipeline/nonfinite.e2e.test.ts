/**
 * NaN / ±Inf in a modelled tensor: an error naming the checkpoint (by step) and the tensor,
 * with no output — unless --skip-nonfinite leaves those parameters out of the model.
 */
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { openCmdModel } from '../../src/output/model-reader.ts';
import { originalTensors } from '../../src/reconstruct/checkpoint-tensors.ts';
import { decodeInto, encodeFloats } from '../../src/formats/dtype.ts';
import { writeNpz } from '../../src/formats/npz.ts';
import { runCli } from '../helpers/cli.ts';
import { copyInto, fixture, tempDir } from '../helpers/tmp.ts';

const lenet = fixture('lenet5-fmnist', 'npz');

/** Five real checkpoints, the fourth with NaN and +Inf written into one tensor. */
async function poisoned(): Promise<{ dir: string; tensor: string; elements: number[] }> {
  const dir = tempDir();
  const files = readdirSync(lenet).sort().slice(0, 5);
  for (const f of files) copyInto(dir, path.join(lenet, f));
  const set = await loadCheckpointSet(dir, { to: 5 });
  const c = set.checkpoints[3];
  const tensors = originalTensors(c);
  const target = tensors.find((t) => t.name === 'classifier.2.weight')!;
  const n = target.shape.reduce((a, b) => a * b, 1);
  const v = new Float64Array(n);
  decodeInto(target.dtype, target.data, n, v);
  const elements = [17, 4000];
  v[elements[0]] = NaN;
  v[elements[1]] = Infinity;
  target.data = encodeFloats(target.dtype, v);
  await writeNpz(path.join(dir, files[3]), tensors);
  return { dir, tensor: target.name, elements };
}

describe('non-finite values', () => {
  it('stop the run with one line naming the checkpoint step and the tensor, and no output', async () => {
    const { dir, tensor } = await poisoned();
    const out = path.join(tempDir(), 'out');
    const r = runCli(['analyze', dir, '-o', out, '--samples', '300', '--modes', '4']);
    expect(r.status).toBe(2);
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('epoch_004.npz');
    expect(lines[0]).toContain(tensor);
    expect(lines[0]).toMatch(/step 4/);
    expect(existsSync(out)).toBe(false);
  });

  for (const warmup of [2, 3]) {
    it(`stop an online run (--warmup ${warmup}: the checkpoint is ${warmup === 2 ? 'after' : 'the end of'} the warm-up) the same way`, async () => {
      const { dir, tensor, elements } = await poisoned();
      const out = path.join(tempDir(), 'out');
      const r = runCli(['analyze', dir, '-o', out, '--samples', '300', '--modes', '4', '--online', '--warmup', String(warmup), '--workers', '2']);
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('epoch_004.npz');
      expect(lines[0]).toMatch(/step 4/);
      if (warmup === 2) expect(lines[0]).toContain(`tensor ${tensor} element ${elements[0]} is NaN`);
      expect(existsSync(out)).toBe(false);
    });
  }

  it('--skip-nonfinite leaves exactly those parameters out and reconstruct carries them as-is', async () => {
    const { dir, tensor, elements } = await poisoned();
    const out = path.join(tempDir(), 'out');
    const r = runCli(['reconstruct', dir, '-o', out, '--samples', '300', '--modes', '4', '--skip-nonfinite', '--checkpoints', 'all', '--avg-last', '0', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.method.skippedNonFinite).toBe(2);
    expect(report.checkpoints.every((c: { relativeError: unknown }) => typeof c.relativeError === 'number')).toBe(true);
    expect(report.modes.reduce((s: number, m: { assignedCount: number }) => s + m.assignedCount, 0)).toBe(report.input.modelledParameters - 2);
    const model = await openCmdModel(path.join(out, 'cmd-model.safetensors'));
    const n = 84 * 120;
    const mode = new Float64Array(n);
    const a = new Float64Array(n);
    model.read(tensor, 'mode', 0, n, mode);
    model.read(tensor, 'a', 0, n, a);
    expect(elements.map((e) => mode[e])).toEqual([255, 255]);
    expect(Array.from(mode).filter((m) => m === 255)).toHaveLength(2);
    expect(a.every(Number.isFinite)).toBe(true);
    model.close();
    // The reconstruction of the poisoned checkpoint carries the original NaN and +Inf.
    const rec = await loadCheckpointSet(path.join(out, 'reconstructed'), { include: ['epoch_004.npz'], minCheckpoints: 1 });
    const t = rec.checkpoints[0].contents.tensors.find((x) => x.name === tensor)!;
    const values = originalTensors(rec.checkpoints[0]).find((x) => x.name === tensor)!;
    const v = new Float64Array(n);
    decodeInto(values.dtype, values.data, n, v);
    expect(Number.isNaN(v[elements[0]])).toBe(true);
    expect(v[elements[1]]).toBe(Infinity);
    expect(v.filter((x) => !Number.isFinite(x))).toHaveLength(2);
    expect(t.shape).toEqual([84, 120]);
  });
});
