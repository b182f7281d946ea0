/**
 * The bench's "floor" of `cmd analyze` (docs/performance.md, "The floor on this machine"): a lower
 * bound on the whole process's wall and CPU time for a trajectory, built from parts measured here,
 * in this process, on the same checkpoint files:
 *
 *   node start       a bare `node -e 0` (best of 5)
 *   pass 1           K × T single-value positioned reads at K random parameters of every file
 *   clustering       |corr|, row distances and complete linkage of those K trajectories (warm;
 *                    the distances counted as if split perfectly over the cores)
 *   pass-2 kernel    fitAssign (M modes) on a slice of the real values, warm, per core, scaled to N·T
 *   pass-2 reads     every checkpoint byte read with 8 MB preads (the bench's read line)
 *   model            the model's byte count written, synced and hashed once (sha256)
 *
 * Wall floor = node start + pass 1 + clustering (distances ÷ cores) + (kernel + reads + model) ÷ cores:
 * pass 2 and the model writing split perfectly over the cores. CPU floor = the sum of the parts'
 * CPU seconds. Loading the code, reading checkpoint headers, starting worker threads, JIT
 * compilation, garbage collection, the samples/heatmap/report files and every scheduling loss count
 * as zero, so a real run cannot reach this floor: a target below it cannot be met on this machine
 * with these kernels and the same float64 results.
 *
 * Imports the compiled library from dist/ (`npm run bench` builds it first).
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dist = new URL('../dist/', import.meta.url);
const { absCorrelation, rowDistances } = await import(new URL('core/correlation.js', dist).href);
const { linkageComplete } = await import(new URL('core/linkage.js', dist).href);
const { createAccumulators, fitAssign, prepareReferences } = await import(new URL('core/fit.js', dist).href);
const { readSafetensorsHeader } = await import(new URL('formats/safetensors.js', dist).href);
/** The model's sha256 as a run computes it once (src/io/file-sha256.ts). */
export const { fileSha256Sync } = await import(new URL('io/file-sha256.js', dist).href);

const timeBin = ['/usr/bin/time', '/bin/time'].find((p) => fs.existsSync(p));

/** Wall and CPU seconds of `fn` in this process. */
function timed(fn) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const value = fn();
  const c = process.cpuUsage(c0);
  return { seconds: (performance.now() - t0) / 1000, cpu: (c.user + c.system) / 1e6, value };
}

/** The run with the least CPU time of `count` runs of `run` (a floor takes every part at its best). */
function cheapest(count, run) {
  let best;
  for (let i = 0; i < count; i++) {
    const r = run();
    if (!best || r.cpu < best.cpu) best = r;
  }
  return best;
}

/** Best wall (and its CPU) of five bare `node -e 0`, CPU from /usr/bin/time when present. */
function nodeStart() {
  let best = { seconds: Infinity, cpu: NaN };
  for (let i = 0; i < 5; i++) {
    const t0 = performance.now();
    const r = timeBin ? spawnSync(timeBin, ['-f', '%U %S', process.execPath, '-e', '0'], { encoding: 'utf8' }) : spawnSync(process.execPath, ['-e', '0']);
    const seconds = (performance.now() - t0) / 1000;
    const m = timeBin ? /([\d.]+) ([\d.]+)\s*$/.exec(r.stderr) : null;
    if (seconds < best.seconds) best = { seconds, cpu: m ? Number(m[1]) + Number(m[2]) : seconds };
  }
  return best;
}

/** The byte range [start, end) of a checkpoint's largest F32 tensor, by the project's safetensors reader. */
async function largestTensor(file) {
  const { tensors } = await readSafetensorsHeader(file);
  const span = tensors.filter((t) => t.dtype === 'F32' && t.spans.length === 1).map((t) => t.spans[0]).reduce((a, b) => (b.length > a.length ? b : a));
  return { start: span.offset, end: span.offset + span.length };
}

/** Deterministic positions (xorshift32) so every bench run reads the same bytes. */
function positions(count, size, seed) {
  let s = seed >>> 0 || 1;
  return Array.from({ length: count }, () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % size;
  });
}

