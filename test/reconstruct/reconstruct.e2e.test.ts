/**
 * `cmd reconstruct` end to end: reconstructed checkpoints in every input format equal
 * a ⊙ r(t)[mode] + b to float32 rounding, carry the non-modelled tensors unchanged, keep names,
 * shapes and dtypes; the tfjs ones load and evaluate; a model for another folder is refused.
 */
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { openCmdModel } from '../../src/output/model-reader.ts';
import { ElementReader } from '../../src/trajectory/element-reader.ts';
import { DTYPES, elementCount } from '../../src/formats/dtype.ts';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir, repoRoot } from '../helpers/tmp.ts';

interface FormatCase {
  name: string;
  dir: string;
  extra: string[];
}

const summary = JSON.parse(readFileSync(fixture('lenet5-fmnist', 'official', 'summary.json'), 'utf8'));

const formats: FormatCase[] = [
  { name: 'npz', dir: fixture('lenet5-fmnist', 'npz'), extra: ['--to', '4'] },
  { name: 'npy folders', dir: fixture('lenet5-fmnist', 'npy-dirs'), extra: [] },
  { name: 'safetensors (BatchNorm, I64 buffers)', dir: fixture('resnet20-bn-safetensors'), extra: [] },
  { name: 'tfjs LayersModel', dir: fixture('fmnist-mlp', 'checkpoints'), extra: ['--to', '5'] },
];

async function checkReconstruction(input: string, out: string, selection: string[]) {
  const set = await loadCheckpointSet(input, selection.includes('--to') ? { to: Number(selection[selection.indexOf('--to') + 1]) } : {});
  const model = await openCmdModel(path.join(out, 'cmd-model.safetensors'));
  const T = model.checkpoints.length;
  const recDir = path.join(out, 'reconstructed');
  const io = new ElementReader();
  let checkedModelled = 0;
  let checkedCarried = 0;
  for (const [t, c] of set.checkpoints.entries()) {
    const rec = await loadCheckpointSet(recDir, { include: [c.name], minCheckpoints: 1, format: set.format });
    const r = rec.checkpoints[0].contents;
    expect(r.tensors.map((x) => [x.name, x.dtype, x.shape.join()]).sort()).toEqual(c.contents.tensors.map((x) => [x.name, x.dtype, x.shape.join()]).sort());
    const modelled = new Map(set.space.tensors.map((m) => [m.name, m]));
    for (const orig of c.contents.tensors) {
      const got = r.tensors.find((x) => x.name === orig.name)!;
      const n = elementCount(orig.shape);
      const gv = new Float64Array(n);
      io.read(got, 0, n, gv);
      if (modelled.has(orig.name)) {
        const a = new Float64Array(n);
        const b = new Float64Array(n);
        const m = new Float64Array(n);
        model.read(orig.name, 'a', 0, n, a);
        model.read(orig.name, 'b', 0, n, b);
        model.read(orig.name, 'mode', 0, n, m);
        for (let i = 0; i < n; i++) {
          const expected = Math.fround(Math.fround(a[i] * model.refs[m[i] * T + t]) + b[i]);
          if (gv[i] !== expected) throw new Error(`${c.name} ${orig.name}[${i}]: ${gv[i]} != ${expected}`);
        }
        checkedModelled += n;
      } else {
        const ov = new Float64Array(n);
        io.read(orig, 0, n, ov);
        expect(Array.from(gv)).toEqual(Array.from(ov));
        checkedCarried += n;
      }
    }
  }
  io.close();
  model.close();
  return { checkedModelled, checkedCarried };
}

