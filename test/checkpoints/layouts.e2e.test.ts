/**
 * The folders people have (issue 10), end to end through the built CLI: `cmd inspect`,
 * `analyze` and `reconstruct` run unchanged on a Hugging Face Trainer output folder (final
 * export and tmp-checkpoint-N beside checkpoint-N/), a flax-style nested npy dump written by
 * numpy, and a Keras 3 `.weights.h5` run; reconstructed checkpoints keep the input's layout.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { elementCount } from '../../src/formats/dtype.ts';
import { openCmdModel } from '../../src/output/model-reader.ts';
import { ElementReader } from '../../src/trajectory/element-reader.ts';
import { runCli } from '../helpers/cli.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const fast = ['--samples', '200', '--modes', '3', '-q'];

/** Every modelled value of the reconstructed checkpoint at `t` is a·r(t)[mode] + b. */
async function expectReconstructed(input: string, out: string, t: number, options: { format?: 'keras-h5' | 'npy' | 'safetensors' } = {}) {
  const set = await loadCheckpointSet(input);
  const c = set.checkpoints[t];
  const rec = await loadCheckpointSet(path.join(out, 'reconstructed'), { include: [c.name], minCheckpoints: 1, format: options.format ?? set.format });
  const model = await openCmdModel(path.join(out, 'cmd-model.safetensors'));
  const T = model.checkpoints.length;
  const io = new ElementReader();
  let checked = 0;
  for (const m of set.space.tensors) {
    const got = rec.checkpoints[0].contents.tensors.find((x) => x.name === m.name)!;
    const n = elementCount(got.shape);
    const [gv, a, b, mode] = [0, 0, 0, 0].map(() => new Float64Array(n));
    io.read(got, 0, n, gv);
    model.read(m.name, 'a', 0, n, a);
    model.read(m.name, 'b', 0, n, b);
    model.read(m.name, 'mode', 0, n, mode);
    for (let i = 0; i < n; i++) expect(gv[i]).toBe(Math.fround(Math.fround(a[i] * model.refs[mode[i] * T + t]) + b[i]));
    checked += n;
  }
  io.close();
  model.close();
  expect(checked).toBe(set.space.total);
}

function inspectJson(dir: string, extra: string[] = []) {
  const r = runCli(['inspect', dir, '--json', ...extra]);
  expect(r.status, r.stderr).toBe(0);
  expect(r.stderr).toBe('');
  return JSON.parse(r.stdout) as { format: string; checkpoints: { name: string; step: number }[]; ignored: { name: string; reason: string }[]; tensors: { name: string }[] };
}

