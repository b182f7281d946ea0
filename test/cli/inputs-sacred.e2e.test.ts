/**
 * Issue 12, point 1: no command, with any -o / --html and with or without --force, changes a
 * byte of its input tree. Every writing command is run with outputs that are the input, its
 * parent, inside it, inside a checkpoint, a symlink to it and `..` spellings of those; each must
 * exit 2 with one stderr line, and the tree (listing, modes, mtimes, contents) must be unchanged.
 */
import { spawn } from 'node:child_process';
import { readdirSync, symlinkSync, mkdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';
import { treeDigest } from '../helpers/tree-hash.ts';

const bin = path.join(repoRoot, 'bin', 'cmd.js');
const flat = fixture('lenet5-fmnist', 'flat');

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], cwd: string): Promise<Result> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd, env: { ...process.env, NO_COLOR: '1' } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Runs `jobs` two at a time (the test machine is shared). */
async function runAll<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all([worker(), worker()]);
  return out;
}

const small = ['-k', '40', '-m', '2', '--workers', '1', '-q'];
const commands: Record<string, (out: string) => string[]> = {
  analyze: (o) => ['analyze', 'ck', '-o', o, ...small],
  'analyze --online': (o) => ['analyze', 'ck', '--online', '--warmup', '2', '-o', o, ...small],
  reconstruct: (o) => ['reconstruct', 'ck', '-o', o, '--avg-last', '2', ...small],
  watch: (o) => ['watch', 'ck', '-o', o, '--warmup', '2', '--until', '3', '--poll-ms', '10', ...small],
  'analyze --html': (o) => ['analyze', 'ck', '-o', 'elsewhere', '--html', o, ...small],
};

/**
 * Outputs that overlap the input folder `ck` (cwd is the temp root holding ck and link → ck):
 * the input, its parent, inside it, a checkpoint, inside a checkpoint, a symlink, `..` spellings.
 * (More spellings are resolved in-process in test/output/input-guard.test.ts; each CLI run costs.)
 */
const overlapping = ['ck', '.', 'ck/out', 'ck/epoch_001.npy', 'ck/epoch_001.npy/x', 'link', 'link/../ck/sub'];

describe('inputs are never modified (filesystem level)', () => {
  it('every writing command refuses every overlapping output, with and without --force, and leaves the input tree byte-identical', async () => {
    const root = tempDir();
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    for (const f of readdirSync(flat).sort()) copyInto(ck, path.join(flat, f));
    symlinkSync('ck', path.join(root, 'link'));
    mkdirSync(path.join(root, 'other'));
    const before = treeDigest(ck);

    const cases: { label: string; args: string[] }[] = [];
    for (const [name, build] of Object.entries(commands)) {
      // --force is the dangerous spelling: every output with it; without it, the first three.
      for (const o of overlapping) cases.push({ label: `${name} -o ${o} --force`, args: [...build(o), '--force'] });
      for (const o of overlapping.slice(0, 3)) cases.push({ label: `${name} -o ${o}`, args: build(o) });
    }
    const results = await runAll(cases.map((c) => () => run(c.args, root)));
    const bad: string[] = [];
    results.forEach((r, i) => {
      const lines = r.stderr.trimEnd().split('\n');
      if (r.code !== 2 || lines.length !== 1 || !/input/.test(lines[0]) || r.stdout !== '') bad.push(`${cases[i].label}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`);
    });
    expect(bad).toEqual([]);
    expect(treeDigest(ck)).toBe(before);
    // Refused before anything was created beside the target either: no locks, staging or outputs.
    expect(readdirSync(root).sort()).toEqual(['ck', 'link', 'other']);
    expect(readdirSync(path.join(root, 'other'))).toEqual([]);
  }, 180_000);

  it('successful runs of every writing command to an output beside the input leave the input tree byte-identical', async () => {
    const root = tempDir();
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    for (const f of readdirSync(flat).sort()) copyInto(ck, path.join(flat, f));
    const before = treeDigest(ck);
    const ok = await runAll([
      () => run(commands.analyze('out-a'), root),
      () => run([...commands['analyze --online']('out-o'), '--html', 'out-o.html'], root),
      () => run(commands.reconstruct('out-r'), root),
      () => run(commands.watch('out-w'), root),
    ]);
    for (const r of ok) expect(r.code, r.stderr).toBe(0);
    // A second time with --force over the previous outputs, then report --html from a run.
    const again = await runAll([
      () => run([...commands.analyze('out-a'), '--force'], root),
      () => run([...commands.watch('out-w'), '--force'], root),
      () => run(['report', 'out-a', '--html', 'out-a/report.html'], root),
    ]);
    for (const r of again) expect(r.code, r.stderr).toBe(0);
    expect(treeDigest(ck)).toBe(before);
    expect(existsSync(path.join(root, 'out-a', 'report.html'))).toBe(true);
    // No locks or staging folders left behind.
    expect(readdirSync(root).filter((n) => n.startsWith('.'))).toEqual([]);
  }, 180_000);

  it('cmd report --html refuses to write over the report it reads or the files it names', async () => {
    const root = tempDir();
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    for (const f of readdirSync(flat).sort()) copyInto(ck, path.join(flat, f));
    expect((await run(commands.analyze('run'), root)).code).toBe(0);
    symlinkSync(path.join('run', 'report.json'), path.join(root, 'report-link.json'));
    const before = treeDigest(path.join(root, 'run'));
    const results = await runAll(
      ['run/report.json', 'run', 'run/cmd-model.safetensors', 'report-link.json', 'run/../run/report.json', '.'].map((h) => () => run(['report', 'run', '--html', h], root)),
    );
    for (const r of results) {
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    expect(treeDigest(path.join(root, 'run'))).toBe(before);
  }, 120_000);
});
