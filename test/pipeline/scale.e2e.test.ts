/**
 * Scale: `cmd analyze` on 10^8 parameters × 4 checkpoints (1.6 GB of F32) must stay under
 * 600 MB peak RSS and write complete outputs. Runs the built CLI as a child process.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parameterCount, resnet18Tensors, writeSyntheticCheckpoints } from '../../scripts/synthetic.mjs';
import { repoRoot, tempDir } from '../helpers/tmp.ts';

const N = 100_000_000;
const T = 4;
const K = 1000;
const RSS_LIMIT = 600e6;
const cli = path.join(repoRoot, 'bin', 'cmd.js');

/** ResNet-18 shapes ×8 (62 tensors, mixed sizes) plus one flat tensor topping up to exactly N. */
function tensorsOfN(total: number) {
  const tensors = resnet18Tensors(8);
  return [...tensors, { name: 'extra.weight', shape: [total - parameterCount(tensors)] }];
}

function vmHWM(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0; // exited between polls
  }
}

/** Runs the CLI, polling the child's high-water RSS (VmHWM covers every worker thread). */
function runCli(args: string[]): Promise<{ code: number | null; stderr: string; polledPeak: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    let polledPeak = 0;
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setInterval(() => (polledPeak = Math.max(polledPeak, vmHWM(child.pid!))), 25);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      resolve({ code, stderr, polledPeak });
    });
  });
}

function readHeader(file: string): { json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>; dataStart: number } {
  const fd = fs.openSync(file, 'r');
  try {
    const len = Buffer.alloc(8);
    fs.readSync(fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE(0));
    const body = Buffer.alloc(n);
    fs.readSync(fd, body, 0, n, 8);
    const json = JSON.parse(body.toString('utf8'));
    delete json.__metadata__;
    return { json, dataStart: 8 + n };
  } finally {
    fs.closeSync(fd);
  }
}

describe('cmd analyze at 10^8 parameters', () => {
  it('stays under 600 MB peak RSS and writes complete outputs', { timeout: 300_000 }, async () => {
    const work = tempDir('cmd-scale-');
    const stat = fs.statfsSync(work);
    const free = stat.bavail * stat.bsize;
    // 1.6 GB of checkpoints + 0.9 GB model + headroom.
    if (free < 4e9) throw new Error(`scale test needs 4 GB free in ${os.tmpdir()}, only ${(free / 1e9).toFixed(2)} GB available`);

    const input = path.join(work, 'ckpts');
    const tensors = tensorsOfN(N);
    expect(parameterCount(tensors)).toBe(N);
    writeSyntheticCheckpoints(input, { tensors, checkpoints: T, modes: 10, seed: 11 });

    const out = path.join(work, 'out');
    const run = await runCli(['analyze', input, '-o', out, '--modes', '10', '--samples', String(K), '--quiet']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);

    const runInfo = JSON.parse(fs.readFileSync(path.join(out, 'run-info.json'), 'utf8'));
    const peak = Math.max(run.polledPeak, runInfo.analyze.peakRssBytes);
    expect(run.polledPeak).toBeGreaterThan(0); // the poll did see the process
    expect(peak).toBeLessThanOrEqual(RSS_LIMIT);

    const report = JSON.parse(fs.readFileSync(path.join(out, 'report.json'), 'utf8'));
    expect(report.checkpoints).toHaveLength(T);
    expect(report.input.modelledParameters).toBe(N);
    const M: number = report.method.modes;
    expect(M).toBeGreaterThanOrEqual(1);
    expect(M).toBeLessThanOrEqual(10);

    // The model file holds a, b, mode for every tensor and nothing is missing or extra.
    const model = path.join(out, 'cmd-model.safetensors');
    const { json, dataStart } = readHeader(model);
    const expected = new Map<string, { dtype: string; shape: number[] }>();
    for (const t of tensors) {
      expected.set(`${t.name}.a`, { dtype: 'F32', shape: t.shape });
      expected.set(`${t.name}.b`, { dtype: 'F32', shape: t.shape });
      expected.set(`${t.name}.mode`, { dtype: 'U8', shape: t.shape });
    }
    expected.set('refs', { dtype: 'F32', shape: [M, T] });
    expected.set('reference_index', { dtype: 'I64', shape: [M] });
    expected.set('sample_index', { dtype: 'I64', shape: [K] });
    expect(Object.keys(json).sort()).toEqual([...expected.keys()].sort());
    for (const [name, e] of expected) expect({ name, dtype: json[name].dtype, shape: json[name].shape }).toEqual({ name, ...e });
    const dataBytes = N * 9 + M * T * 4 + M * 8 + K * 8;
    expect(Math.max(...Object.values(json).map((t) => t.data_offsets[1]))).toBe(dataBytes);
    expect(fs.statSync(model).size).toBe(dataStart + dataBytes);
    // Committed atomically: no staging folder or temp file beside or inside the output.
    expect(fs.readdirSync(work).sort()).toEqual(['ckpts', 'out']);
    expect(fs.readdirSync(out).filter((f) => f.startsWith('.'))).toEqual([]);
  });
});
