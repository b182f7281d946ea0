/**
 * The report every command writes (`report.json`), as one zod schema: the TypeScript type,
 * the runtime validation of reports read back by `cmd report`, and the published JSON
 * Schema (docs/report-schema.json) all come from here.
 */
import { z } from 'zod';

export const REPORT_SCHEMA_VERSION = 1;

/** JSON has no NaN/Infinity; they are written as these strings, never silently as null. */
export const Num = z.union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])]);

export const CheckpointRef = z.object({
  index: z.number().int().nonnegative(),
  step: z.number(),
  name: z.string(),
});

export const Metrics = z.object({ accuracy: Num.optional(), loss: Num.optional(), error: z.string().optional() });

export const RunReportSchema = z.object({
  schemaVersion: z.literal(REPORT_SCHEMA_VERSION),
  tool: z.object({ name: z.string(), version: z.string() }),
  input: z.object({
    dir: z.string(),
    format: z.string(),
    checkpoints: z.array(CheckpointRef.extend({ bytes: z.number().int().nonnegative() })),
    modelledParameters: z.number().int().nonnegative(),
    modelledTensors: z.number().int().nonnegative(),
    carriedTensors: z.array(z.object({ name: z.string(), reason: z.string() })),
  }),
  method: z.object({
    variant: z.enum(['post-hoc', 'online']),
    modesRequested: z.number().int().positive(),
    modes: z.number().int().positive(),
    samplesRequested: z.number().int().nonnegative(),
    samples: z.number().int().positive(),
    sampling: z.enum(['U_B', 'U', 'file']),
    seed: z.number().int().nullable(),
    correlation: z.literal('abs-pearson'),
    distance: z.literal('euclidean-between-rows-of-abs-corr'),
    linkage: z.literal('complete'),
    cut: z.literal('maxclust'),
    warmup: z.number().int().nonnegative().optional(),
    skippedNonFinite: z.number().int().nonnegative(),
  }),
  modes: z.array(
    z.object({
      mode: z.number().int().nonnegative(),
      sampledCount: z.number().int().nonnegative(),
      assignedCount: z.number().int().nonnegative(),
      reference: z.object({ tensor: z.string(), element: z.number().int().nonnegative(), index: z.number().int().nonnegative() }),
      meanR2: Num,
      // 'NaN' only for a mode that ended up with no parameters assigned (possible, docs/method.md §5 and §8)
    }),
  ),
  checkpoints: z.array(CheckpointRef.extend({ relativeError: Num })),
  tensors: z.array(z.object({ name: z.string(), parameters: z.number().int().nonnegative(), relativeError: Num })),
  storage: z.object({
    checkpointsBytes: z.number().nonnegative(),
    oneCheckpointBytes: z.number().nonnegative(),
    modelBytes: z.number().nonnegative(),
    compressionVsTrajectory: Num,
    compressionVsFinalCheckpoint: Num,
  }),
  outputs: z.object({ model: z.string(), samples: z.string(), correlationHeatmap: z.string().optional(), reconstructed: z.array(z.string()).optional() }),
  /**
   * Where the numbers come from: `inputs` hashes every input of the decomposition (checkpoint
   * names, sizes and sampled values, selection, samples, seed, K, M, variant); `model` is the
   * sha256 of the model file. docs/report.md, "Provenance".
   */
  provenance: z.object({ inputs: z.string(), model: z.string() }).optional(),
  evaluation: z
    .object({
      method: z.string(),
      checkpoints: z.array(CheckpointRef.extend({ original: Metrics, cmd: Metrics })),
      average: z.object({ lastK: z.number().int().positive(), checkpoints: z.array(CheckpointRef), metrics: Metrics }).optional(),
      final: z.object({ original: Metrics, cmd: Metrics, accuracyDelta: Num.optional(), averageAccuracyDelta: Num.optional() }).optional(),
      /**
       * What was evaluated, by content: the decomposition's input hash and model file hash, the
       * evaluated checkpoints, the written files (sha256 each) and the evaluation data (sha256)
       * or command. Present whenever the evaluation was measured by the run that wrote the report.
       */
      provenance: z
        .object({
          inputs: z.string(),
          model: z.string(),
          checkpoints: z.array(z.string()),
          reconstructed: z.record(z.string(), z.string()),
          evalData: z.string().optional(),
          evalCommand: z.string().optional(),
        })
        .optional(),
    })
    .optional(),
  modeSweep: z
    .array(
      z.object({
        modesRequested: z.number().int().positive(),
        modes: z.number().int().positive(),
        model: z.string(),
        modelBytes: z.number().nonnegative(),
        compressionVsTrajectory: Num,
        checkpoints: z.array(CheckpointRef.extend({ relativeError: Num })),
        metrics: Metrics.optional(),
      }),
    )
    .optional(),
  baselines: z
    .array(
      z.object({
        name: z.string(),
        rank: z.number().optional(),
        storageBytes: z.number().optional(),
        checkpoints: z.array(CheckpointRef.extend({ relativeError: Num })),
        /** PCA/DMD: the final model as weights over the window's checkpoints (Σ_s w_s·x_s). */
        finalWeights: z.array(z.number()).optional(),
        metrics: Metrics.optional(),
      }),
    )
    .optional(),
  // Embedded-CMD simulation (docs/online.md): the freezing schedule replayed on the recorded run, no retraining.
  embedded: z
    .object({
      simulation: z.literal(true),
      window: z.number().int().positive(),
      percent: z.number().positive(),
      relative: z.boolean(),
      coefficientBytes: z.number().int().positive(),
      checkpoints: z.array(
        CheckpointRef.extend({
          embedding: z.boolean(),
          embedded: z.number().int().nonnegative(),
          newlyEmbedded: z.number().int().nonnegative(),
          embeddedFraction: Num,
          relativeError: Num,
          bytesSent: z.number().nonnegative(),
          bytesFull: z.number().nonnegative(),
        }),
      ),
      saved: Num,
      bytesSentTotal: z.number().nonnegative(),
      bytesFullTotal: z.number().nonnegative(),
    })
    .optional(),
});

export type RunReport = z.infer<typeof RunReportSchema>;
export type NumValue = z.infer<typeof Num>;

/** A number for the report: finite numbers stay numbers, the rest become their tag string. */
export function num(x: number): NumValue {
  if (Number.isFinite(x)) return x;
  return Number.isNaN(x) ? 'NaN' : x > 0 ? 'Infinity' : '-Infinity';
}

/** Reads a report number back (tags → NaN/±Infinity). */
export function fromNum(x: NumValue | undefined): number {
  if (x === undefined) return NaN;
  if (typeof x === 'number') return x;
  return x === 'NaN' ? NaN : x === 'Infinity' ? Infinity : -Infinity;
}

export function reportJsonSchema(): unknown {
  return z.toJSONSchema(RunReportSchema, { target: 'draft-2020-12' });
}
