/** The pure math core of CMD: typed arrays in, plain results out (no I/O). */
export { createRng, sampleDistinct, type Rng } from './rng.ts';
export {
  chooseScheme,
  drawSamples,
  planBalancedSample,
  type BalancedPlan,
  type DrawSamplesOptions,
  type SampleDraw,
  type SamplingScheme,
} from './sampling.ts';
export {
  absCorrelation,
  condensedIndex,
  condensedLength,
  rowDistances,
  rowDistancesBlock,
  splitRowsByPairs,
  activeDistanceKernel,
  type DistanceKernel,
} from './correlation.ts';
export { setKernel, kernelChoice, activeKernel, KERNEL_ENV, type KernelChoice } from './kernel-choice.ts';
export { corrHeatmap, type Heatmap } from './heatmap.ts';
export { linkageComplete, type LinkageMatrix, type LinkageOptions } from './linkage.ts';
export { clusterMonocrit, fclusterDistance, fclusterMaxclust, maxDistPerCluster } from './fcluster.ts';
export { numberModes, pickReferences, type ModeReferences, type SampleModes } from './modes.ts';
export {
  PINV_RCOND,
  createAccumulators,
  fitAssign,
  fitFixedModes,
  mergeAccumulators,
  prepareReferences,
  activeFitKernel,
  type FitKernel,
  type FitAccumulators,
  type FitOutput,
  type ReferenceStats,
} from './fit.ts';