/**
 * @param {string[]} files the checkpoint files, in order
 * @param {{ N: number, K?: number, M?: number, slice?: number, readSeconds: number, modelBytes: number, scratchDir: string }} o
 *   readSeconds: the bench's 8 MB-pread time of every byte (single thread); modelBytes: the model file's size.
 */
export async function measureFloor(files, o) {
  const { N, K = 1000, M = 10, slice = 262144, readSeconds, modelBytes, scratchDir } = o;
  const T = files.length;
  const cores = os.availableParallelism();
  const region = await largestTensor(files[0]);
  const elements = (region.end - region.start) / 4;
  const fds = files.map((f) => fs.openSync(f, 'r'));
  try {
    const start = nodeStart();

    // Pass 1: K × T single-value reads, sample-major as the reader does.
    const at = positions(K, elements, 20240501).sort((a, b) => a - b);
    const X = new Float64Array(K * T);
    const one = Buffer.alloc(4);
    const pass1 = cheapest(3, () =>
      timed(() => {
        for (let j = 0; j < K; j++) {
          for (let t = 0; t < T; t++) {
            fs.readSync(fds[t], one, 0, 4, region.start + 4 * at[j]);
            X[j * T + t] = one.readFloatLE(0);
          }
        }
      }),
    );

    // Clustering, warm (the second of two runs): |corr|, distances, linkage.
    const cluster = () => {
      const A = absCorrelation(X, K, T);
      const d = timed(() => rowDistances(A, K));
      const Z = timed(() => linkageComplete(d.value, K, { overwrite: true }));
      return { distances: d, linkage: Z };
    };
    cluster();
    const corr = timed(() => absCorrelation(X, K, T));
    const { distances, linkage } = cluster();

    // Pass-2 kernel: fitAssign on `slice` real parameters × T (checkpoint-major, as a chunk),
    // with M of the sampled trajectories as references; warm, best of 3.
    const n = Math.min(slice, elements);
    const values = new Float32Array(T * n);
    for (let t = 0; t < T; t++) fs.readSync(fds[t], new Uint8Array(values.buffer, t * n * 4, n * 4), 0, n * 4, region.start);
    const refs = new Float64Array(M * T);
    for (let m = 0; m < M; m++) for (let t = 0; t < T; t++) refs[m * T + t] = X[Math.floor((m * K) / M) * T + t];
    const stats = prepareReferences(refs, M, T);
    const out = { mode: new Uint8Array(n), a: new Float32Array(n), b: new Float32Array(n) };
    const fit = () => timed(() => fitAssign(values, n, stats, out, createAccumulators(M, T)));
    fit();
    const kernel = cheapest(3, fit);
    const kernelCpu = (kernel.cpu * N) / n;

    // The model: its bytes written by position in 8 MB blocks, synced, hashed once.
    const target = path.join(scratchDir, `floor-model-${process.pid}.bin`);
    const model = cheapest(3, () => timed(() => {
      const buf = Buffer.alloc(8 << 20, 1);
      const fd = fs.openSync(target, 'w');
      for (let pos = 0; pos < modelBytes; pos += buf.length) fs.writeSync(fd, buf, 0, Math.min(buf.length, modelBytes - pos), pos);
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      return fileSha256Sync(target);
    }));
    fs.rmSync(target, { force: true });

    const clusterCpu = corr.cpu + distances.cpu + linkage.cpu;
    const parts = {
      nodeStart: { seconds: start.seconds, cpu: start.cpu },
      pass1Reads: { seconds: pass1.seconds, cpu: pass1.cpu, reads: K * T },
      clustering: { seconds: corr.seconds + distances.seconds / cores + linkage.seconds, cpu: clusterCpu, distancesSeconds: distances.seconds },
      pass2Kernel: { seconds: kernelCpu / cores, cpu: kernelCpu, valuesPerSecondPerCore: (n * T) / kernel.cpu, M },
      pass2Reads: { seconds: readSeconds / cores, cpu: readSeconds },
      model: { seconds: model.seconds / cores, cpu: model.cpu, bytes: modelBytes },
    };
    const wall = Object.values(parts).reduce((s, p) => s + p.seconds, 0);
    const cpu = Object.values(parts).reduce((s, p) => s + p.cpu, 0);
    return { cores, K, M, wall, cpu, parts };
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
}
