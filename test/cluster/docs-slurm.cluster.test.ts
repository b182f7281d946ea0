/**
 * The Slurm scripts docs/scale-out.md shows are run as printed, on the test cluster: the submit
 * script chains plan → `--array` of shard tasks → merge with afterok, and the model it leaves
 * equals a one-process `cmd analyze` with the same options. Only `cmd` is put on PATH (a shim
 * for the built CLI) and RUN/OUT/SHARDS are set, as the docs' usage line says.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { haveTools } from '../helpers/optional-tools.ts';
import { cmdLine, slurmEnv, waitForJobs } from '../helpers/slurm.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

/** The first fenced block after the line that names `file` in docs/scale-out.md. */
function docsScript(file: string): string {
  const text = readFileSync(path.join(repoRoot, 'docs', 'scale-out.md'), 'utf8');
  const at = text.indexOf(`\`${file}\``);
  if (at < 0) throw new Error(`docs/scale-out.md no longer shows ${file}`);
  const block = /```\w*\n([\s\S]*?)```/.exec(text.slice(at));
  if (!block) throw new Error(`no code block after ${file} in docs/scale-out.md`);
  return block[1];
}

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

describe.skipIf(!haveTools('slurm'))('docs/scale-out.md, "Slurm"', () => {
  it('its submit script runs plan, array and merge, and the model equals the one-process run', async () => {
    const work = tempDir('cmd-slurm-docs-');
    const bin = path.join(work, 'bin');
    // The one change: the docs ask for 8 CPUs and up to 16 GB a task, more than the test node
    // may have (a job asking for more than any node never starts).
    const oneCpu = (script: string) => script.replace(/--cpus-per-task=\d+/g, '--cpus-per-task=1').replace(/--mem=\w+/g, '--mem=1G');
    writeFileSync(path.join(work, 'cmd-shard.sbatch'), oneCpu(docsScript('cmd-shard.sbatch')));
    writeFileSync(path.join(work, 'cmd-submit.sh'), oneCpu(docsScript('cmd-submit.sh')));
    chmodSync(path.join(work, 'cmd-submit.sh'), 0o755);
    mkdirSync(bin);
    writeFileSync(path.join(bin, 'cmd'), `#!/bin/sh\nexec ${cmdLine([])} "$@"\n`);
    chmodSync(path.join(bin, 'cmd'), 0o755);

    const input = fixture('lenet5-fmnist', 'npz');
    const out = path.join(work, 'out');
    const submit = spawnSync('./cmd-submit.sh', [], {
      cwd: work,
      encoding: 'utf8',
      env: slurmEnv({ PATH: `${bin}:${process.env.PATH}`, RUN: input, OUT: out, SHARDS: '4' }),
    });
    expect(submit.status, submit.stderr).toBe(0);
    const ids = /^plan (\d+), shards (\d+), merge (\d+)$/m.exec(submit.stdout);
    expect(ids, submit.stdout).not.toBeNull();
    const ends = await waitForJobs(ids!.slice(1));
    expect(ends.map((e) => e.state)).toEqual(Array(6).fill('COMPLETED'));
    expect(readdirSync(path.join(out, 'shards')).sort()).toEqual(['0-of-4', '1-of-4', '2-of-4', '3-of-4']);

    // The docs' plan step gives --modes 10 and nothing else: the same options, one process.
    const ref = path.join(work, 'ref');
    const one = runCli(['analyze', input, '--modes', '10', '-o', ref, '--quiet']);
    expect(one.status, one.stderr).toBe(0);
    for (const f of ['cmd-model.safetensors', 'report.json']) expect(sha(path.join(out, f)), f).toBe(sha(path.join(ref, f)));
  });
});
