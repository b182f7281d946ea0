/**
 * Storage of CMD and of the low-rank baselines, in bytes of tensor data (file headers and
 * metadata excluded on both sides), and the "same storage" rank (docs/baselines.md §Storage).
 */

/** Sizes that determine a CMD model's tensor bytes. */
export interface CmdModelSize {
  /** Modelled parameters N. */
  parameters: number;
  /** Modes M. */
  modes: number;
  /** Checkpoints T in the fitted window. */
  checkpoints: number;
  /** Sampled parameters K (their int64 indices are stored too). @default 0 */
  samples?: number;
}

/**
 * Tensor bytes of `cmd-model.safetensors`: N·(4 + 4 + b_mode) for a, b (float32) and the mode id
 * (b_mode = 1 for M ≤ 256, else 2), 4·M·T for the float32 reference curves, 8·(M + K) for the
 * int64 reference and sample indices.
 */
export function cmdModelBytes(size: CmdModelSize): number {
  const { parameters: N, modes: M, checkpoints: T, samples: K = 0 } = size;
  for (const [name, v] of [['parameters', N], ['modes', M], ['checkpoints', T], ['samples', K]] as const) {
    if (!Number.isInteger(v) || v < 0) throw new RangeError(`cmdModelBytes: ${name} must be a non-negative integer, got ${v}`);
  }
  const modeBytes = M <= 256 ? 1 : 2;
  return N * (8 + modeBytes) + 4 * M * T + 8 * (M + K);
}

/** Rank-r PCA model: r basis vectors and the mean (N float32 each) plus T·r float32 coefficients. */
export function pcaBytes(rank: number, N: number, T: number): number {
  return 4 * ((rank + 1) * N + T * rank);
}

/** Rank-r DMD model: r modes of N float32, r eigenvalues and r amplitudes (complex: 2 float32 each). */
export function dmdBytes(rank: number, N: number): number {
  return 4 * (rank * N + 4 * rank);
}

/** Largest ranks whose PCA / DMD storage fits a byte budget. */
export interface SameStorageRanks {
  /** Largest r with pcaBytes(r) ≤ budget, at most T − 1; -1 when even the mean (4N bytes) does not fit. */
  pca: number;
  /** Largest r with dmdBytes(r) ≤ budget, at most T − 1; 0 means no DMD model fits (report it as unavailable). */
  dmd: number;
}

/**
 * The largest PCA and DMD ranks whose storage is at most `cmdModelBytes` (use
 * {@link cmdModelBytes}, or the model file's tensor bytes). Ranks are capped at T − 1: the centred
 * trajectory has rank ≤ T − 1 and X1 has T − 1 columns, so more would store nothing useful. PCA
 * rank 0 is a real model (the time mean w̄, 4N bytes); DMD has no rank-0 model.
 */
export function sameStorageRank(cmdBytes: number, N: number, T: number): SameStorageRanks {
  if (!(cmdBytes >= 0)) throw new RangeError(`sameStorageRank: cmdModelBytes must be non-negative, got ${cmdBytes}`);
  if (!Number.isInteger(N) || N < 1) throw new RangeError(`sameStorageRank: N must be a positive integer, got ${N}`);
  if (!Number.isInteger(T) || T < 1) throw new RangeError(`sameStorageRank: T must be a positive integer, got ${T}`);
  const cap = T - 1;
  const largest = (bytes: (r: number) => number, first: number) => {
    // Closed forms give the estimate; the loops guard against rounding at the boundary.
    let r = first;
    while (r > -1 && bytes(r) > cmdBytes) r--;
    while (bytes(r + 1) <= cmdBytes && r + 1 <= cap) r++;
    return Math.min(r, cap);
  };
  const pca = largest((r) => pcaBytes(r, N, T), Math.floor((cmdBytes / 4 - N) / (N + T)));
  const dmd = Math.max(0, largest((r) => dmdBytes(r, N), Math.floor(cmdBytes / 4 / (N + 4))));
  return { pca: Math.max(pca, -1), dmd };
}
