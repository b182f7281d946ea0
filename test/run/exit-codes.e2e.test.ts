/**
 * The exit-code matrix of issue 9 (defect 6): every run command exits 0 on success, 2 on bad
 * input or usage with its `-o` left as it was, and 130 when interrupted with its `-o` left as it
 * was; `cmd report` exits 0, 1 (a gate failed) and 2. inspect's 130 is here; analyze's and watch's 130 are proven on
 * larger runs in test/pipeline/interrupt.test.ts and test/online/watch.test.ts.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { interrupt, runCli, startCli, waitForStage } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';
import { fileHashes } from '../helpers/tree-hash.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const oneLine = (stderr: string) => stderr.trim().split('\n');

/** Whether process `pid` has a file under `dir` open; without /proc, true after the first poll. */
function readingFrom(pid: number, dir: string): boolean {
  const fds = `/proc/${pid}/fd`;
  if (!fs.existsSync('/proc/self/fd')) return true;
  try {
    return fs.readdirSync(fds).some((fd) => {
      try {
        return fs.readlinkSync(path.join(fds, fd)).startsWith(dir + path.sep);
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}

describe('exit codes', () => {
  it('inspect: 0, and 2 with one line for a missing folder', () => {
    expect(runCli(['inspect', fixture('resnet20-bn-safetensors')]).status).toBe(0);
    const r = runCli(['inspect', path.join(tempDir(), 'nothing-here')]);
    expect(r.status).toBe(2);
    expect(oneLine(r.stderr)).toHaveLength(1);
  });

  it('inspect: 130 and no listing when interrupted while it reads headers', async () => {
    // 6,000 one-tensor safetensors files: reading their headers takes over a second, so the
    // signal arrives mid-run (a listing on stdout and exit 0 would mean it was ignored).
    const dir = tempDir();
    const header = JSON.stringify({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } });
    const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
    const bytes = Buffer.alloc(8 + padded.length + 16);
    bytes.writeBigUInt64LE(BigInt(padded.length), 0);
    bytes.write(padded, 8);
    for (let i = 0; i < 6000; i++) fs.writeFileSync(path.join(dir, `epoch_${String(i).padStart(5, '0')}.safetensors`), bytes);
    const cli = startCli(['inspect', dir]);
    // Interrupted once it reads the headers (one of the folder's files is open, Linux /proc), so
    // a loaded machine slow to start node cannot make the signal land before the handler.
    const real = fs.realpathSync(dir);
    await waitForStage(cli, () => readingFrom(cli.child.pid!, real), 'reading the headers');
    expect(await interrupt(cli), cli.stderr()).toBe(130);
    const stdout = cli.stdout();
    const stderr = cli.stderr();
    expect(stdout).toBe('');
    expect(oneLine(stderr)).toEqual(['cmd: interrupted']);
  });

  it('analyze and reconstruct: 2 on bad input or usage, with -o left byte-identical', () => {
    const out = path.join(tempDir(), 'out');
    expect(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, '--samples', '300', '--modes', '4', '-q']).status).toBe(0);
    const before = fileHashes(out);
    const bad = [
      ['analyze', path.join(out, 'missing'), '-o', out, '--force'],
      ['reconstruct', '-o', out, '--eval-data', fixture('fmnist-mlp', 'test')],
      ['reconstruct', '-o', out, '--samples-from', path.join(out, 'no-such.json')],
      ['reconstruct', '-o', out, '--checkpoints', '99'],
    ];
    for (const args of bad) {
      const r = runCli(args);
      expect(r.status, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr).at(-1)).toMatch(/^cmd: /);
      expect(fileHashes(out)).toEqual(before);
    }
    expect(fs.readdirSync(path.dirname(out))).toEqual(['out']);
  });

  it('reconstruct: 130 when interrupted during evaluation, with -o left byte-identical', async () => {
    const parent = tempDir();
    const out = path.join(parent, 'out');
    const ckpts = fixture('fmnist-mlp', 'checkpoints');
    expect(runCli(['analyze', ckpts, '-o', out, '--samples', '300', '--modes', '4', '-q']).status).toBe(0);
    const before = fileHashes(out);
    const cli = startCli(['reconstruct', '-o', out, '--checkpoints', 'all', '--eval-data', fixture('fmnist-mlp', 'test'), '--eval-every', '1', '-q']);
    // The evaluation starts once every reconstruction and the average are staged.
    const staged = () => fs.readdirSync(parent).some((d) => d.startsWith('.') && fs.existsSync(path.join(parent, d, 'reconstructed')) && fs.readdirSync(path.join(parent, d, 'reconstructed')).some((n) => n.startsWith('avg-last-')));
    await waitForStage(cli, staged, 'the evaluation');
    await sleep(200);
    expect(await interrupt(cli)).toBe(130);
    expect(cli.stderr()).toMatch(/interrupted/);
    expect(fileHashes(out)).toEqual(before);
    expect(fs.readdirSync(parent)).toEqual(['out']);
  });

  it('watch: 0 with --until, 2 on a non-empty -o without a state (left as it was)', () => {
    const dir = tempDir();
    const out = path.join(dir, 'w');
    const r = runCli(['watch', fixture('lenet5-fmnist', 'npz'), '-o', out, '--warmup', '3', '--until', '5', '--samples', '200', '--modes', '3', '--poll-ms', '10', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const other = path.join(dir, 'other');
    fs.mkdirSync(other);
    fs.writeFileSync(path.join(other, 'keep.txt'), 'x');
    const bad = runCli(['watch', fixture('lenet5-fmnist', 'npz'), '-o', other, '--warmup', '3', '--until', '5', '-q']);
    expect(bad.status).toBe(2);
    expect(fileHashes(other)).toEqual({ 'keep.txt': createHash('sha256').update('x').digest('hex') });
  });

  it('watch: a corrupt or truncated online state is bad input (2) naming the file, not an internal error (defect 11)', () => {
    const out = path.join(tempDir(), 'w');
    const args = ['watch', fixture('lenet5-fmnist', 'npz'), '-o', out, '--warmup', '3', '--until', '5', '--samples', '200', '--modes', '3', '--poll-ms', '10', '-q'];
    expect(runCli(args).status).toBe(0);
    const state = path.join(out, '.online-state');
    const commit = path.join(state, 'commit.json');
    const good = fs.readFileSync(commit, 'utf8');
    const cases: [string, () => void, RegExp][] = [
      ['not JSON', () => fs.writeFileSync(commit, '{"version": 1, "t": '), /commit\.json: online state file is not JSON/],
      ['wrong field', () => fs.writeFileSync(commit, good.replace(/"t":\d+/, '"t":"five"')), /commit\.json: is not a valid online state file: .* at t/],
      ['inconsistent', () => fs.writeFileSync(commit, good.replace(/"t":(\d+)/, (_, t) => `"t":${Number(t) + 7}`)), /commit\.json: online state is inconsistent/],
    ];
    for (const [label, corrupt, message] of cases) {
      corrupt();
      const r = runCli(args);
      expect(r.status, `${label}: ${r.stderr}`).toBe(2);
      expect(oneLine(r.stderr), label).toHaveLength(1);
      expect(r.stderr, label).toMatch(message);
      expect(r.stderr).not.toMatch(/internal error/);
      fs.writeFileSync(commit, good);
    }
    const sums = fs.readdirSync(state).find((n) => n.startsWith('sums-'))!;
    fs.truncateSync(path.join(state, sums), 10);
    const r = runCli(args);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr).toContain(`${sums}: online state file is shorter than`);
  });

  it('report: 0 without gates, 1 when a gate fails, 2 on a missing report', () => {
    const out = path.join(tempDir(), 'out');
    expect(runCli(['analyze', fixture('resnet20-bn-safetensors'), '-o', out, '--samples', '300', '--modes', '4', '-q']).status).toBe(0);
    expect(runCli(['report', out]).status).toBe(0);
    expect(runCli(['report', out, '--max-recon-error', '0.000001']).status).toBe(1);
    expect(runCli(['report', path.join(out, 'nope.json')]).status).toBe(2);
  });
});