describe('Hugging Face Trainer output folder with model.safetensors checkpoints', () => {
  it('inspect lists the final export, tmp-checkpoint-N and training state as ignored; analyze and reconstruct run', async () => {
    const dir = path.join(tempDir(), 'trainer-out');
    const src = fixture('resnet20-bn-safetensors');
    const files = readdirSync(src).filter((f) => f.endsWith('.safetensors')).sort().slice(0, 3);
    for (const [i, f] of files.entries()) {
      const ck = path.join(dir, `checkpoint-${(i + 1) * 500}`);
      mkdirSync(ck, { recursive: true });
      copyFileSync(path.join(src, f), path.join(ck, 'model.safetensors'));
      writeFileSync(path.join(ck, 'config.json'), '{"architectures": ["ResNet"]}');
      writeFileSync(path.join(ck, 'tokenizer_config.json'), '{}');
      writeFileSync(path.join(ck, 'trainer_state.json'), JSON.stringify({ global_step: (i + 1) * 500 }));
      for (const aux of ['optimizer.pt', 'scheduler.pt', 'rng_state.pth', 'training_args.bin']) writeFileSync(path.join(ck, aux), 'never read');
    }
    copyFileSync(path.join(src, files[2]), path.join(dir, 'model.safetensors'));
    writeFileSync(path.join(dir, 'config.json'), '{}');
    mkdirSync(path.join(dir, 'tmp-checkpoint-2000'));
    writeFileSync(path.join(dir, 'tmp-checkpoint-2000', 'model.safetensors'), 'half');

    const info = inspectJson(dir);
    expect(info.checkpoints.map((c) => c.step)).toEqual([500, 1000, 1500]);
    const ignored = new Map(info.ignored.map((i) => [i.name, i.reason]));
    expect(ignored.get('model.safetensors')).toMatch(/final export/);
    expect(ignored.get('tmp-checkpoint-2000')).toMatch(/unfinished/);
    expect(ignored.get('checkpoint-500/optimizer.pt')).toMatch(/optimizer/);
    expect(ignored.get('checkpoint-1500/rng_state.pth')).toMatch(/random/);
    expect(inspectJson(dir, ['--order-by', 'metadata']).checkpoints.map((c) => c.step)).toEqual([500, 1000, 1500]);

    const out = path.join(tempDir(), 'out');
    const a = runCli(['analyze', dir, '-o', out, ...fast]);
    expect(a.status, a.stderr).toBe(0);
    const r = runCli(['reconstruct', dir, '-o', out, '--checkpoints', 'all', '--avg-last', '0', ...fast]);
    expect(r.status, r.stderr).toBe(0);
    const rec = path.join(out, 'reconstructed', 'checkpoint-1500');
    expect(readdirSync(rec).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer_config.json']);
    await expectReconstructed(dir, out, 2);
  });
});

describe.skipIf(!haveTools('python3-numpy'))('flax-style nested npy dump written by numpy', () => {
  it('names tensors by their path and reconstructs the same tree', async () => {
    const dir = path.join(tempDir(), 'flax-run');
    const script = [
      'import os, sys, numpy as np',
      'rng = np.random.default_rng(3)',
      'base = {"params": {"Conv_0": {"kernel": rng.normal(size=(3, 3, 1, 4)), "bias": rng.normal(size=4)}, "Dense_0": {"kernel": rng.normal(size=(16, 10)), "bias": rng.normal(size=10)}}, "batch_stats": {"BatchNorm_0": {"mean": rng.normal(size=4)}}}',
      'def dump(tree, root, scale):',
      '    for k, v in tree.items():',
      '        p = os.path.join(root, k)',
      '        if isinstance(v, dict):',
      '            os.makedirs(p, exist_ok=True); dump(v, p, scale)',
      '        else:',
      '            np.save(p + ".npy", (v * (1 + scale) + scale * np.cos(v)).astype(np.float32))',
      'for step in (100, 200, 300, 400):',
      '    d = os.path.join(sys.argv[1], f"step_{step}"); os.makedirs(d); dump(base, d, step / 1000)',
    ].join('\n');
    const py = spawnSync(PYTHON, ['-c', script, dir], { encoding: 'utf8' });
    expect(py.stderr).toBe('');
    const info = inspectJson(dir);
    expect(info.format).toBe('npy');
    expect(info.checkpoints.map((c) => c.step)).toEqual([100, 200, 300, 400]);
    expect(info.tensors.map((t) => t.name).sort()).toEqual(['batch_stats/BatchNorm_0/mean', 'params/Conv_0/bias', 'params/Conv_0/kernel', 'params/Dense_0/bias', 'params/Dense_0/kernel']);
    const out = path.join(tempDir(), 'out');
    const r = runCli(['reconstruct', dir, '-o', out, '--checkpoints', 'all', '--avg-last', '0', ...fast]);
    expect(r.status, r.stderr).toBe(0);
    expect(existsSync(path.join(out, 'reconstructed', 'step_300', 'params', 'Dense_0', 'kernel.npy'))).toBe(true);
    await expectReconstructed(dir, out, 2);
    const back = spawnSync(PYTHON, ['-c', 'import sys, numpy as np; print(np.load(sys.argv[1]).shape)', path.join(out, 'reconstructed', 'step_300', 'params', 'Conv_0', 'kernel.npy')], { encoding: 'utf8' });
    expect(back.stdout.trim()).toBe('(3, 3, 1, 4)');
  });
});

describe.skipIf(!haveTools('python3-h5py'))('Keras 3 .weights.h5 run', () => {
  it("analyze and reconstruct run; reconstructed files have the input's HDF5 layout (h5py)", async () => {
    const dir = fixture('keras-h5', 'run');
    const info = inspectJson(dir);
    expect(info.format).toBe('keras-h5');
    expect(info.checkpoints.map((c) => c.step)).toEqual([1, 2, 3, 4, 5]);
    const out = path.join(tempDir(), 'out');
    const a = runCli(['analyze', dir, '-o', out, ...fast]);
    expect(a.status, a.stderr).toBe(0);
    const r = runCli(['reconstruct', dir, '-o', out, '--checkpoints', 'all', '--avg-last', '2', ...fast]);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(path.join(out, 'reconstructed')).sort()).toEqual(['avg-last-2.weights.h5', ...readdirSync(dir).sort()]);
    await expectReconstructed(dir, out, 3);
    const describe = (f: string) => {
      const p = spawnSync(PYTHON, [path.join(repoRoot, 'test', 'tools', 'describe_h5.py'), f], { encoding: 'utf8' });
      expect(p.stderr).toBe('');
      return (JSON.parse(p.stdout) as { path: string; values?: number[] }[]).map((i) => (i.path.startsWith('layers/') ? { ...i, values: undefined } : i));
    };
    expect(describe(path.join(out, 'reconstructed', 'epoch_04.weights.h5'))).toEqual(describe(path.join(dir, 'epoch_04.weights.h5')));
  });

  it('reads .keras archives and writes their weights as .weights.h5; refuses a broken file with one line, exit 2', () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(['reconstruct', fixture('keras-h5', 'archives'), '-o', out, '--checkpoints', 'last', '--avg-last', '0', ...fast]);
    expect(r.status, r.stderr).toBe(0);
    expect(readdirSync(path.join(out, 'reconstructed'))).toEqual(['model_epoch3.weights.h5']);
    const bad = path.join(tempDir(), 'bad');
    mkdirSync(bad);
    for (const f of readdirSync(fixture('keras-h5', 'run')).slice(0, 3)) copyFileSync(path.join(fixture('keras-h5', 'run'), f), path.join(bad, f));
    writeFileSync(path.join(bad, 'epoch_02.weights.h5'), 'not hdf5');
    const b = runCli(['inspect', bad]);
    expect(b.status).toBe(2);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toContain('epoch_02.weights.h5');
    expect(b.stdout).toBe('');
  });
});

describe('--step-pattern', () => {
  it('is suggested when names give every checkpoint the same step, and fixes the order', () => {
    const dir = path.join(tempDir(), 'lr-sweep');
    mkdirSync(dir);
    const src = fixture('lenet5-fmnist', 'npz');
    for (const [i, f] of readdirSync(src).sort().slice(0, 3).entries()) copyFileSync(path.join(src, f), path.join(dir, `w_${(i + 1) * 10}_0.5.npz`));
    const bad = runCli(['inspect', dir]);
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--step-pattern');
    expect(inspectJson(dir, ['--step-pattern', '^w_(\\d+)_']).checkpoints.map((c) => c.step)).toEqual([10, 20, 30]);
    const usage = runCli(['inspect', dir, '--step-pattern', 'w_\\d+']);
    expect(usage.status).toBe(2);
    expect(usage.stderr).toContain('capture group');
  });
});
