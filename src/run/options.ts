/** The options of a run, as the library and the CLI both give them, and their checking. */
import { promises as fsp } from 'node:fs';
import type { LoadOptions } from '../checkpoints/checkpoint-set.ts';
import { compileStepPattern } from '../checkpoints/naming.ts';
import { InputError, UsageError } from '../errors.ts';
import { loadTensorTable } from '../formats/npy.ts';
import type { FormatName } from '../formats/types.ts';
import type { BaselineKind } from '../pipeline/analyze.ts';
import type { OutputFormat } from '../reconstruct/write-checkpoint.ts';

/** Which checkpoints of a folder are read (every command that reads a folder takes these). */
export interface SelectionFlags {
  format?: FormatName;
  /** `reconstruct` names the input format --input-format, since its --format is the output's. */
  inputFormat?: FormatName;
  include?: string[];
  exclude?: string[];
  from?: number;
  to?: number;
  every?: number;
  orderBy?: 'name' | 'metadata';
  /** `--step-pattern`: regex whose first capture group is the step. */
  stepPattern?: string;
  tensorTable?: string;
  /** PyTorch checkpoints: dotted path of the dict holding the model tensors. */
  stateKey?: string;
  excludeTensors?: string[];
}

/** Remote inputs that replace the folder (docs/scale-out.md): a URL list, or the revisions of `hf://org/model`. */
export interface RemoteFlags {
  /** A file of http(s) checkpoint URLs, one per line. */
  urls?: string;
  /** With `hf://org/model` as the folder: the revisions (branches/tags), comma-separated or a list. */
  revisions?: string | string[];
}

/** `analyze` (and the decomposition step of `reconstruct`). Unset values take DEFAULTS (defaults.ts). */
export interface AnalyzeRunOptions extends SelectionFlags, RemoteFlags {
  /** Output folder (created; a non-empty one needs `force`). */
  out?: string;
  /** Leave parameters with NaN/±Inf out of the model instead of failing. */
  skipNonfinite?: boolean;
  /** Baselines beside CMD in the same pass: avg-last-k, ema, pca, dmd. */
  baselines?: BaselineKind[];
  avgLast?: number;
  emaBeta?: number;
  /** Extra mode counts of a sweep, fitted in the same pass. */
  sweepModes?: number[];
  /** Online CMD: modes and references from the first warm-up checkpoints, then running a, b. */
  online?: boolean;
  warmup?: number;
  embedWindow?: number;
  embedPerc?: number;
  embedRelative?: boolean;
  modes?: number;
  samples?: number;
  seed?: number;
  /** A samples file: JSON [tensor, element] pairs (e.g. an earlier samples.json). */
  samplesFrom?: string;
  workers?: number;
  chunkSize?: number;
  force?: boolean;
  /** An HTML report path the caller writes after the run: refused up front when it overlaps an input. */
  html?: string;
}

/** `reconstruct`: the decomposition options plus what is written and evaluated. */
export interface ReconstructRunOptions extends AnalyzeRunOptions {
  /** Use this cmd-model.safetensors instead of running the decomposition. */
  model?: string;
  /** last, all, or a comma list of steps. */
  checkpoints?: string;
  outputFormat?: OutputFormat;
  evalData?: string;
  evalCmd?: string;
  /** Also evaluate every k-th checkpoint (the default evaluates only what was written). */
  evalEvery?: number;
  evalJobs?: number;
  evalTimeout?: number;
}

export async function loadOptionsFrom(flags: SelectionFlags): Promise<LoadOptions> {
  if (flags.from !== undefined && flags.to !== undefined && flags.from > flags.to) throw new UsageError(`--from ${flags.from} is after --to ${flags.to}`);
  if (flags.stepPattern !== undefined) compileStepPattern(flags.stepPattern);
  if (flags.tensorTable) {
    try {
      await fsp.access(flags.tensorTable);
    } catch {
      throw new UsageError(`--tensor-table ${flags.tensorTable}: file not found`);
    }
  }
  return {
    format: flags.inputFormat ?? flags.format,
    include: flags.include,
    exclude: flags.exclude,
    from: flags.from,
    to: flags.to,
    every: flags.every,
    orderBy: flags.orderBy,
    stepPattern: flags.stepPattern,
    excludeTensors: flags.excludeTensors,
    stateKey: flags.stateKey,
    tensorTable: flags.tensorTable ? await loadTensorTable(flags.tensorTable) : undefined,
  };
}

/** Parses a samples file: a JSON array of [tensorName, elementOffset] pairs. */
export async function readSamplesFile(file: string): Promise<[string, number][]> {
  let json: unknown;
  try {
    json = JSON.parse(await fsp.readFile(file, 'utf8'));
  } catch (e) {
    throw new InputError(file, `cannot read samples (${(e as Error).message.split('\n')[0]})`, 'bad-samples');
  }
  if (!Array.isArray(json) || !json.every((p) => Array.isArray(p) && p.length === 2 && typeof p[0] === 'string' && Number.isInteger(p[1]) && p[1] >= 0)) {
    throw new InputError(file, 'must be a JSON array of [tensorName, elementOffset] pairs', 'bad-samples');
  }
  return json as [string, number][];
}

export function checkSampleFlags(flags: Pick<AnalyzeRunOptions, 'samplesFrom' | 'samples' | 'seed'>): void {
  if (flags.samplesFrom && (flags.samples !== undefined || flags.seed !== undefined)) {
    throw new UsageError('--samples-from fixes the samples; --samples and --seed cannot be combined with it');
  }
}
