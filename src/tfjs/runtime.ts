/**
 * Lazy TensorFlow.js runtime for evaluating LayersModels (docs/formats.md, "TensorFlow.js").
 *
 * tfjs takes about a second to load, so it is only ever imported dynamically from here; the
 * CLI commands that never evaluate a model do not pay for it. `@tensorflow/tfjs-node` is used
 * when the user has installed it; otherwise tfjs-core + tfjs-layers on the wasm backend.
 */
import type * as TfCore from '@tensorflow/tfjs-core';
import type * as TfLayers from '@tensorflow/tfjs-layers';
import { CmdError, InputError } from '../errors.ts';
import { readStoredBytes, readTfjsCheckpoint, tfjsExtras } from '../formats/tfjs.ts';

/** The part of the tfjs API we use: tfjs-core plus tfjs-layers, as one namespace. */
export type TfApi = typeof TfCore & typeof TfLayers;

/** A ready tfjs runtime. */
export interface TfModule {
  tf: TfApi;
  /** Active backend: 'tensorflow' with tfjs-node, else 'wasm'. */
  backend: string;
  /** Why tfjs-node was not used, when it is installed but failed to load. */
  nodeLoadError?: string;
}

let loading: Promise<TfModule> | undefined;

/**
 * Loads tfjs once per process (memoized; a failed load is retried on the next call). Prod mode
 * is enabled so tfjs never prints to stdout (it logs through console.log) or warns on stderr.
 */
export function loadTf(): Promise<TfModule> {
  loading ??= initTf().catch((err: unknown) => {
    loading = undefined;
    throw err;
  });
  return loading;
}

/** CommonJS packages arrive as a namespace whose `default` is `module.exports`. */
function unwrap<T>(mod: unknown): T {
  const m = mod as { default?: unknown };
  return (m.default && typeof m.default === 'object' ? m.default : m) as T;
}

async function initTf(): Promise<TfModule> {
  let nodeLoadError: string | undefined;
  // A variable specifier keeps TypeScript from resolving a package that is usually absent.
  const nodeSpecifier = '@tensorflow/tfjs-node';
  try {
    const tf = unwrap<TfApi>(await import(nodeSpecifier));
    tf.enableProdMode();
    await tf.ready();
    return { tf, backend: tf.getBackend() };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') nodeLoadError = (err as Error).message;
  }

  const core = unwrap<typeof TfCore>(await import('@tensorflow/tfjs-core'));
  core.enableProdMode(); // before any backend exists, so the cpu backend's Node banner never fires
  const layers = unwrap<typeof TfLayers>(await import('@tensorflow/tfjs-layers'));
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await core.setBackend('wasm'))) throw new CmdError('TensorFlow.js: the wasm backend failed to initialise', 2);
  await core.ready();
  const tf = { ...core, ...layers } as TfApi;
  return { tf, backend: core.getBackend(), ...(nodeLoadError ? { nodeLoadError } : {}) };
}

/**
 * Loads a LayersModel from a `model.json` on disk: the manifest and shard sizes are validated
 * by `readTfjsCheckpoint`, the weight bytes read by position in manifest order, and the model
 * built with `tf.io.fromMemory` (pure tfjs has no file:// handler in Node).
 */
export async function loadLayersModelFromDisk(modelJsonPath: string): Promise<TfLayers.LayersModel> {
  const contents = await readTfjsCheckpoint(modelJsonPath);
  const extras = tfjsExtras(contents);
  const model = extras?.model;
  if (!model || model.modelTopology == null) {
    throw new InputError(modelJsonPath, 'has no modelTopology, so it cannot be loaded as a model', 'not-layers-model');
  }
  if (model.format !== undefined && model.format !== 'layers-model') {
    throw new InputError(modelJsonPath, `format is "${String(model.format)}", expected "layers-model"`, 'not-layers-model');
  }
  const total = contents.tensors.reduce((a, t) => a + t.spans.reduce((b, s) => b + s.length, 0), 0);
  const weightData = new Uint8Array(total);
  let at = 0;
  for (const tensor of contents.tensors) {
    const bytes = await readStoredBytes(tensor);
    weightData.set(bytes, at);
    at += bytes.byteLength;
  }
  const { tf } = await loadTf();
  const weightSpecs = extras.manifest.flatMap((g) => g.weights) as TfCore.io.WeightsManifestEntry[];
  const artifacts: TfCore.io.ModelArtifacts = {
    modelTopology: model.modelTopology as TfCore.io.ModelArtifacts['modelTopology'],
    weightSpecs,
    weightData: weightData.buffer,
    ...(model.trainingConfig ? { trainingConfig: model.trainingConfig as TfCore.io.TrainingConfig } : {}),
  };
  return tf.loadLayersModel(tf.io.fromMemory(artifacts));
}
