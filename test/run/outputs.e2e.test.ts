/**
 * The run layer's ownership and reuse rules, end to end (issue 9, defects 2, 3, 4, 5, 7):
 * `reconstruct` leaves what `analyze` wrote byte-identical, reuses a model only when every input
 * of the decomposition is the same (by content), and never copies numbers measured by another run.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';
import { fileHashes } from '../helpers/tree-hash.ts';

const evalScript = path.join(repoRoot, 'test', 'fixtures-scripts', 'count-eval.mjs');
const small = ['--samples', '300', '--modes', '4'];

function ok(r: { status: number | null; stderr: string }) {
  expect(r.status, r.stderr).toBe(0);
}

const readJson = (f: string) => JSON.parse(fs.readFileSync(f, 'utf8'));

describe('reconstruct into an analyze folder (defect 4)', () => {
  for (const force of [false, true]) {
    it(`keeps every file it does not own byte-identical${force ? ' with --force' : ''}; run-info.json keeps both entries and every gate works`, () => {
      const out = path.join(tempDir(), 'out');
      ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, '--samples', '300', '--modes', '4,2', '-q']));
      fs.writeFileSync(path.join(out, 'notes.txt'), 'mine\n');
      const before = fileHashes(out);
      expect(Object.keys(before)).toEqual(expect.arrayContaining(['run-info.json', 'sweep/cmd-model-M2.safetensors', 'cmd-model.safetensors', 'samples.json', 'sampled-corr.npy']));
      const analyzeInfo = readJson(path.join(out, 'run-info.json')).analyze;
      // The report names the model by its sha256 (hashed on a pass-2 worker thread).
      const modelSha = createHash('sha256').update(fs.readFileSync(path.join(out, 'cmd-model.safetensors'))).digest('hex');
      expect(readJson(path.join(out, 'report.json')).provenance.model).toBe(modelSha);
      const r = runCli(['reconstruct', '-o', out, '--eval-cmd', `node ${evalScript} {checkpoint}`, ...(force ? ['--force'] : [])]);
      ok(r);
      expect(r.stderr).toMatch(/using the existing model .*same checkpoints/);
      const after = fileHashes(out);
      for (const [f, h] of Object.entries(before)) if (f !== 'report.json' && f !== 'run-info.json') expect(after[f], f).toBe(h);
      expect(Object.keys(after).filter((f) => !(f in before)).every((f) => f.startsWith('reconstructed/'))).toBe(true);
      const info = readJson(path.join(out, 'run-info.json'));
      expect(info.analyze).toEqual(analyzeInfo);
      expect(info.reconstruct.reused).toBe(true);
      const gates = runCli(['report', out, '--baseline', out, '--max-slowdown', '1.5', '--max-acc-drop', '50', '--max-recon-error', '0.5']);
      expect(gates.status, gates.stderr).toBe(0);
      expect(gates.stdout).toMatch(/runtime/);
    });
  }
});

describe('reuse only when every input is the same (defect 3)', () => {
  it('a samples file of the same length with other pairs reruns the decomposition, the same file reuses', () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', path.join(dir, 'seed0'), ...small, '-q']));
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', path.join(dir, 'seed1'), ...small, '--seed', '1', '-q']));
    const a = path.join(dir, 'seed0', 'samples.json');
    const b = path.join(dir, 'seed1', 'samples.json');
    expect(readJson(a)).toHaveLength(readJson(b).length);
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, '--modes', '4', '--samples-from', a, '-q']));
    const same = runCli(['reconstruct', '-o', out, '--modes', '4', '--samples-from', a, '--avg-last', '0', '--json']);
    ok(same);
    expect(same.stderr).toMatch(/using the existing model/);
    const other = runCli(['reconstruct', '-o', out, '--modes', '4', '--samples-from', b, '--avg-last', '0', '--json']);
    ok(other);
    expect(other.stderr).toMatch(/running the decomposition: .*samples file content differs/);
    expect(fs.readFileSync(path.join(out, 'samples.json'), 'utf8')).toBe(fs.readFileSync(b, 'utf8'));
    expect(readJson(path.join(out, 'run-info.json')).decomposition.command).toBe('reconstruct');
    expect(readJson(path.join(out, 'run-info.json')).analyze).toBeUndefined();
  });

  it('a checkpoint rewritten with other values at the same size and time is not reused', () => {
    const dir = tempDir();
    const input = copyInto(dir, fixture('resnet20-bn-safetensors'), 'ckpts');
    const out = path.join(dir, 'out');
    ok(runCli(['analyze', input, '-o', out, ...small, '-q']));
    const again = runCli(['reconstruct', '-o', out, '--avg-last', '0']);
    ok(again);
    expect(again.stderr).toMatch(/using the existing model/);
    // Rewrite epoch_002's data section (every byte after the header) with epoch_003's bytes:
    // same size, same names, other values; and put its mtime back.
    const f2 = path.join(input, 'epoch_002.safetensors');
    const f3 = path.join(input, 'epoch_003.safetensors');
    const st = fs.statSync(f2);
    const b2 = fs.readFileSync(f2);
    const b3 = fs.readFileSync(f3);
    const headerEnd = 8 + Number(b2.readBigUInt64LE(0));
    expect(8 + Number(b3.readBigUInt64LE(0))).toBe(headerEnd);
    b3.copy(b2, headerEnd, headerEnd);
    fs.writeFileSync(f2, b2);
    fs.utimesSync(f2, st.atime, st.mtime);
    expect(fs.statSync(f2).size).toBe(st.size);
    const r = runCli(['reconstruct', '-o', out, '--avg-last', '0']);
    ok(r);
    expect(r.stderr).toMatch(/running the decomposition: .*epoch_002\.safetensors holds other values/);
    expect(r.stderr).not.toMatch(/using the existing model/);
  });

  it('other options (seed, K, M, --skip-nonfinite) rerun and say which one differs', () => {
    const out = path.join(tempDir(), 'out');
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, ...small, '-q']));
    const r = runCli(['reconstruct', '-o', out, '--seed', '3', '--avg-last', '0']);
    ok(r);
    expect(r.stderr).toMatch(/running the decomposition: .*seed differs \(0 recorded, 3 now\)/);
  });
});

describe('cmd watch resumes only the same run (defect 3)', () => {
  it('a samples file of the same length with other pairs is not resumed, and says why; the same file is', () => {
    const dir = tempDir();
    const input = fixture('lenet5-fmnist', 'npz');
    const pairs = (seed: string) => {
      const o = path.join(dir, `s${seed}`);
      ok(runCli(['analyze', input, '-o', o, '--to', '4', '--samples', '200', '--modes', '3', '--seed', seed, '-q']));
      return path.join(o, 'samples.json');
    };
    const a = pairs('0');
    const b = pairs('1');
    const out = path.join(dir, 'w');
    const args = (samples: string, until: string) => ['watch', input, '-o', out, '--warmup', '3', '--until', until, '--modes', '3', '--samples-from', samples, '--poll-ms', '10'];
    const first = runCli(args(a, '5'));
    ok(first);
    expect(first.stderr).toMatch(/starting a new online run/);
    const other = runCli(args(b, '6'));
    expect(other.status).toBe(2);
    expect(other.stderr).toMatch(/cannot be resumed: its samples are not the pairs of the given samples file/);
    const same = runCli(args(a, '6'));
    ok(same);
    expect(same.stderr).toMatch(/resuming after epoch_005\.npz .*same options, samples/);
  });
});

describe('evaluations belong to the run that measured them (defects 2 and 5)', () => {
  it('a reuse without eval flags carries no evaluation; --avg-last 3 reports avg last 3; reports have no times', () => {
    const dir = tempDir();
    const out = path.join(dir, 'out');
    const log = path.join(dir, 'evals.log');
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, ...small, '-q']));
    const first = runCli(['reconstruct', '-o', out, '--eval-cmd', `node ${evalScript} {checkpoint}`, '--json'], { env: { CMD_EVAL_LOG: log } });
    ok(first);
    const r1 = JSON.parse(first.stdout);
    expect(r1.evaluation.average.lastK).toBe(3);
    expect(r1.evaluation.provenance.model).toBe(r1.provenance.model);
    expect(r1.evaluation.provenance.inputs).toBe(r1.provenance.inputs);
    expect(Object.keys(r1.evaluation.provenance.reconstructed)).toEqual(r1.outputs.reconstructed);
    expect(r1.evaluation.provenance.evalCommand).toMatch(/count-eval/);
    // --checkpoints last by default: the last checkpoint, its original and the average (defect 5).
    expect(r1.evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([3]);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(3);

    const second = runCli(['reconstruct', '-o', out, '--avg-last', '2']);
    ok(second);
    expect(second.stdout).not.toMatch(/accuracy|avg last/);
    expect(second.stderr).toMatch(/not carried over/);
    const r2 = readJson(path.join(out, 'report.json'));
    expect(r2.evaluation).toBeUndefined();
    expect(r2.outputs.reconstructed).toEqual(['reconstructed/epoch_003.safetensors', 'reconstructed/avg-last-2.safetensors']);

    const third = runCli(['reconstruct', '-o', out, '--avg-last', '2', '--eval-cmd', `node ${evalScript} {checkpoint}`]);
    ok(third);
    expect(third.stdout).toMatch(/avg last 2/);
    expect(readJson(path.join(out, 'report.json')).evaluation.average.lastK).toBe(2);
    // No times, hosts or pids in the report: a rerun writes the same bytes.
    const before = fs.readFileSync(path.join(out, 'report.json'));
    ok(runCli(['reconstruct', '-o', out, '--avg-last', '2', '--eval-cmd', `node ${evalScript} {checkpoint}`]));
    expect(Buffer.compare(before, fs.readFileSync(path.join(out, 'report.json')))).toBe(0);
    expect(before.toString()).not.toMatch(/seconds|"node"|pid|host/i);
  });

  it('by default evaluates what was written: the chosen checkpoints, their originals and the average (defect 5)', () => {
    const dir = tempDir();
    const log = path.join(dir, 'evals.log');
    const r = runCli(['reconstruct', fixture('resnet20-bn-safetensors'), '-o', path.join(dir, 'out'), ...small, '--checkpoints', '2', '--avg-last', '2', '--eval-cmd', `node ${evalScript} {checkpoint}`, '--json'], { env: { CMD_EVAL_LOG: log } });
    ok(r);
    const report = JSON.parse(r.stdout);
    expect(report.evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([2]);
    expect(report.evaluation.average.lastK).toBe(2);
    // original and CMD at step 2, and the average: three runs of the command, not 2 × 3 + 1.
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  for (const online of [false, true]) {
    it(`an eval command scores the very files written in reconstructed/${online ? ' (--online)' : ''}`, () => {
      const dir = tempDir();
      const log = path.join(dir, 'evals.log');
      const out = path.join(dir, 'out');
      const r = runCli(['reconstruct', fixture('resnet20-bn-safetensors'), '-o', out, ...small, ...(online ? ['--online', '--warmup', '2'] : []), '--checkpoints', '3', '--avg-last', '2', '--eval-cmd', `node ${evalScript} {checkpoint}`, '--json'], { env: { CMD_EVAL_LOG: log } });
      ok(r);
      const report = JSON.parse(r.stdout);
      const evaluated = fs.readFileSync(log, 'utf8').trim().split('\n');
      const fromOutput = evaluated.filter((p) => path.basename(path.dirname(p)) === 'reconstructed').map((p) => path.basename(p)).sort();
      expect(fromOutput).toEqual(['avg-last-2.safetensors', 'epoch_003.safetensors']);
      expect(evaluated.filter((p) => p.startsWith(fixture('resnet20-bn-safetensors')))).toHaveLength(1);
      // count-eval's accuracy is a function of the bytes it read: the report's numbers are those of the committed files.
      const scoreOf = (f: string) => 0.5 + parseInt(createHash('sha256').update(fs.readFileSync(f)).digest('hex').slice(0, 4), 16) / 2 ** 17;
      expect(report.evaluation.final.cmd.accuracy).toBe(scoreOf(path.join(out, 'reconstructed', 'epoch_003.safetensors')));
      expect(report.evaluation.average.metrics.accuracy).toBe(scoreOf(path.join(out, 'reconstructed', 'avg-last-2.safetensors')));
    });
  }

  it('--eval-every widens the evaluation to every k-th checkpoint', () => {
    const dir = tempDir();
    const log = path.join(dir, 'evals.log');
    const r = runCli(['reconstruct', fixture('resnet20-bn-safetensors'), '-o', path.join(dir, 'out'), ...small, '--avg-last', '0', '--eval-every', '1', '--eval-cmd', `node ${evalScript} {checkpoint}`, '--json'], { env: { CMD_EVAL_LOG: log } });
    ok(r);
    expect(JSON.parse(r.stdout).evaluation.checkpoints.map((c: { step: number }) => c.step)).toEqual([1, 2, 3]);
    expect(fs.readFileSync(log, 'utf8').trim().split('\n')).toHaveLength(6);
  });
});

describe('sweep models (defect 7)', () => {
  it('reconstruct --model <run>/sweep/cmd-model-M2.safetensors -o elsewhere works and reports M = 2; into the sweep folder says to choose another -o', () => {
    const dir = tempDir();
    const run = path.join(dir, 'run');
    ok(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', run, '--samples', '300', '--modes', '4,2', '-q']));
    const sweepModel = path.join(run, 'sweep', 'cmd-model-M2.safetensors');
    const r = runCli(['reconstruct', '--model', sweepModel, '-o', path.join(dir, 'm2'), '--avg-last', '0', '--eval-cmd', `node ${evalScript} {checkpoint}`, '--json']);
    ok(r);
    const report = JSON.parse(r.stdout);
    expect(report.method.modesRequested).toBe(2);
    expect(report.modes).toHaveLength(report.method.modes);
    expect(report.modes.reduce((s: number, m: { assignedCount: number }) => s + m.assignedCount, 0)).toBe(report.input.modelledParameters);
    expect(report.evaluation.checkpoints).toHaveLength(1);
    const parent = readJson(path.join(run, 'report.json'));
    expect(report.checkpoints).toEqual(parent.modeSweep.find((m: { modesRequested: number }) => m.modesRequested === 2).checkpoints);
    expect(Buffer.compare(fs.readFileSync(sweepModel), fs.readFileSync(path.join(dir, 'm2', 'cmd-model.safetensors')))).toBe(0);
    expect(runCli(['report', path.join(dir, 'm2')]).status).toBe(0);

    const same = runCli(['reconstruct', '--model', sweepModel, '-o', run]);
    expect(same.status).toBe(2);
    expect(same.stderr.trim().split('\n').at(-1)).toMatch(/mode sweep .* -o <another folder>/);
  });
});
