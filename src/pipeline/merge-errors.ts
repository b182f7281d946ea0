/**
 * Merging chunk results into run totals, shared by post-hoc (src/pipeline/analyze.ts) and online
 * CMD (src/online/engine.ts). Sums are added in chunk order, so totals do not depend on which
 * worker finished first (docs/method.md §10).
 */

/** Squared reconstruction error and squared norm of the original values, summed. */
export interface ErrorSums {
  errSq: number;
  normSq: number;
}

/** A chunk piece's error sums: the piece lies in tensor `tensor`. */
export interface PieceErrorSums extends ErrorSums {
  tensor: number;
}

/** Adds each piece's sums to its tensor's entry of `perTensor` (and to `total` when given). */
export function addPieceErrors(perTensor: ErrorSums[], pieces: readonly PieceErrorSums[], total?: ErrorSums): void {
  for (const p of pieces) {
    if (total) {
      total.errSq += p.errSq;
      total.normSq += p.normSq;
    }
    perTensor[p.tensor].errSq += p.errSq;
    perTensor[p.tensor].normSq += p.normSq;
  }
}

/** ‖ŵ − w‖ / ‖w‖ from the sums; an all-zero original is 0 when reproduced exactly, else ∞. */
export function relativeError(errSq: number, normSq: number): number {
  return normSq > 0 ? Math.sqrt(errSq / normSq) : errSq > 0 ? Infinity : 0;
}
