/**
 * Issue 12, the bad-input suite's filesystem cases (points 2, 5, 6, 8): entries that look like
 * checkpoints but cannot be read as one are errors — exit 2, one stderr line naming the entry —
 * never a hang or a silently shorter trajectory; cmd's own output folders are skipped.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, tempDir } from '../helpers/tmp.ts';
import { runCli } from '../helpers/cli.ts';

const resnet = fixture('resnet20-bn-safetensors');
const resnetFiles = readdirSync(resnet).sort();
const lenetNpz = fixture('lenet5-fmnist', 'npz');
const npzFiles = readdirSync(lenetNpz).sort();
const mlp = fixture('fmnist-mlp', 'checkpoints');

function mkfifo(p: string): void {
  expect(spawnSync('mkfifo', [p]).status).toBe(0);
}

interface Case {
  name: string;
  /** Fills the folder; returns the entry the one error line must name. */
  build: (d: string) => string;
  mention: RegExp;
}

const cases: Case[] = [
  {
    name: 'FIFO named epoch_003.safetensors',
    build: (d) => {
      for (const f of resnetFiles.slice(0, 3)) copyInto(d, path.join(resnet, f));
      mkfifo(path.join(d, 'epoch_004.safetensors'));
      return path.join(d, 'epoch_004.safetensors');
    },
    mention: /not a regular file/,
  },
  {
    name: 'FIFO named epoch_004.npz',
    build: (d) => {
      for (const f of npzFiles.slice(0, 3)) copyInto(d, path.join(lenetNpz, f));
      mkfifo(path.join(d, 'epoch_099.npz'));
      return path.join(d, 'epoch_099.npz');
    },
    mention: /not a regular file/,
  },
  {
    name: 'FIFO named like a tfjs model.json beside the checkpoints',
    build: (d) => {
      for (const f of readdirSync(mlp).sort().slice(0, 3)) copyInto(d, path.join(mlp, f));
      mkfifo(path.join(d, 'model.json'));
      return path.join(d, 'model.json');
    },
    mention: /not a regular file/,
  },
  {
    name: 'folder named epoch_004.safetensors',
    build: (d) => {
      for (const f of resnetFiles.slice(0, 3)) copyInto(d, path.join(resnet, f));
      mkdirSync(path.join(d, 'epoch_004.safetensors'));
      return path.join(d, 'epoch_004.safetensors');
    },
    mention: /folder, but its name is that of a checkpoint file/,
  },
  {
    name: 'sharded index whose weight map names the index itself',
    build: (d) => {
      for (const f of resnetFiles.slice(0, 3)) copyInto(d, path.join(resnet, f));
      const idx = 'epoch_004.safetensors.index.json';
      writeFileSync(path.join(d, idx), JSON.stringify({ metadata: {}, weight_map: { 'conv1.weight': idx } }));
      return path.join(d, idx);
    },
    mention: /names the file itself/,
  },
  {
    name: 'tfjs shard symlinked outside the model folder',
    build: (d) => {
      for (const f of readdirSync(mlp).sort().slice(0, 3)) copyInto(d, path.join(mlp, f));
      const e = path.join(d, readdirSync(mlp).sort()[2]);
      const outside = path.join(path.dirname(d), 'outside.bin');
      renameSync(path.join(e, 'weights.bin'), outside);
      symlinkSync(outside, path.join(e, 'weights.bin'));
      return path.join(e, 'model.json');
    },
    mention: /symlink leading outside/,
  },
];

describe('bad filesystem entries through the CLI', () => {
  for (const c of cases) {
    for (const command of ['inspect', 'analyze']) {
      it(`${c.name}: ${command} exits 2 at once with one line naming it`, () => {
        const dir = tempDir();
        const input = path.join(dir, 'ckpts');
        mkdirSync(input);
        const entry = c.build(input);
        const out = path.join(dir, 'out');
        const args = command === 'inspect' ? ['inspect', input] : ['analyze', input, '-o', out, '-k', '40', '-m', '2', '--workers', '1'];
        const r = runCli(args, { timeoutMs: 30_000 });
        expect(r.status, r.stderr).toBe(2);
        const lines = r.stderr.split('\n').filter(Boolean);
        expect(lines, r.stderr).toHaveLength(1);
        expect(lines[0]).toContain(path.basename(entry));
        expect(lines[0]).toMatch(c.mention);
        expect(r.stdout).toBe('');
        expect(existsSync(out)).toBe(false);
      });
    }
  }
});

describe('cmd output folders inside the checkpoint folder (point 5)', () => {
  it('are skipped by discovery, so a folder that holds an old cmd output still analyzes', () => {
    const dir = tempDir();
    const input = path.join(dir, 'ckpts');
    cpSync(fixture('lenet5-fmnist', 'flat'), input, { recursive: true });
    const first = runCli(['analyze', input, '-o', path.join(dir, 'cmdout'), '-k', '40', '-m', '2', '--workers', '1', '-q']);
    expect(first.status, first.stderr).toBe(0);
    // What older versions allowed: the output inside the input folder.
    renameSync(path.join(dir, 'cmdout'), path.join(input, 'cmdout'));
    const inspect = runCli(['inspect', input, '--json']);
    expect(inspect.status, inspect.stderr).toBe(0);
    const listed = JSON.parse(inspect.stdout) as { checkpoints: { name: string }[]; ignored: { name: string; reason: string }[] };
    expect(listed.checkpoints.map((c) => c.name)).toEqual(['epoch_001.npy', 'epoch_002.npy', 'epoch_003.npy']);
    expect(listed.ignored).toContainEqual({ name: 'cmdout', reason: 'cmd output folder' });
    const again = runCli(['analyze', input, '-o', path.join(dir, 'again'), '-k', '40', '-m', '2', '--workers', '1', '-q']);
    expect(again.status, again.stderr).toBe(0);
    expect(readFileSync(path.join(dir, 'again', 'cmd-model.safetensors'))).toEqual(readFileSync(path.join(input, 'cmdout', 'cmd-model.safetensors')));
  });

  it('cmd watch refuses an -o inside the watched folder instead of stalling on its own output', () => {
    const dir = tempDir();
    const input = path.join(dir, 'ckpts');
    cpSync(fixture('lenet5-fmnist', 'flat'), input, { recursive: true });
    const r = runCli(['watch', input, '-o', path.join(input, 'wout'), '--warmup', '2', '--until', '3', '--poll-ms', '10'], { timeoutMs: 30_000 });
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/lies inside the input/);
    expect(readdirSync(input).sort()).toEqual(['epoch_001.npy', 'epoch_002.npy', 'epoch_003.npy']);
  });
});
