import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { appendFile, copyFile, mkdir, mkdtemp, readFile, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type * as TfLayers from '@tensorflow/tfjs-layers';
import type * as TfCore from '@tensorflow/tfjs-core';
import { InputError } from '../../src/errors.ts';
import { elementCount, encodeFloats } from '../../src/formats/dtype.ts';
import type { CheckpointContents, TensorToWrite } from '../../src/formats/types.ts';
import {
  decodeStoredTensor, readTfjsCheckpoint, stripTfjsCounter, tfjsExtras, writeTfjsCheckpoint,
} from '../../src/formats/tfjs.ts';
import { loadLayersModelFromDisk, loadTf, type TfApi } from '../../src/tfjs/runtime.ts';

const REAL = join(import.meta.dirname, '../../fixtures/tfjs-quantized-real');
const REAL_MODELS = ['face_landmark_68_tiny_model', 'tiny_face_detector_model'];

let work: string;
beforeAll(async () => { work = await mkdtemp(join(tmpdir(), 'cmd-tfjs-')); });
afterAll(async () => { await rm(work, { recursive: true, force: true }); });

// ------------------------------------------------------------------ test-only npz reader

/** Members of a stored (uncompressed) .npz holding little-endian float32 arrays. */
function readStoredNpz(path: string): Map<string, { shape: number[]; data: Float32Array }> {
  const buf = readFileSync(path);
  const eocd = buf.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  let entries = buf.readUInt16LE(eocd + 10);
  let cd = buf.readUInt32LE(eocd + 16);
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  while (entries-- > 0) {
    expect(buf.readUInt32LE(cd)).toBe(0x02014b50);
    expect(buf.readUInt16LE(cd + 10)).toBe(0); // stored, no compression
    let size = buf.readUInt32LE(cd + 24);
    let local = buf.readUInt32LE(cd + 42);
    const nameLen = buf.readUInt16LE(cd + 28);
    const extraLen = buf.readUInt16LE(cd + 30);
    const name = buf.toString('utf8', cd + 46, cd + 46 + nameLen);
    // ZIP64 extra: numpy writes 0xFFFFFFFF placeholders and the real values in field 0x0001.
    for (let e = cd + 46 + nameLen; e < cd + 46 + nameLen + extraLen;) {
      const id = buf.readUInt16LE(e);
      const len = buf.readUInt16LE(e + 2);
      if (id === 1) {
        let f = e + 4;
        if (size === 0xffffffff) { size = Number(buf.readBigUInt64LE(f)); f += 8; }
        if (buf.readUInt32LE(cd + 20) === 0xffffffff) f += 8;
        if (local === 0xffffffff) local = Number(buf.readBigUInt64LE(f));
      }
      e += 4 + len;
    }
    const dataStart = local + 30 + buf.readUInt16LE(local + 26) + buf.readUInt16LE(local + 28);
    const npy = buf.subarray(dataStart, dataStart + size);
    const headerLen = npy.readUInt16LE(8); // v1.0
    const header = npy.toString('latin1', 10, 10 + headerLen);
    expect(header).toContain("'descr': '<f4'");
    expect(header).toContain("'fortran_order': False");
    const shape = /'shape': \(([^)]*)\)/.exec(header)![1].split(',').filter((s) => s.trim()).map(Number);
    const body = npy.subarray(10 + headerLen);
    const data = new Float32Array(elementCount(shape));
    for (let i = 0; i < data.length; i++) data[i] = body.readFloatLE(i * 4);
    out.set(name.replace(/\.npy$/, ''), { shape, data });
    cd += 46 + nameLen + extraLen + buf.readUInt16LE(cd + 32);
  }
  return out;
}

async function decodeAll(contents: CheckpointContents): Promise<Float32Array[]> {
  return Promise.all(contents.tensors.map(async (t) => {
    const out = new Float32Array(elementCount(t.shape));
    await decodeStoredTensor(t, out);
    return out;
  }));
}

