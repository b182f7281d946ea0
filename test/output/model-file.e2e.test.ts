/**
 * cmd-model.safetensors checked by an independent, numpy-only validator of the safetensors
 * rules (test/tools/check_safetensors.py), and its content checked against the run.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

function check(file: string) {
  const r = spawnSync(PYTHON, [path.join(repoRoot, 'test', 'tools', 'check_safetensors.py'), file], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr };
}

describe.skipIf(!haveTools('python3-numpy'))('cmd-model.safetensors', () => {
  it('passes the numpy-only safetensors checker and holds a, b, mode, refs and indices', () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, '--samples', '300', '--modes', '5', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const c = check(path.join(out, 'cmd-model.safetensors'));
    expect(c.status, c.out + c.err).toBe(0);
    const summary = JSON.parse(c.out);
    const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
    const M = report.modes.length;
    expect(summary.tensors.refs).toEqual({ dtype: 'F32', shape: [M, 3], finite: true });
    expect(summary.tensors.reference_index.shape).toEqual([M]);
    expect(summary.tensors.sample_index.shape).toEqual([300]);
    for (const t of report.tensors) {
      expect(summary.tensors[`${t.name}.a`].finite).toBe(true);
      expect(summary.tensors[`${t.name}.b`].finite).toBe(true);
      expect(summary.tensors[`${t.name}.mode`].dtype).toBe('U8');
    }
    expect(summary.metadata_keys).toEqual(expect.arrayContaining(['cmd.checkpoints', 'cmd.params', 'cmd.tensors', 'cmd.version', 'format']));
  });

  it('the checker itself rejects a broken file', () => {
    const out = path.join(tempDir(), 'out');
    expect(runCli(['analyze', fixture('lenet5-fmnist', 'npz'), '--to', '3', '-o', out, '--samples', '100', '--modes', '3', '-q']).status).toBe(0);
    const file = path.join(out, 'cmd-model.safetensors');
    const bad = path.join(tempDir(), 'bad.safetensors');
    const bytes = readFileSync(file);
    writeFileSync(bad, bytes.subarray(0, bytes.length - 4));
    const c = check(bad);
    expect(c.status).toBe(1);
    expect(c.out).toMatch(/INVALID/);
  });
});
