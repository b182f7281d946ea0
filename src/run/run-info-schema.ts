/** The schema of `run-info.json` (run-info.ts reads and writes it). */
import { z } from 'zod';

const CommandEntry = z.looseObject({ seconds: z.number().nonnegative() });
const KeySchema = z.object({
  variant: z.enum(['post-hoc', 'online']),
  modesRequested: z.number(),
  samplesRequested: z.number().nullable(),
  seed: z.number().nullable(),
  samplesFile: z.string().nullable(),
  warmup: z.number().nullable(),
  skipNonfinite: z.boolean(),
  selection: z.record(z.string(), z.unknown()),
  tensorTable: z.string().nullable(),
  checkpoints: z.array(z.object({ name: z.string(), bytes: z.number(), mtimeMs: z.number(), sampledValues: z.string() })),
});

export const RunInfoSchema = z.looseObject({
  /** Which command computed the model in this folder, and from what. */
  decomposition: z.object({ command: z.enum(['analyze', 'reconstruct', 'watch']), key: KeySchema }).optional(),
  analyze: CommandEntry.optional(),
  reconstruct: CommandEntry.optional(),
  watch: CommandEntry.optional(),
});

export type RunInfo = z.infer<typeof RunInfoSchema>;