async function expectInputError(promise: Promise<unknown>, rule: string, file: string): Promise<InputError> {
  const err = await promise.then(() => undefined, (e: unknown) => e);
  expect(err).toBeInstanceOf(InputError);
  const ie = err as InputError;
  expect(ie.rule).toBe(rule);
  expect(ie.file).toBe(file);
  expect(ie.message.startsWith(`${file}: `)).toBe(true);
  expect(ie.message).not.toContain('\n');
  return ie;
}

// ------------------------------------------------------------------ (a) real quantized manifests

describe('real face-api.js uint8-quantized manifests', () => {
  for (const model of REAL_MODELS) {
    it(`${model}: every tensor dequantizes to the expected npz values`, async () => {
      const manifest = join(REAL, `${model}-weights_manifest.json`);
      const contents = await readTfjsCheckpoint(manifest);
      const expected = readStoredNpz(join(REAL, `${model}-expected.npz`));
      expect(contents.format).toBe('tfjs');
      expect(contents.files).toEqual([manifest, join(REAL, `${model}-shard1`)]);
      expect(contents.tensors.map((t) => t.name).sort()).toEqual([...expected.keys()].sort());
      const extras = tfjsExtras(contents)!;
      expect(extras.source).toBe('weights-manifest');
      expect(extras.model).toBeUndefined();
      expect(extras.weightNames).toEqual(contents.tensors.map((t) => t.name));

      const values = await decodeAll(contents);
      let compared = 0;
      contents.tensors.forEach((t, i) => {
        expect(t.dtype).toBe('F32');
        expect(t.encoding.dtype).toBe('U8');
        expect(t.encoding.quantization).toBeDefined();
        const want = expected.get(t.name)!;
        expect(t.shape).toEqual(want.shape);
        for (let k = 0; k < want.data.length; k++) {
          const a = values[i][k];
          const b = want.data[k];
          if (Math.abs(a - b) > 1e-6 * Math.abs(b) + 1e-30) throw new Error(`${t.name}[${k}]: ${a} vs ${b}`);
          compared++;
        }
      });
      expect(compared).toBeGreaterThan(50_000);
      // Spans tile the shard exactly, in manifest order, with no gaps.
      let end = 0;
      for (const t of contents.tensors) {
        for (const s of t.spans) { expect(s.offset).toBe(end); end += s.length; }
      }
      expect(end).toBe((await stat(contents.files[1])).size);
    });
  }

  it('agrees with tfjs-core\'s own decodeWeights to a few float32 ulps of each tensor\'s range', async () => {
    const { tf } = await loadTf();
    const name = REAL_MODELS[1];
    const contents = await readTfjsCheckpoint(join(REAL, `${name}-weights_manifest.json`));
    const specs = tfjsExtras(contents)!.manifest.flatMap((g) => g.weights) as TfCore.io.WeightsManifestEntry[];
    const shard = new Uint8Array(await readFile(join(REAL, `${name}-shard1`)));
    const theirs = tf.io.decodeWeights(shard.buffer, specs);
    const ours = await decodeAll(contents);
    let differing = 0;
    contents.tensors.forEach((t, i) => {
      const q = t.encoding.quantization!;
      // float32 scale, min, product and sum each round once: at most ~2 ulps of the range apart.
      const tol = 2 ** -21 * Math.max(Math.abs(q.min), Math.abs(q.min + 255 * q.scale));
      const ref = theirs[t.name].dataSync();
      for (let k = 0; k < ref.length; k++) {
        const d = Math.abs(ours[i][k] - ref[k]);
        if (d > tol) throw new Error(`${t.name}[${k}]: ${ours[i][k]} vs tfjs ${ref[k]}`);
        if (d > 0) differing++;
      }
    });
    // tfjs computes in double, the golden file in float32: they do differ, by a few ulps at most.
    expect(differing).toBeGreaterThan(0);
  });

  it('a quantized manifest written back as float32 reads back with the dequantized values', async () => {
    const src = await readTfjsCheckpoint(join(REAL, `${REAL_MODELS[0]}-weights_manifest.json`));
    const values = await decodeAll(src);
    const toWrite: TensorToWrite[] = src.tensors.map((t, i) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: encodeFloats('F32', values[i]) }));
    const dir = join(work, 'real-roundtrip');
    const written = await writeTfjsCheckpoint(dir, toWrite, src.extras);
    expect(written).toEqual([join(dir, 'weights_manifest.json'), join(dir, 'weights.bin')]);
    const back = await readTfjsCheckpoint(written[0]);
    expect(back.tensors.map((t) => [t.name, t.shape, t.encoding.dtype])).toEqual(src.tensors.map((t) => [t.name, t.shape, 'F32']));
    expect(await decodeAll(back)).toEqual(values);
  });
});