describe('cmd reconstruct', () => {
  for (const f of formats) {
    it(`writes ${f.name} checkpoints equal to a·r + b, carrying the rest`, async () => {
      const out = path.join(tempDir(), 'out');
      const r = runCli(['reconstruct', f.dir, '-o', out, '--checkpoints', 'all', '--avg-last', '2', '--samples', '300', '--modes', '5', '-q', ...f.extra]);
      expect(r.status, r.stderr).toBe(0);
      const { checkedModelled, checkedCarried } = await checkReconstruction(f.dir, out, f.extra);
      expect(checkedModelled).toBeGreaterThan(0);
      if (f.name.startsWith('safetensors')) expect(checkedCarried).toBeGreaterThan(0);
      const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
      expect(report.outputs.reconstructed.some((p: string) => p.includes('avg-last-2'))).toBe(true);
    });
  }

  it('reconstructs a flat npy + tensor table folder in the same layout', async () => {
    const out = path.join(tempDir(), 'out');
    const table = path.join(tempDir(), 'table.json');
    (await import('node:fs')).writeFileSync(table, JSON.stringify(summary.tensor_order.map((n: string) => [n, summary.tensor_shapes[n]])));
    const r = runCli(['reconstruct', fixture('lenet5-fmnist', 'flat'), '--tensor-table', table, '-o', out, '--checkpoints', 'all', '--samples', '300', '--modes', '4', '-q']);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(path.join(out, 'reconstructed')).sort()).toEqual(['avg-last-3.npy', 'epoch_001.npy', 'epoch_002.npy', 'epoch_003.npy']);
  });

  it('analyze then reconstruct --modes reuses the recorded folder and model; --eval-data evaluates tfjs checkpoints', () => {
    const cwd = tempDir();
    const input = fixture('fmnist-mlp', 'checkpoints');
    expect(runCli(['analyze', input, '--samples', '400', '--modes', '6', '--to', '6', '-q'], { cwd }).status).toBe(0);
    const before = readFileSync(path.join(cwd, 'cmd-out', 'cmd-model.safetensors'));
    const r = runCli(['reconstruct', '--samples', '400', '--modes', '6', '--to', '6', '--eval-data', fixture('fmnist-mlp', 'test'), '--eval-every', '2', '--json'], { cwd });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/using the existing model/);
    expect(readFileSync(path.join(cwd, 'cmd-out', 'cmd-model.safetensors')).equals(before)).toBe(true);
    const report = JSON.parse(r.stdout);
    expect(report.evaluation.method).toBe('tfjs');
    expect(report.evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([1, 3, 5, 6]);
    for (const c of report.evaluation.checkpoints) {
      expect(c.original.accuracy).toBeGreaterThan(0.5);
      expect(c.cmd.accuracy).toBeGreaterThan(0.5);
    }
    const log = JSON.parse(readFileSync(fixture('fmnist-mlp', 'train-log.json'), 'utf8'));
    const epochs = log.epochs ?? log.perEpoch ?? log;
    const acc6 = (Array.isArray(epochs) ? epochs : []).find((e: any) => e.epoch === 6)?.testAccuracy;
    if (acc6 !== undefined) expect(report.evaluation.checkpoints[3].original.accuracy).toBeCloseTo(acc6, 10);
    expect(report.evaluation.average.lastK).toBe(5);
    expect(typeof report.evaluation.final.accuracyDelta).toBe('number');
  });

  it('evaluates the other models of a mode sweep and the EMA / average baselines too', () => {
    const cwd = tempDir();
    const input = fixture('fmnist-mlp', 'checkpoints');
    expect(runCli(['analyze', input, '--samples', '400', '--modes', '6,3', '--baselines', 'all', '--avg-last', '3', '--to', '8', '-q'], { cwd }).status).toBe(0);
    const r = runCli(['reconstruct', '--samples', '400', '--modes', '6', '--avg-last', '3', '--to', '8', '--eval-data', fixture('fmnist-mlp', 'test'), '--eval-every', '4', '--json'], { cwd });
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const sweep = Object.fromEntries(report.modeSweep.map((m: { modesRequested: number; metrics: { accuracy: number } }) => [m.modesRequested, m.metrics.accuracy]));
    expect(sweep[6]).toBe(report.evaluation.final.cmd.accuracy);
    expect(sweep[3]).toBeGreaterThan(0.5);
    const byName = Object.fromEntries(report.baselines.map((b: { name: string; metrics?: { accuracy: number } }) => [b.name, b.metrics?.accuracy]));
    expect(byName['avg-last-3']).toBe(report.evaluation.average.metrics.accuracy);
    expect(byName['ema-0.9']).toBeGreaterThan(0.5);
    expect(byName['ema-0.9']).not.toBe(byName['avg-last-3']);
    for (const name of ['pca-rank-6', 'dmd-rank-6']) expect(byName[name]).toBeGreaterThan(0.5);
  });

  it('--eval-cmd runs the command on original, CMD and averaged checkpoints', async () => {
    const out = path.join(tempDir(), 'out');
    const script = path.join(repoRoot, 'test', 'fixtures-scripts', 'checkpoint-score.mjs');
    const r = runCli(['reconstruct', fixture('lenet5-fmnist', 'npz'), '--to', '5', '-o', out, '--samples', '300', '--modes', '4', '--avg-last', '3', '--eval-cmd', `node ${script} {checkpoint}`, '--eval-every', '1', '--eval-jobs', '2', '--json', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.evaluation.checkpoints).toHaveLength(5);
    // The original's score computed here independently from the npz file.
    const set = await loadCheckpointSet(fixture('lenet5-fmnist', 'npz'), { to: 5 });
    const io = new ElementReader();
    let sum = 0;
    let count = 0;
    for (const t of set.checkpoints[4].contents.tensors) {
      const n = elementCount(t.shape);
      const v = new Float64Array(n);
      io.read(t, 0, n, v);
      for (const x of v) sum += Math.abs(x);
      count += n;
    }
    io.close();
    const s = sum / count;
    expect(report.evaluation.final.original.accuracy).toBeCloseTo(s / (1 + s), 12);
    expect(report.evaluation.final.cmd.accuracy).not.toBe(report.evaluation.final.original.accuracy);
    expect(report.evaluation.average.metrics.accuracy).toBeGreaterThan(0);
    expect(existsSync(path.join(out, '.eval'))).toBe(false);
  });

  it('refuses a model made for another folder', () => {
    const tmp = tempDir();
    const out = path.join(tmp, 'out');
    expect(runCli(['analyze', fixture('lenet5-fmnist', 'npz'), '--to', '4', '-o', out, '--samples', '200', '--modes', '3', '-q']).status).toBe(0);
    const r = runCli(['reconstruct', fixture('lenet5-fmnist', 'npz'), '--to', '5', '--model', path.join(out, 'cmd-model.safetensors'), '-o', path.join(tmp, 'out2')]);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/does not match/);
    expect(existsSync(path.join(tmp, 'out2'))).toBe(false);
  });
});
