/**
 * Determinism of `cmd analyze`: chunk boundaries never depend on the worker count and
 * per-chunk results merge in chunk order, so the model and the report are byte-identical
 * for 1, 2 or 3 workers; the seed alone decides the samples.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs, { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fixture, repoRoot } from '../helpers/tmp.ts';

const cli = path.join(repoRoot, 'bin', 'cmd.js');
const input = fixture('lenet5-fmnist', 'npz');
const CHUNK = 5000;
/** Files that must not depend on workers; run-info.json (timings, RSS) may. */
const STABLE = ['cmd-model.safetensors', 'report.json', 'samples.json', 'sampled-corr.npy'];

function analyze(out: string, ...extra: string[]): Record<string, string> {
  const r = spawnSync(process.execPath, [cli, 'analyze', input, '-o', out, '--modes', '10', '--samples', '1000', '--chunk-size', String(CHUNK), '--quiet', ...extra], { encoding: 'utf8' });
  if (r.status !== 0 || r.stderr !== '') throw new Error(`cmd analyze ${extra.join(' ')} exited ${r.status}: ${r.stderr}`);
  return Object.fromEntries(STABLE.map((f) => [f, createHash('sha256').update(fs.readFileSync(path.join(out, f))).digest('hex')]));
}

function sampleIndex(out: string): BigInt64Array {
  const buf = fs.readFileSync(path.join(out, 'cmd-model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const [begin, end] = header.sample_index.data_offsets as [number, number];
  const bytes = buf.subarray(8 + n + begin, 8 + n + end);
  return new BigInt64Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

describe('cmd analyze determinism', () => {
  // Four runs shared by the tests: seed 7 with 1, 2 and 3 workers (three separate processes, so
  // also the repeat of one seed), and seed 8 with the default worker count.
  let dir: string;
  let runs: Record<string, string>[];
  let other: Record<string, string>;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'cmd-determinism-'));
    runs = ['1', '2', '3'].map((w) => analyze(path.join(dir, `w${w}`), '--workers', w, '--seed', '7'));
    other = analyze(path.join(dir, 'seed8'), '--seed', '8');
  });
  afterAll(() => {
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('the input spans at least 8 chunks', () => {
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'w1', 'report.json'), 'utf8'));
    expect(Math.ceil(report.input.modelledParameters / CHUNK)).toBeGreaterThanOrEqual(8);
  });

  it('gives byte-identical model and report with 1, 2 and 3 workers', () => {
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
    // The worker count did take effect (run-info records it), so the runs really differed.
    const workers = ['1', '2', '3'].map((w) => JSON.parse(fs.readFileSync(path.join(dir, `w${w}`, 'run-info.json'), 'utf8')).analyze.workers);
    expect(workers).toEqual([1, 2, 3]);
  });

  it('repeats itself for the same seed and draws other samples for another seed', () => {
    const [a, b] = runs;
    expect(b).toEqual(a);
    expect(other['samples.json']).not.toBe(a['samples.json']);
    expect(other['cmd-model.safetensors']).not.toBe(a['cmd-model.safetensors']);
    const sa = sampleIndex(path.join(dir, 'w1'));
    const sc = sampleIndex(path.join(dir, 'seed8'));
    expect(sa).toHaveLength(1000);
    expect(sc).toHaveLength(1000);
    // Different draws, not a permutation of the same ones.
    const inA = new Set(sa);
    expect([...sc].filter((g) => !inA.has(g)).length).toBeGreaterThan(500);
  });
});
