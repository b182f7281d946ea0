/**
 * Built-in, in-process evaluation of TF.js LayersModels: the topology is built once, then each
 * checkpoint's (or reconstruction's) weights are swapped in with `setWeights` and the model is
 * run over an in-memory evaluation set in batches.
 *
 * Metrics: top-1 accuracy (first maximum wins, as tf.argMax) and the mean sparse categorical
 * cross-entropy in nats. When the model ends in a softmax its outputs are probabilities and
 * are clipped to [1e-7, 1 - 1e-7] as Keras does; otherwise they are logits and go through a
 * log-softmax. Both sums are accumulated in float64.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfLayers from '@tensorflow/tfjs-layers';
import { CmdError, InputError } from '../errors.ts';
import { elementCount } from '../formats/dtype.ts';
import { loadTf, type TfApi } from '../tfjs/runtime.ts';
import type { EvalData } from './eval-data.ts';

/** Weights by manifest name, or as a list in `TfjsEvaluator.weightNames` order. */
export type EvalWeights = ReadonlyMap<string, Float32Array | Int32Array> | ReadonlyArray<Float32Array | Int32Array>;

/** Result of one evaluation. */
export interface EvalMetrics {
  /** Fraction of samples whose top-1 class equals the label, in [0, 1]. */
  accuracy: number;
  /** Mean cross-entropy (natural log); NaN when the model produced NaN. */
  loss: number;
}

export interface TfjsEvaluatorOptions {
  /** A whole `model.json` object (`{modelTopology, weightsManifest?}`) or a bare Keras topology. */
  modelJson: object;
  data: EvalData;
  /** Samples per predict call. @default 500 */
  batchSize?: number;
  /** How to read the model's output. @default 'auto' (probabilities iff the output layer is a softmax) */
  outputs?: 'auto' | 'probabilities' | 'logits';
  /** Named in error messages. @default 'model.json' */
  label?: string;
}

export interface TfjsEvaluator {
  /** Weight names in the order a weight list must follow: the manifest's, else the model's. */
  readonly weightNames: readonly string[];
  /** Whether outputs are treated as probabilities (true) or logits (false). */
  readonly probabilities: boolean;
  /** Loads `weights` into the model and evaluates it on the data. */
  evaluate(weights: EvalWeights): Promise<EvalMetrics>;
  /** Frees the model and the input tensor. */
  dispose(): void;
}

const PROB_EPS = 1e-7;

interface ModelJsonLike {
  modelTopology?: unknown;
  weightsManifest?: { weights?: { name?: unknown }[] }[];
}

function isSoftmaxOutput(model: TfLayers.LayersModel): boolean {
  const layer = model.outputs[0].sourceLayer;
  if (layer.getClassName() === 'Softmax') return true;
  const activation = (layer.getConfig() as { activation?: unknown }).activation;
  return activation === 'softmax';
}

/** Adds the metrics of one batch of outputs (`rows` × `width`, row-major) to the running sums. */
function scoreBatch(out: Float32Array, width: number, labels: Int32Array, start: number, probabilities: boolean, sums: { correct: number; loss: number }): void {
  const rows = out.length / width;
  for (let r = 0; r < rows; r++) {
    const o = r * width;
    const label = labels[start + r];
    let best = 0;
    for (let j = 1; j < width; j++) if (out[o + j] > out[o + best]) best = j;
    if (best === label && !Number.isNaN(out[o + best])) sums.correct++;
    if (probabilities) {
      sums.loss -= Math.log(Math.min(Math.max(out[o + label], PROB_EPS), 1 - PROB_EPS));
    } else {
      let max = -Infinity;
      for (let j = 0; j < width; j++) max = Math.max(max, out[o + j]);
      let sum = 0;
      for (let j = 0; j < width; j++) sum += Math.exp(out[o + j] - max);
      sums.loss += Math.log(sum) + max - out[o + label];
    }
  }
}

/**
 * Builds the model from its topology and returns an evaluator over `data`. The data's
 * per-sample shape must hold as many values as the model's input (it is reshaped to it).
 */
