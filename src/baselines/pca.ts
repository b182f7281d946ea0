/**
 * PCA / DLDR-style subspace baseline: the snapshots w_t are centred on their time mean w̄ (which is
 * the vector of per-parameter means μ_i), the top-r principal directions v_1..v_r of the centred
 * snapshots are kept, and checkpoint t is reconstructed as ŵ_t = w̄ + Σ_k c_k(t) v_k with
 * c_k(t) = v_kᵀ(w_t − w̄) (orthogonal projection, as sklearn's PCA in DLDR does).
 *
 * With the centred Gram C = Z ᵀZ = Q Λ Qᵀ (method of snapshots, λ_1 ≥ λ_2 ≥ …), the residual of
 * checkpoint t is eₜᵀ(I − P) C (I − P)eₜ with P = Q_r Q_rᵀ, i.e. the tail sum
 *
 *     ‖w_t − ŵ_t‖² = Σ_{k > r} λ_k Q(t, k)²
 *
 * a sum of non-negative terms (no cancellation against the head of the spectrum).
 */
import { mlMatrix } from './ml-matrix.ts';
import { centredGram, type GramAccumulator } from './gram.ts';
import { errorSeries, type ErrorSeries } from './series.ts';

/** PCA baseline at one rank. */
export interface PcaRankResult {
  /** Rank used (the requested rank clamped to [0, T − 1]; rank 0 is the mean-only model). */
  rank: number;
  /** Fraction of the centred trajectory's energy Σ_t ‖w_t − w̄‖² captured by the r directions. */
  explained: number;
  errors: ErrorSeries;
  /**
   * The reconstruction of the last checkpoint as a weighted sum of the checkpoints,
   * ŵ_{T−1} = Σ_s α_s w_s (α = 1/T + (I − 11ᵀ/T)·V_r V_rᵀ e_{T−1}): the final PCA model, buildable
   * from the checkpoints alone, so it can be written and evaluated like the average.
   */
  finalWeights: Float64Array;
}

/** PCA baseline results for several ranks from one eigendecomposition. */
export interface PcaResult {
  /** Eigenvalues of C, descending, clamped at 0 (squared singular values of the centred snapshots). */
  spectrum: Float64Array;
  ranks: PcaRankResult[];
}

/** Symmetric eigendecomposition, eigenpairs sorted by descending eigenvalue (ties by index, so it is deterministic). */
export function symmetricEigen(A: Float64Array, T: number): { values: Float64Array; vectors: Float64Array } {
  const rows: number[][] = [];
  for (let t = 0; t < T; t++) rows.push(Array.from(A.subarray(t * T, (t + 1) * T)));
  const { EigenvalueDecomposition, Matrix } = mlMatrix();
  const evd = new EigenvalueDecomposition(new Matrix(rows), { assumeSymmetric: true });
  const lam = evd.realEigenvalues;
  const V = evd.eigenvectorMatrix;
  const order = lam.map((_, k) => k).sort((x, y) => lam[y] - lam[x] || x - y);
  const values = new Float64Array(T);
  const vectors = new Float64Array(T * T); // vectors[t·T + k] = k-th eigenvector at t
  order.forEach((src, k) => {
    values[k] = lam[src];
    for (let t = 0; t < T; t++) vectors[t * T + k] = V.get(t, src);
  });
  return { values, vectors };
}

/** Per-checkpoint reconstruction errors of rank-r PCA for each requested rank. */
export function finalizePca(gram: GramAccumulator, ranks: readonly number[]): PcaResult {
  const { T } = gram;
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 0) throw new RangeError(`finalizePca: ranks must be non-negative integers, got ${r}`);
  }
  const { values, vectors } = symmetricEigen(centredGram(gram), T);
  const spectrum = Float64Array.from(values, (v) => (v > 0 ? v : 0));
  let total = 0;
  for (const v of spectrum) total += v;
  // tail[k·T + t] = Σ_{j ≥ k} λ_j Q(t, j)², built from the smallest eigenvalue up.
  const tail = new Float64Array((T + 1) * T);
  for (let k = T - 1; k >= 0; k--) {
    for (let t = 0; t < T; t++) {
      const q = vectors[t * T + k];
      tail[k * T + t] = tail[(k + 1) * T + t] + spectrum[k] * q * q;
    }
  }
  const out: PcaRankResult[] = ranks.map((requested) => {
    const rank = Math.min(requested, Math.max(T - 1, 0));
    const errSq = tail.slice(rank * T, (rank + 1) * T);
    let head = 0;
    for (let k = 0; k < rank; k++) head += spectrum[k];
    const proj = new Float64Array(T);
    for (let s = 0; s < T; s++) for (let k = 0; k < rank; k++) proj[s] += vectors[s * T + k] * vectors[(T - 1) * T + k];
    const meanProj = proj.reduce((x, y) => x + y, 0) / T;
    const finalWeights = Float64Array.from(proj, (p) => 1 / T + p - meanProj);
    return { rank, explained: total > 0 ? head / total : 1, errors: errorSeries(errSq, gram.normSq), finalWeights };
  });
  return { spectrum, ranks: out };
}
