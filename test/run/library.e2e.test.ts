/**
 * The library is the CLI's run layer (issue 9, defect 11): the README's library example runs as
 * written (against the built package) and writes what `cmd analyze` / `cmd reconstruct` write;
 * library calls throw the project's errors, never a raw ENOENT or EEXIST.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

/** The first ```ts block of the README's "## Library" section. */
function readmeExample(): string {
  const readme = fs.readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Library'));
  const m = /```ts\n([\s\S]*?)```/.exec(section);
  if (!m) throw new Error('README has no ts block under ## Library');
  return m[1];
}

describe('the README library example', () => {
  it('runs, reruns, and writes the same model and report as the CLI', () => {
    const dir = tempDir();
    const ckpts = fixture('resnet20-bn-safetensors');
    const out = path.join(dir, 'nested', 'out');
    const code = readmeExample()
      .replace(`'correlation-mode-decomposition'`, JSON.stringify(path.join(repoRoot, 'dist', 'index.js')))
      .replaceAll(`'./ckpts'`, JSON.stringify(ckpts))
      .replaceAll(`'./out'`, JSON.stringify(out));
    expect(code).not.toMatch(/'\.\/(ckpts|out)'/);
    const file = path.join(dir, 'example.mjs');
    fs.writeFileSync(file, code);
    const first = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(first).toMatch(/true .*same checkpoints/);
    expect(fs.readdirSync(out).sort()).toEqual(['cmd-model.safetensors', 'reconstructed', 'report.json', 'run-info.json', 'sampled-corr.npy', 'samples.json']);
    // A rerun replaces the analysis (force: true) and reuses it again.
    const second = execFileSync(process.execPath, [file], { encoding: 'utf8' });
    expect(second).toMatch(/true .*same checkpoints/);

    const cli = path.join(dir, 'cli');
    expect(runCli(['analyze', ckpts, '-o', cli, '--modes', '10', '--samples', '1000', '--seed', '0', '-q']).status).toBe(0);
    expect(runCli(['reconstruct', '-o', cli, '--checkpoints', 'last', '--avg-last', '5', '-q']).status).toBe(0);
    for (const f of ['cmd-model.safetensors', 'samples.json', 'sampled-corr.npy', 'reconstructed/epoch_003.safetensors', 'reconstructed/avg-last-3.safetensors']) {
      expect(Buffer.compare(fs.readFileSync(path.join(out, f)), fs.readFileSync(path.join(cli, f))), f).toBe(0);
    }
    const strip = (r: { input: { dir: string } }) => ({ ...r, input: { ...r.input, dir: '' } });
    const lib = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    const fromCli = JSON.parse(fs.readFileSync(path.join(cli, 'report.json'), 'utf8'));
    expect(strip(lib)).toEqual(strip(fromCli));
  });

  it('throws the project errors with their exit codes', async () => {
    const lib = await import(path.join(repoRoot, 'dist', 'index.js'));
    const dir = tempDir();
    const out = path.join(dir, 'out');
    fs.mkdirSync(out);
    fs.writeFileSync(path.join(out, 'x'), '');
    const small = { out, samples: 200, modes: 3 };
    await expect(lib.analyze(fixture('resnet20-bn-safetensors'), small)).rejects.toSatisfy((e: unknown) => e instanceof lib.UsageError && (e as { exitCode: number }).exitCode === 2);
    await expect(lib.analyze(path.join(dir, 'missing'), { ...small, force: true })).rejects.toSatisfy((e: unknown) => e instanceof lib.CmdError && (e as { exitCode: number }).exitCode === 2);
    await expect(lib.reconstruct(undefined, { out: path.join(dir, 'none') })).rejects.toBeInstanceOf(lib.UsageError);
    const controller = new AbortController();
    controller.abort();
    await expect(lib.analyze(fixture('resnet20-bn-safetensors'), { ...small, out: path.join(dir, 'c') }, { signal: controller.signal })).rejects.toBeInstanceOf(lib.CancelledError);
    expect(fs.existsSync(path.join(dir, 'c'))).toBe(false);
  });
});
