/**
 * The library API: everything the CLI does, as typed functions. Layout follows the pipeline:
 * formats → checkpoints and trajectory access → CMD core → outputs and report.
 */
export { CmdError, InputError, UsageError, RuntimeError, GateError, CancelledError } from './errors.ts';

// formats
export type { DType } from './formats/dtype.ts';
export { decodeInto, encodeFloats, DTYPES } from './formats/dtype.ts';
export type { StoredTensor, CheckpointContents, TensorToWrite, FormatName } from './formats/types.ts';
export { readSafetensorsHeader, readShardedSafetensors, writeSafetensors, planSafetensors } from './formats/safetensors.ts';
export { readNpyHeader, readNpyDirCheckpoint, readFlatNpyCheckpoint, writeNpy, writeNpyDir } from './formats/npy.ts';
export { readNpzCheckpoint, writeNpz } from './formats/npz.ts';
export { readTfjsCheckpoint, writeTfjsCheckpoint } from './formats/tfjs.ts';

// checkpoints and trajectories
export { discoverCheckpoints } from './checkpoints/discover.ts';
export { loadCheckpointSet, type CheckpointSet, type CheckpointInfo, type LoadOptions } from './checkpoints/checkpoint-set.ts';
export { describeCheckpointSet, type FolderDescription } from './checkpoints/describe.ts';
export { buildParameterSpace, locate, globalIndex, type ParameterSpace } from './checkpoints/parameter-space.ts';
export { TrajectoryReader, type TrajectoryPlan } from './trajectory/trajectory-reader.ts';
export { planTrajectory } from './trajectory/plan-trajectory.ts';
export { ElementReader } from './trajectory/element-reader.ts';

// the method
export * as core from './core/index.ts';
export { analyzeCheckpoints, type AnalyzeOptions, type AnalysisResult, type ModelSummary } from './pipeline/analyze.ts';

// outputs
export { openCmdModel, type CmdModel } from './output/model-reader.ts';
export { buildReport, readReport } from './output/report.ts';
export { RunReportSchema, reportJsonSchema, type RunReport } from './output/report-schema.ts';
export { reconstructedTensors, averagedTensors, originalTensors } from './reconstruct/checkpoint-tensors.ts';
export { writeCheckpointLike } from './reconstruct/write-checkpoint.ts';
export { evaluateRun, type EvalSpec } from './eval/evaluate-run.ts';

// runs: what the CLI commands do, with the same outputs, decisions and errors
export { analyze, type AnalyzeRun } from './run/analyze.ts';
export { reconstruct, type ReconstructRun } from './run/reconstruct.ts';
export type { AnalyzeRunOptions, ReconstructRunOptions, SelectionFlags } from './run/options.ts';
export type { RunHooks } from './run/hooks.ts';
export { DEFAULTS } from './run/defaults.ts';
export { watch, type WatchRunOptions } from './run/watch.ts';
