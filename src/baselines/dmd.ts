/**
 * Exact DMD baseline (Schmid 2010; Tu et al. 2014) on the RAW snapshots w_0 … w_{T−1} (no mean
 * subtraction, as DMD is normally run; the mean shows up as a mode with λ ≈ 1):
 *
 *     X1 = [w_0 … w_{T−2}],  X2 = [w_1 … w_{T−1}],  X1 ≈ U_r Σ_r V_rᵀ,  Ã = U_rᵀ X2 V_r Σ_r⁻¹,
 *     ŵ_t = U_r Ã^t U_rᵀ w_0.
 *
 * The reconstruction propagates the first snapshot in the reduced space with real powers of Ã. It
 * equals Φ Λ^t b with the projected modes Φ = U_r Y (Ã = Y Λ Y⁻¹) and amplitudes b = Φ⁺ w_0 — what
 * PyDMD's `reconstructed_data` gives by default — but needs no complex arithmetic and stays defined
 * when Ã is defective.
 *
 * Everything runs on a small matrix with the same Gram matrix as W. From the accumulator's
 * H = Gram([z_0 … z_{T−1}, μ]) (z_t the time-centred snapshots, μ the time mean) we take a square
 * root H = RᵀR; then W_s = R·[I_T; 1ᵀ] ((≤T+1) × T) satisfies W_sᵀW_s = WᵀW, so W = Q·W_s for some
 * Q with orthonormal columns. SVDs, projections, Ã and every reconstruction error ‖w_t − ŵ_t‖ are
 * invariant under such a Q, so computing them on W_s gives exactly the N-dimensional answers —
 * with the errors taken as norms of difference vectors (no ‖x‖² − 2xᵀx̂ + ‖x̂‖² cancellation) and
 * the SVD done on W_s itself rather than on its squared Gram. H is scaled to unit diagonal before
 * its eigendecomposition so that the huge μ column (|mean| ≫ std) does not swamp the z columns.
 */
import { mlMatrix } from './ml-matrix.ts';
import type { GramAccumulator } from './gram.ts';
import { symmetricEigen } from './pca.ts';
import { errorSeries, type ErrorSeries } from './series.ts';

const EPS = 2 ** -52;

/** DMD baseline at one rank. */
export interface DmdRankResult {
  /** Rank asked for, clamped to [1, T − 1]. */
  rank: number;
  /** Rank actually used: singular values of X1 at or below max(p, T−1)·ε·σ_1 are dropped (numpy's matrix_rank tolerance). */
  effectiveRank: number;
  /** Eigenvalues of Ã, sorted by descending modulus (ties: real part, then imaginary part). */
  eigenvalues: { re: number; im: number }[];
  errors: ErrorSeries;
  /**
   * ŵ_{T−1} = U_r y_{T−1} = X1·(V_r Σ_r⁻¹ y_{T−1}) as weights over the checkpoints (the last one
   * gets 0): the final DMD model, buildable from the checkpoints alone.
   */
  finalWeights: Float64Array;
}

/** DMD results for several ranks from one SVD of X1. */
export interface DmdResult {
  /** Singular values of X1 (descending). */
  singularValues: Float64Array;
  ranks: DmdRankResult[];
}

/**
 * The small isometric representation of the trajectory: `Ws[k·T + t]`, p × T, with WsᵀWs = WᵀW.
 * Exported for tests and for callers that want other linear algebra on the trajectory.
 */
export function isometricSnapshots(gram: GramAccumulator): { Ws: Float64Array; p: number } {
  const { T } = gram;
  const P = T + 1;
  const H = new Float64Array(P * P);
  for (let t = 0; t < T; t++) {
    for (let u = t; u < T; u++) {
      const v = gram.C[t * T + u];
      H[t * P + u] = v;
      H[u * P + t] = v;
    }
    H[t * P + T] = gram.s[t];
    H[T * P + t] = gram.s[t];
  }
  H[T * P + T] = gram.q[0];
  // Unit-diagonal scaling: D_j = H_jj^{-1/2} (zero columns stay zero).
  const d = new Float64Array(P);
  for (let j = 0; j < P; j++) d[j] = H[j * P + j] > 0 ? 1 / Math.sqrt(H[j * P + j]) : 0;
  for (let a = 0; a < P; a++) for (let b = 0; b < P; b++) H[a * P + b] *= d[a] * d[b];
  const { values, vectors } = symmetricEigen(H, P);
  const tol = P * EPS * Math.max(values[0], 0);
  let p = 0;
  while (p < P && values[p] > tol) p++;
  // R = Λ^{1/2} Vᵀ D⁻¹ (rows with eigenvalue ≤ tol dropped); Ws = R·[I_T; 1ᵀ].
  const Ws = new Float64Array(p * T);
  for (let k = 0; k < p; k++) {
    const sq = Math.sqrt(values[k]);
    const rMu = d[T] > 0 ? (sq * vectors[T * P + k]) / d[T] : 0;
    for (let t = 0; t < T; t++) {
      const rz = d[t] > 0 ? (sq * vectors[t * P + k]) / d[t] : 0;
      Ws[k * T + t] = rz + rMu;
    }
  }
  return { Ws, p };
}

