/**
 * Online CMD (cmd-algorithm.md §3): placeholder until the online pipeline lands.
 */
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import type { AnalyzeFlags } from '../cli/commands/analyze.ts';
import { UsageError } from '../errors.ts';
import type { AnalysisResult } from '../pipeline/analyze.ts';
import type { RunReport } from '../output/report-schema.ts';

export async function runOnlineAnalysis(_set: CheckpointSet, _flags: AnalyzeFlags, _stagingDir: string, _samplesFrom?: [string, number][]): Promise<{ report: RunReport; result: AnalysisResult }> {
  throw new UsageError('--online is not implemented yet');
}