export async function createTfjsEvaluator(options: TfjsEvaluatorOptions): Promise<TfjsEvaluator> {
  const { modelJson, data, batchSize = 500, outputs = 'auto', label = 'model.json' } = options;
  const { tf } = await loadTf();
  const json = modelJson as ModelJsonLike;
  const topology = 'modelTopology' in json ? json.modelTopology : modelJson;
  if (topology == null || typeof topology !== 'object') throw new InputError(label, 'has no modelTopology object', 'not-layers-model');

  let model: TfLayers.LayersModel;
  try {
    // Only the topology: with a manifest, modelFromJSON would try to fetch the weights itself.
    model = await tf.models.modelFromJSON({ modelTopology: topology } as Parameters<TfApi['models']['modelFromJSON']>[0]);
  } catch (err) {
    throw new InputError(label, `cannot build the model from its topology: ${(err as Error).message}`, 'bad-topology');
  }
  if (model.outputs.length !== 1) {
    model.dispose();
    throw new InputError(label, `model has ${model.outputs.length} outputs, the evaluator supports exactly 1`, 'eval-outputs');
  }

  const variables = model.weights;
  const manifestNames = json.weightsManifest?.flatMap((g) => (g.weights ?? []).map((w) => String(w.name)));
  const weightNames = manifestNames && manifestNames.length > 0 ? manifestNames : variables.map((v) => v.originalName);
  const modelNames = new Set(variables.map((v) => v.originalName));
  const missing = weightNames.filter((n) => !modelNames.has(n));
  if (missing.length > 0 || weightNames.length !== variables.length) {
    model.dispose();
    throw new InputError(label, `manifest lists ${weightNames.length} weights, the topology has ${variables.length}${missing.length ? ` (not in the topology: ${missing.slice(0, 3).join(', ')})` : ''}`, 'eval-weights-mismatch');
  }

  const inputShape = model.inputs[0].shape.slice(1);
  const perSample = elementCount(data.xShape.slice(1));
  if (inputShape.some((d) => d == null) || elementCount(inputShape as number[]) !== perSample) {
    model.dispose();
    throw new InputError(data.files.x, `samples have shape [${data.xShape.slice(1).join(', ')}], the model input is [${inputShape.map((d) => d ?? '?').join(', ')}]`, 'eval-input-shape');
  }
  const width = model.outputs[0].shape[model.outputs[0].shape.length - 1];
  if (model.outputs[0].shape.length !== 2 || width == null || width < data.numClasses) {
    model.dispose();
    throw new InputError(data.files.y, `labels need ${data.numClasses} classes, the model output is [${model.outputs[0].shape.map((d) => d ?? '?').join(', ')}]`, 'eval-classes');
  }
  const probabilities = outputs === 'auto' ? isSoftmaxOutput(model) : outputs === 'probabilities';
  const xAll = tf.tensor(data.x, [data.count, ...(inputShape as number[])], 'float32');
  let disposed = false;

  function toTensors(tfApi: TfApi, weights: EvalWeights): TfCore.Tensor[] {
    const byName = new Map<string, Float32Array | Int32Array>();
    if (Array.isArray(weights)) {
      if (weights.length !== weightNames.length) throw new CmdError(`${label}: got ${weights.length} weight arrays, the model has ${weightNames.length}`, 2);
      weightNames.forEach((n, i) => byName.set(n, weights[i]));
    } else {
      for (const [k, v] of weights as ReadonlyMap<string, Float32Array | Int32Array>) byName.set(k, v);
    }
    return variables.map((v) => {
      const values = byName.get(v.originalName);
      if (!values) throw new CmdError(`${label}: no values given for weight ${v.originalName}`, 2);
      const shape = v.shape as number[];
      if (values.length !== elementCount(shape)) {
        throw new CmdError(`${label}: weight ${v.originalName} has ${values.length} values, shape [${shape.join(', ')}] needs ${elementCount(shape)}`, 2);
      }
      return tfApi.tensor(values, shape, v.dtype);
    });
  }

  return {
    weightNames,
    probabilities,
    async evaluate(weights) {
      if (disposed) throw new CmdError('evaluate() called after dispose()', 2);
      // Synchronous from setWeights to the last readback, so concurrent calls cannot interleave.
      tf.tidy(() => model.setWeights(toTensors(tf, weights)));
      const sums = { correct: 0, loss: 0 };
      for (let start = 0; start < data.count; start += batchSize) {
        const size = Math.min(batchSize, data.count - start);
        const out = tf.tidy(() => {
          const xb = tf.slice(xAll, start, size);
          return model.predict(xb) as TfCore.Tensor;
        });
        try {
          scoreBatch(out.dataSync() as Float32Array, width, data.labels, start, probabilities, sums);
        } finally {
          out.dispose();
        }
      }
      return { accuracy: sums.correct / data.count, loss: sums.loss / data.count };
    },
    dispose() {
      if (disposed) return;
      disposed = true;
      xAll.dispose();
      model.dispose();
    },
  };
}