// ------------------------------------------------------------------ (b, c) tfjs-saved LayersModel

/** Deterministic values in [-1, 1). */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 31 - 1;
  };
}

interface Saved { modelJson: string; model: TfLayers.LayersModel; specs: { name: string; shape: number[] }[]; weightData: Uint8Array }

/** Builds a Dense+BN model, saves it through tfjs and splits the weight bytes into 3 shards mid-weight. */
async function saveTfjsModel(tf: TfApi, dir: string): Promise<Saved> {
  const model = tf.sequential();
  model.add(tf.layers.dense({ units: 5, inputShape: [4] }));
  model.add(tf.layers.batchNormalization());
  model.add(tf.layers.dense({ units: 3, activation: 'softmax' }));
  const rand = prng(7);
  model.setWeights(model.weights.map((w) => {
    const v = Float32Array.from({ length: elementCount(w.shape as number[]) }, () => rand());
    if (w.name.endsWith('moving_variance')) for (let i = 0; i < v.length; i++) v[i] = Math.abs(v[i]) + 0.1;
    return tf.tensor(v, w.shape as number[]);
  }));
  let artifacts: TfCore.io.ModelArtifacts | undefined;
  await model.save(tf.io.withSaveHandler(async (a) => {
    artifacts = a;
    return { modelArtifactsInfo: { dateSaved: new Date(), modelTopologyType: 'JSON' } };
  }));
  const weightData = new Uint8Array(tf.io.CompositeArrayBuffer.join(artifacts!.weightData!));
  // Cut points inside the first kernel (80 bytes) and inside a later weight.
  const cuts = [30, 101, weightData.byteLength];
  const paths = cuts.map((_, i) => `group1-shard${i + 1}of${cuts.length}.bin`);
  let from = 0;
  for (let i = 0; i < cuts.length; i++) {
    await writeFile(join(dir, paths[i]), weightData.subarray(from, cuts[i]));
    from = cuts[i];
  }
  const modelJson = join(dir, 'model.json');
  const { weightData: _, weightSpecs, ...rest } = artifacts!;
  await writeFile(modelJson, JSON.stringify({ ...rest, weightsManifest: [{ paths, weights: weightSpecs }] }));
  return { modelJson, model, specs: weightSpecs!, weightData };
}