/** Per-checkpoint reconstruction errors of rank-r exact DMD for each requested rank (needs T ≥ 2). */
export function finalizeDmd(gram: GramAccumulator, ranks: readonly number[]): DmdResult {
  const { T } = gram;
  if (T < 2) throw new RangeError(`finalizeDmd: DMD needs at least 2 checkpoints, got T = ${T}`);
  for (const r of ranks) {
    if (!Number.isInteger(r) || r < 1) throw new RangeError(`finalizeDmd: ranks must be positive integers, got ${r}`);
  }
  const { Ws, p } = isometricSnapshots(gram);
  const m = T - 1;
  if (p === 0) {
    // All-zero trajectory: every reconstruction is exact.
    const zero = errorSeries(new Float64Array(T), gram.normSq);
    return { singularValues: new Float64Array(0), ranks: ranks.map((r) => ({ rank: Math.min(r, m), effectiveRank: 0, eigenvalues: [], errors: zero, finalWeights: new Float64Array(T) })) };
  }
  const col = (t: number) => Array.from({ length: p }, (_, k) => Ws[k * T + t]);
  const { Matrix, SingularValueDecomposition } = mlMatrix();
  const X1 = new Matrix(Array.from({ length: p }, (_, k) => Array.from(Ws.subarray(k * T, k * T + m))));
  const svd = new SingularValueDecomposition(X1, { autoTranspose: true });
  const sigma = Float64Array.from(svd.diagonal);
  const U = svd.leftSingularVectors; // p × min(p, m)
  const V = svd.rightSingularVectors; // m × min(p, m)
  const tol = Math.max(p, m) * EPS * (sigma[0] ?? 0);
  let numerical = 0;
  while (numerical < sigma.length && sigma[numerical] > tol) numerical++;
  const out = ranks.map((requested): DmdRankResult => {
    const rank = Math.min(requested, m);
    const r = Math.min(rank, numerical);
    if (r === 0) {
      return { rank, effectiveRank: 0, eigenvalues: [], errors: errorSeries(gram.normSq, gram.normSq), finalWeights: new Float64Array(T) };
    }
    // B = X2 V_r Σ_r⁻¹ (p × r), then Ã = U_rᵀ B.
    const B = new Float64Array(p * r);
    for (let k = 0; k < p; k++) {
      for (let j = 0; j < r; j++) {
        let acc = 0;
        for (let t = 0; t < m; t++) acc += Ws[k * T + t + 1] * V.get(t, j);
        B[k * r + j] = acc / sigma[j];
      }
    }
    const A = new Float64Array(r * r);
    for (let a = 0; a < r; a++) {
      for (let b = 0; b < r; b++) {
        let acc = 0;
        for (let k = 0; k < p; k++) acc += U.get(k, a) * B[k * r + b];
        A[a * r + b] = acc;
      }
    }
    const x0 = col(0);
    let y = new Float64Array(r);
    for (let a = 0; a < r; a++) {
      let acc = 0;
      for (let k = 0; k < p; k++) acc += U.get(k, a) * x0[k];
      y[a] = acc;
    }
    const errSq = new Float64Array(T);
    for (let t = 0; t < T; t++) {
      if (t > 0) {
        const next = new Float64Array(r);
        for (let a = 0; a < r; a++) {
          let acc = 0;
          for (let b = 0; b < r; b++) acc += A[a * r + b] * y[b];
          next[a] = acc;
        }
        y = next;
      }
      let e = 0;
      for (let k = 0; k < p; k++) {
        let xh = 0;
        for (let a = 0; a < r; a++) xh += U.get(k, a) * y[a];
        const diff = Ws[k * T + t] - xh;
        e += diff * diff;
      }
      errSq[t] = e;
    }
    const finalWeights = new Float64Array(T);
    for (let s = 0; s < m; s++) for (let a = 0; a < r; a++) finalWeights[s] += (V.get(s, a) * y[a]) / sigma[a];
    return { rank, effectiveRank: r, eigenvalues: eigenvaluesOf(A, r), errors: errorSeries(errSq, gram.normSq), finalWeights };
  });
  return { singularValues: sigma, ranks: out };
}

function eigenvaluesOf(A: Float64Array, r: number): { re: number; im: number }[] {
  const rows = Array.from({ length: r }, (_, a) => Array.from(A.subarray(a * r, (a + 1) * r)));
  const { EigenvalueDecomposition, Matrix } = mlMatrix();
  const evd = new EigenvalueDecomposition(new Matrix(rows));
  const re = evd.realEigenvalues;
  const im = evd.imaginaryEigenvalues;
  return re
    .map((v, k) => ({ re: v, im: im[k] }))
    .sort((x, y) => Math.hypot(y.re, y.im) - Math.hypot(x.re, x.im) || y.re - x.re || y.im - x.im);
}
