/**
 * Determinism of `cmd analyze`: chunk boundaries never depend on the worker count and
 * per-chunk results merge in chunk order, so the model and the report are byte-identical
 * for 1, 2 or 3 workers; the seed alone decides the samples.
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const cli = path.join(repoRoot, 'bin', 'cmd.js');
const input = fixture('lenet5-fmnist', 'npz');
const CHUNK = 5000;
/** Files that must not depend on workers; run-info.json (timings, RSS) may. */
const STABLE = ['cmd-model.safetensors', 'report.json', 'samples.json', 'sampled-corr.npy'];

function analyze(out: string, ...extra: string[]): Record<string, string> {
  const r = spawnSync(process.execPath, [cli, 'analyze', input, '-o', out, '--modes', '10', '--samples', '1000', '--chunk-size', String(CHUNK), '--quiet', ...extra], { encoding: 'utf8' });
  expect(r.stderr).toBe('');
  expect(r.status).toBe(0);
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
  it('the input spans at least 8 chunks', () => {
    const dir = tempDir();
    analyze(path.join(dir, 'o'), '--workers', '1');
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'o', 'report.json'), 'utf8'));
    expect(Math.ceil(report.input.modelledParameters / CHUNK)).toBeGreaterThanOrEqual(8);
  });

  it('gives byte-identical model and report with 1, 2 and 3 workers', () => {
    const dir = tempDir();
    const runs = ['1', '2', '3'].map((w) => analyze(path.join(dir, `w${w}`), '--workers', w));
    expect(runs[1]).toEqual(runs[0]);
    expect(runs[2]).toEqual(runs[0]);
    // The worker count did take effect (run-info records it), so the runs really differed.
    const workers = ['1', '2', '3'].map((w) => JSON.parse(fs.readFileSync(path.join(dir, `w${w}`, 'run-info.json'), 'utf8')).analyze.workers);
    expect(workers).toEqual([1, 2, 3]);
  });

  it('repeats itself for the same seed and draws other samples for another seed', () => {
    const dir = tempDir();
    const a = analyze(path.join(dir, 'a'), '--seed', '7');
    const b = analyze(path.join(dir, 'b'), '--seed', '7');
    const c = analyze(path.join(dir, 'c'), '--seed', '8');
    expect(b).toEqual(a);
    expect(c['samples.json']).not.toBe(a['samples.json']);
    expect(c['cmd-model.safetensors']).not.toBe(a['cmd-model.safetensors']);
    const sa = sampleIndex(path.join(dir, 'a'));
    const sc = sampleIndex(path.join(dir, 'c'));
    expect(sa).toHaveLength(1000);
    expect(sc).toHaveLength(1000);
    // Different draws, not a permutation of the same ones.
    const inA = new Set(sa);
    expect([...sc].filter((g) => !inA.has(g)).length).toBeGreaterThan(500);
  });
});