describe('LayersModel saved by tfjs (3 shards, weights spanning shard boundaries)', () => {
  let tf: TfApi;
  let saved: Saved;
  let logSpy: ReturnType<typeof vi.spyOn>;
  let warnSpy: ReturnType<typeof vi.spyOn>;
  const input = () => tf.tensor2d(Float32Array.from({ length: 6 * 4 }, prng(99)), [6, 4]);

  beforeAll(async () => {
    logSpy = vi.spyOn(console, 'log');
    warnSpy = vi.spyOn(console, 'warn');
    ({ tf } = await loadTf());
    const dir = join(work, 'saved');
    await mkdir(dir);
    saved = await saveTfjsModel(tf, dir);
  });

  it('runs on the wasm backend in prod mode, memoized, printing nothing', async () => {
    const again = await loadTf();
    expect(again.tf).toBe(tf);
    expect(again.backend).toBe('wasm');
    expect(tf.env().getBool('PROD')).toBe(true);
    tf.tidy(() => saved.model.predict(input()));
    expect(logSpy).not.toHaveBeenCalled();
    expect(warnSpy).not.toHaveBeenCalled();
  });

  it('reads names, shapes, spans and values exactly', async () => {
    const contents = await readTfjsCheckpoint(saved.modelJson);
    expect(contents.files).toEqual([saved.modelJson, ...[1, 2, 3].map((i) => join(work, 'saved', `group1-shard${i}of3.bin`))]);
    expect(contents.tensors.map((t) => t.name)).toEqual(saved.specs.map((s) => s.name));
    expect(contents.tensors.map((t) => t.shape)).toEqual(saved.specs.map((s) => s.shape));
    // tfjs order: trainable weights first, BN moving statistics last.
    expect(contents.tensors.at(-1)!.name).toMatch(/moving_variance$/);
    const kernel = contents.tensors[0];
    expect(kernel.spans.map((s) => [s.path.endsWith('shard1of3.bin'), s.offset, s.length])).toEqual([[true, 0, 30], [false, 0, 50]]);
    expect(contents.tensors.some((t) => new Set(t.spans.map((s) => s.path)).size >= 2 && t !== kernel)).toBe(true);

    const decoded = tf.io.decodeWeights(saved.weightData.slice().buffer, saved.specs as TfCore.io.WeightsManifestEntry[]);
    const ours = await decodeAll(contents);
    contents.tensors.forEach((t, i) => {
      expect(t.encoding).toEqual({ dtype: 'F32' });
      expect(ours[i]).toEqual(decoded[t.name].dataSync());
    });
    const extras = tfjsExtras(contents)!;
    expect(extras.source).toBe('model.json');
    expect(extras.model).toMatchObject({ format: 'layers-model', convertedBy: null });
    expect(extras.model!.generatedBy).toMatch(/tfjs-layers/);
    expect(extras.model!.modelTopology).toMatchObject({ class_name: 'Sequential' });
    expect(extras.model).not.toHaveProperty('weightsManifest');
  });

  it('round trips through the writer and the written model predicts identically', async () => {
    const first = await readTfjsCheckpoint(saved.modelJson);
    const values = await decodeAll(first);
    const toWrite: TensorToWrite[] = first.tensors.map((t, i) => ({ name: t.name, dtype: t.dtype, shape: t.shape, data: encodeFloats('F32', values[i]) }));
    const dir = join(work, 'rewritten');
    const written = await writeTfjsCheckpoint(dir, toWrite, first.extras, { shardBytes: 40 });
    const shards = written.slice(1);
    expect(written[0]).toBe(join(dir, 'model.json'));
    expect(shards.map((p) => p.slice(dir.length + 1))).toEqual(shards.map((_, i) => `group1-shard${i + 1}of${shards.length}.bin`));
    for (const s of shards) expect((await stat(s)).size).toBeLessThanOrEqual(40);

    const second = await readTfjsCheckpoint(written[0]);
    expect(second.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual(first.tensors.map((t) => [t.name, t.dtype, t.shape]));
    expect(await decodeAll(second)).toEqual(values);
    expect(tfjsExtras(second)!.model).toEqual(tfjsExtras(first)!.model);

    const want = await (saved.model.predict(input()) as TfCore.Tensor).data();
    // Plain tfjs loading of what we wrote: our JSON, shard bytes concatenated in manifest order.
    const json = JSON.parse(await readFile(written[0], 'utf8'));
    const weightData = Buffer.concat(await Promise.all(shards.map((p) => readFile(p))));
    const viaMemory = await tf.loadLayersModel(tf.io.fromMemory({
      modelTopology: json.modelTopology, weightSpecs: json.weightsManifest[0].weights, weightData: new Uint8Array(weightData).buffer,
    }));
    expect(await (viaMemory.predict(input()) as TfCore.Tensor).data()).toEqual(want);
    const viaDisk = await loadLayersModelFromDisk(written[0]);
    expect(await (viaDisk.predict(input()) as TfCore.Tensor).data()).toEqual(want);
    // And the tfjs-saved 3-shard original through our loader.
    const original = await loadLayersModelFromDisk(saved.modelJson);
    expect(await (original.predict(input()) as TfCore.Tensor).data()).toEqual(want);
  });

  it('writes a single weights.bin when the data fits in one shard', async () => {
    const first = await readTfjsCheckpoint(saved.modelJson);
    const values = await decodeAll(first);
    const dir = join(work, 'single');
    const written = await writeTfjsCheckpoint(dir, first.tensors.map((t, i) => ({ name: t.name, dtype: 'F32', shape: t.shape, data: encodeFloats('F32', values[i]) })), first.extras);
    expect(written).toEqual([join(dir, 'model.json'), join(dir, 'weights.bin')]);
    expect((await stat(written[1])).size).toBe(saved.weightData.byteLength);
    expect(new Uint8Array(await readFile(written[1]))).toEqual(saved.weightData);
  });
});

// ------------------------------------------------------------------ writer dtypes

describe('writer dtypes', () => {
  it('writes F32, I32 and BOOL and reads them back', async () => {
    const dir = join(work, 'dtypes');
    const tensors: TensorToWrite[] = [
      { name: 'a', dtype: 'F32', shape: [3], data: encodeFloats('F32', [1.5, -2, 3]) },
      { name: 'b', dtype: 'I32', shape: [2, 1], data: encodeFloats('I32', [-7, 2 ** 30]) },
      { name: 'c', dtype: 'BOOL', shape: [], data: encodeFloats('BOOL', [1]) },
    ];
    const [json] = await writeTfjsCheckpoint(dir, tensors);
    const manifest = JSON.parse(await readFile(json, 'utf8')).weightsManifest;
    expect(manifest[0].weights.map((w: { dtype: string }) => w.dtype)).toEqual(['float32', 'int32', 'bool']);
    const back = await readTfjsCheckpoint(json);
    expect(back.tensors.map((t) => [t.name, t.dtype, t.shape])).toEqual([['a', 'F32', [3]], ['b', 'I32', [2, 1]], ['c', 'BOOL', []]]);
    const out = await decodeAll(back);
    expect([...out[0]]).toEqual([1.5, -2, 3]);
    expect([...out[1]]).toEqual([-7, 2 ** 30]);
    expect([...out[2]]).toEqual([1]);
  });

  it('refuses dtypes tfjs cannot store and data of the wrong length', async () => {
    await expect(writeTfjsCheckpoint(join(work, 'bad-w'), [{ name: 'h', dtype: 'F16', shape: [1], data: new Uint8Array(2) }])).rejects.toThrow(/F16/);
    await expect(writeTfjsCheckpoint(join(work, 'bad-w'), [{ name: 'f', dtype: 'F32', shape: [2], data: new Uint8Array(4) }])).rejects.toThrow(/needs 8/);
  });
});

// ------------------------------------------------------------------ (d) bad inputs

describe('bad inputs', () => {
  const entry = (name: string, shape: number[], extra: Record<string, unknown> = {}) => ({ name, shape, dtype: 'float32', ...extra });

  async function fixture(name: string, manifest: unknown, shards: Record<string, number>): Promise<string> {
    const dir = join(work, name);
    await mkdir(dir, { recursive: true });
    for (const [p, size] of Object.entries(shards)) {
      await mkdir(dirname(join(dir, p)), { recursive: true });
      await writeFile(join(dir, p), new Uint8Array(size));
    }
    const path = join(dir, 'model.json');
    await writeFile(path, typeof manifest === 'string' ? manifest : JSON.stringify(manifest));
    return path;
  }
  const model = (groups: unknown) => ({ format: 'layers-model', modelTopology: {}, weightsManifest: groups });

  it('model.json that is not JSON', async () => {
    const p = await fixture('not-json', '{"format": "layers-model", ', {});
    const err = await expectInputError(readTfjsCheckpoint(p), 'json-parse', p);
    expect(err.message).toContain('not valid JSON');
  });

  it('JSON that is neither a model.json nor a manifest, or breaks the schema', async () => {
    const p1 = await fixture('not-tfjs', { hello: 1 }, {});
    await expectInputError(readTfjsCheckpoint(p1), 'not-tfjs', p1);
    const p2 = await fixture('bad-schema', model([{ paths: ['w.bin'], weights: [entry('a', [2, -1])] }]), { 'w.bin': 8 });
    const err = await expectInputError(readTfjsCheckpoint(p2), 'bad-manifest', p2);
    expect(err.message).toMatch(/shape/);
  });

  it('missing shard names the shard', async () => {
    const p = await fixture('missing', model([{ paths: ['a.bin', 'b.bin'], weights: [entry('w', [4])] }]), { 'a.bin': 8 });
    await expectInputError(readTfjsCheckpoint(p), 'shard-missing', join(work, 'missing', 'b.bin'));
  });

  it('short shard names the shard that is short', async () => {
    const p = await fixture('short', model([{ paths: ['s1.bin', 's2.bin'], weights: [entry('w', [4]), entry('v', [3])] }]), { 's1.bin': 16, 's2.bin': 11 });
    const err = await expectInputError(readTfjsCheckpoint(p), 'shard-short', join(work, 'short', 's2.bin'));
    expect(err.message).toContain('needs 28 bytes');
    // A middle shard smaller than its siblings is blamed rather than the last one.
    const q = await fixture('short-mid', model([{ paths: ['s1.bin', 's2.bin', 's3.bin'], weights: [entry('w', [7])] }]), { 's1.bin': 12, 's2.bin': 8, 's3.bin': 4 });
    await expectInputError(readTfjsCheckpoint(q), 'shard-short', join(work, 'short-mid', 's2.bin'));
  });

  it('a real shard truncated by one byte, or with one extra byte', async () => {
    const dir = join(work, 'real-broken');
    await mkdir(dir);
    const name = REAL_MODELS[1];
    const json = join(dir, `${name}-weights_manifest.json`);
    const shard = join(dir, `${name}-shard1`);
    await copyFile(join(REAL, `${name}-weights_manifest.json`), json);
    await copyFile(join(REAL, `${name}-shard1`), shard);
    await readTfjsCheckpoint(json); // intact copy is fine
    await appendFile(shard, new Uint8Array(1));
    await expectInputError(readTfjsCheckpoint(json), 'shard-trailing-bytes', shard);
    await truncate(shard, (await stat(shard)).size - 2);
    await expectInputError(readTfjsCheckpoint(json), 'shard-short', shard);
  });

  it('shard paths leaving the folder are refused', async () => {
    for (const bad of ['../outside.bin', 'sub/../../outside.bin', '/etc/hostname', 'C:\\x.bin', '..\\x.bin']) {
      const p = await fixture('escape', model([{ paths: [bad], weights: [entry('w', [1])] }]), {});
      const err = await expectInputError(readTfjsCheckpoint(p), 'shard-path-escape', p);
      expect(err.message).toContain(bad);
    }
    // A sub-folder inside is fine.
    const ok = await fixture('inside', model([{ paths: ['sub/w.bin'], weights: [entry('w', [1])] }]), { 'sub/w.bin': 4 });
    expect((await readTfjsCheckpoint(ok)).tensors[0].spans).toEqual([{ path: join(work, 'inside', 'sub', 'w.bin'), offset: 0, length: 4 }]);
  });

  it('unsupported dtypes and quantizations', async () => {
    for (const dtype of ['string', 'complex64', 'float64']) {
      const p = await fixture(`dtype-${dtype}`, model([{ paths: ['w.bin'], weights: [entry('w', [1], { dtype })] }]), { 'w.bin': 8 });
      const err = await expectInputError(readTfjsCheckpoint(p), 'unsupported-dtype', p);
      expect(err.message).toContain(`"${dtype}"`);
      expect(err.message).toContain('weight "w"');
    }
    const rounding = await fixture('q-int32', model([{ paths: ['w.bin'], weights: [entry('w', [4], { dtype: 'int32', quantization: { dtype: 'uint8', scale: 1, min: 0 } })] }]), { 'w.bin': 4 });
    await expectInputError(readTfjsCheckpoint(rounding), 'unsupported-quantization', rounding);
    const noScale = await fixture('q-noscale', model([{ paths: ['w.bin'], weights: [entry('w', [4], { quantization: { dtype: 'uint8' } })] }]), { 'w.bin': 4 });
    await expectInputError(readTfjsCheckpoint(noScale), 'bad-manifest', noScale);
  });

  it('graph-model model.json reads as weights but is refused as a LayersModel', async () => {
    const p = await fixture('graph', { format: 'graph-model', modelTopology: { node: [] }, signature: { inputs: {} }, weightsManifest: [{ paths: ['w.bin'], weights: [entry('c', [2])] }] }, { 'w.bin': 8 });
    const contents = await readTfjsCheckpoint(p);
    expect(tfjsExtras(contents)!.model).toEqual({ format: 'graph-model', modelTopology: { node: [] }, signature: { inputs: {} } });
    await expectInputError(loadLayersModelFromDisk(p), 'not-layers-model', p);
  });

  it('duplicate weight names', async () => {
    const p = await fixture('dup', model([{ paths: ['w.bin'], weights: [entry('w', [1])] }, { paths: ['v.bin'], weights: [entry('w', [1])] }]), { 'w.bin': 4, 'v.bin': 4 });
    await expectInputError(readTfjsCheckpoint(p), 'duplicate-name', p);
  });
});

// ------------------------------------------------------------------ quantized encodings and groups

describe('encodings and groups', () => {
  it('uint16 and float16 quantization, offsets restarting per group', async () => {
    const dir = join(work, 'q16');
    await mkdir(dir);
    const u16 = new Uint8Array(new Uint16Array([0, 1000, 65535]).buffer);
    const f16 = new Uint8Array(new Uint16Array([0x3c00, 0xc000]).buffer); // 1, -2
    await writeFile(join(dir, 'g1.bin'), u16);
    await writeFile(join(dir, 'g2.bin'), f16);
    const manifest = [
      { paths: ['g1.bin'], weights: [{ name: 'u', shape: [3], dtype: 'float32', quantization: { dtype: 'uint16', scale: 0.5, min: -3 } }] },
      { paths: ['g2.bin'], weights: [{ name: 'h', shape: [2], dtype: 'float32', quantization: { dtype: 'float16' } }] },
    ];
    const path = join(dir, 'weights_manifest.json');
    await writeFile(path, JSON.stringify(manifest));
    const contents = await readTfjsCheckpoint(path);
    expect(contents.tensors.map((t) => t.encoding)).toEqual([{ dtype: 'U16', quantization: { scale: 0.5, min: -3 } }, { dtype: 'F16' }]);
    expect(contents.tensors[1].spans).toEqual([{ path: join(dir, 'g2.bin'), offset: 0, length: 4 }]);
    const [u, h] = await decodeAll(contents);
    expect([...u]).toEqual([-3, 497, 65535 * 0.5 - 3]);
    expect([...h]).toEqual([1, -2]);
  });
});

// ------------------------------------------------------------------ names and lazy loading

describe('stripTfjsCounter', () => {
  it.each([
    ['dense_Dense12/kernel', 'dense_Dense/kernel'],
    ['batch_normalization_BatchNormalization3/moving_mean', 'batch_normalization_BatchNormalization/moving_mean'],
    ['conv2d_Conv2D1/bias', 'conv2d_Conv2D/bias'],
    ['conv2d/kernel', 'conv2d/kernel'],
    ['my_layer2/kernel', 'my_layer2/kernel'],
    ['dense_Conv2D1/kernel', 'dense_Conv2D1/kernel'],
    ['dense0/conv1/bias', 'dense0/conv1/bias'],
  ])('%s → %s', (input, want) => {
    expect(stripTfjsCounter(input)).toBe(want);
  });
});

it('tfjs is imported only dynamically', async () => {
  for (const file of ['../../src/formats/tfjs.ts', '../../src/tfjs/runtime.ts']) {
    const src = await readFile(join(import.meta.dirname, file), 'utf8');
    const staticImports = src.split('\n').filter((l) => /^import\s/.test(l) && !/^import type\s/.test(l));
    expect(staticImports.filter((l) => l.includes('@tensorflow'))).toEqual([]);
  }
});
