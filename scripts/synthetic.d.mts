/** Types for scripts/synthetic.mjs (the synthetic checkpoint generator used by the bench and tests). */
export interface SyntheticTensor {
  name: string;
  shape: number[];
}

export interface SyntheticOptions {
  tensors: SyntheticTensor[];
  checkpoints: number;
  /** Number of planted latent modes (default 10). */
  modes?: number;
  /** Seed of every draw (default 1). */
  seed?: number;
  /** Target |corr| between two parameters of the same mode (default 0.9). */
  withinCorr?: number;
  /** Floats generated per write (default 4 Mi = 16 MB). */
  sliceElements?: number;
  onProgress?: (bytes: number) => void;
}

export function resnet18Tensors(scale?: number): SyntheticTensor[];
export function parameterCount(tensors: SyntheticTensor[]): number;
export function latentWalks(modes: number, checkpoints: number, seed: number): Float64Array;
export function plantedMode(i: number, modes: number, seed: number): number;
export function checkpointName(t: number): string;
export function writeSyntheticCheckpoints(dir: string, options: SyntheticOptions): { files: string[]; parameters: number; bytes: number };
