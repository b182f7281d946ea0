import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadEvalData, type EvalData } from '../../src/eval/eval-data.ts';
import { createTfjsEvaluator, type TfjsEvaluator } from '../../src/eval/eval-tfjs.ts';

const FIXTURE = join(import.meta.dirname, '../../fixtures/fmnist-mlp');

interface TrainLog {
  epochs: { epoch: number; checkpoint: string; testAccuracy: number; testLoss: number }[];
}
const log = JSON.parse(readFileSync(join(FIXTURE, 'train-log.json'), 'utf8')) as TrainLog;

interface ModelJson {
  modelTopology: object;
  weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
}

/** Reads a fixture checkpoint's float32 weights by manifest name (single-shard, unquantized). */
function readCheckpoint(rel: string): { json: ModelJson; weights: Map<string, Float32Array>; ordered: Float32Array[] } {
  const dir = join(FIXTURE, rel);
  const json = JSON.parse(readFileSync(join(dir, 'model.json'), 'utf8')) as ModelJson;
  const bin = readFileSync(join(dir, json.weightsManifest[0].paths[0]));
  const weights = new Map<string, Float32Array>();
  const ordered: Float32Array[] = [];
  let offset = 0;
  for (const w of json.weightsManifest[0].weights) {
    expect(w.dtype).toBe('float32');
    const n = w.shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(n);
    for (let i = 0; i < n; i++) values[i] = bin.readFloatLE(offset + 4 * i);
    offset += 4 * n;
    weights.set(w.name, values);
    ordered.push(values);
  }
  expect(offset).toBe(bin.byteLength);
  return { json, weights, ordered };
}

describe('createTfjsEvaluator on the fmnist-mlp fixture', () => {
  let data: EvalData;
  let evaluator: TfjsEvaluator;
  const first = readCheckpoint(log.epochs[0].checkpoint);

  beforeAll(async () => {
    data = await loadEvalData(join(FIXTURE, 'test'));
    evaluator = await createTfjsEvaluator({ modelJson: first.json, data });
  });
  afterAll(() => evaluator?.dispose());

  it('reads a softmax output as probabilities and lists weights in manifest order', () => {
    expect(evaluator.probabilities).toBe(true);
    expect(evaluator.weightNames).toEqual(first.json.weightsManifest[0].weights.map((w) => w.name));
  });

  it('reproduces the accuracy and loss the training script logged for every epoch', async () => {
    expect(log.epochs).toHaveLength(20);
    for (const entry of log.epochs) {
      const { weights } = readCheckpoint(entry.checkpoint);
      const metrics = await evaluator.evaluate(weights);
      expect(Math.abs(metrics.accuracy - entry.testAccuracy), `epoch ${entry.epoch}`).toBeLessThanOrEqual(1e-6);
      expect(Math.abs(metrics.loss - entry.testLoss), `epoch ${entry.epoch}`).toBeLessThanOrEqual(1e-5 * entry.testLoss);
    }
    // The trajectory must still move, or the comparison above would prove little.
    const accs = log.epochs.map((e) => e.testAccuracy);
    expect(Math.max(...accs) - Math.min(...accs)).toBeGreaterThan(0.03);
  });

  it('accepts an ordered weight list equal to the named map', async () => {
    const last = readCheckpoint(log.epochs[19].checkpoint);
    const byName = await evaluator.evaluate(last.weights);
    const byOrder = await evaluator.evaluate(last.ordered);
    expect(byOrder).toEqual(byName);
  });

  it('rejects weights of the wrong size or count', async () => {
    const last = readCheckpoint(log.epochs[19].checkpoint);
    const bad = new Map(last.weights);
    bad.set('dense1/bias', new Float32Array(3));
    await expect(evaluator.evaluate(bad)).rejects.toThrow(/dense1\/bias has 3 values, shape \[40\] needs 40/);
    await expect(evaluator.evaluate(last.ordered.slice(1))).rejects.toThrow(/got 9 weight arrays, the model has 10/);
  });

  it('gives chance-level accuracy when the labels are shuffled', async () => {
    const labels = Int32Array.from(data.labels);
    let seed = 12345;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);
    for (let i = labels.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [labels[i], labels[j]] = [labels[j], labels[i]];
    }
    const shuffled = await createTfjsEvaluator({ modelJson: first.json, data: { ...data, labels } });
    try {
      const last = readCheckpoint(log.epochs[19].checkpoint);
      const metrics = await shuffled.evaluate(last.weights);
      expect(metrics.accuracy).toBeGreaterThan(0.05);
      expect(metrics.accuracy).toBeLessThan(0.15);
    } finally {
      shuffled.dispose();
    }
  });

  it('agrees between probability and logit readings of the same softmax output', async () => {
    // Treating probabilities as logits changes the loss but never the argmax.
    const asLogits = await createTfjsEvaluator({ modelJson: first.json, data, outputs: 'logits' });
    try {
      const last = readCheckpoint(log.epochs[19].checkpoint);
      const a = await evaluator.evaluate(last.weights);
      const b = await asLogits.evaluate(last.weights);
      expect(b.accuracy).toBe(a.accuracy);
      expect(b.loss).not.toBeCloseTo(a.loss, 2);
    } finally {
      asLogits.dispose();
    }
  });

  it('rejects data whose samples do not fit the model input', async () => {
    const bad: EvalData = { ...data, x: data.x.subarray(0, data.count * 100), xShape: [data.count, 100] };
    await expect(createTfjsEvaluator({ modelJson: first.json, data: bad })).rejects.toMatchObject({ rule: 'eval-input-shape' });
  });
});
