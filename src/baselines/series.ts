/** Per-checkpoint error series shared by every baseline's result. */

/** Squared and relative reconstruction errors of one baseline, one entry per checkpoint. */
export interface ErrorSeries {
  /** ‖w_t − ŵ_t‖². */
  errSq: Float64Array;
  /** ‖w_t‖². */
  normSq: Float64Array;
  /** ‖w_t − ŵ_t‖ / ‖w_t‖ (0 when both are 0, Infinity when only ‖w_t‖ is 0 — the CMD report's convention). */
  relativeError: Float64Array;
}

/** Builds an {@link ErrorSeries}; negative rounding residue in `errSq` is clamped to 0. */
export function errorSeries(errSq: Float64Array, normSq: Float64Array): ErrorSeries {
  const e = Float64Array.from(errSq, (v) => (v > 0 ? v : 0));
  const rel = new Float64Array(e.length);
  for (let t = 0; t < e.length; t++) {
    const w = normSq[t];
    rel[t] = w > 0 ? Math.sqrt(e[t] / w) : e[t] > 0 ? Infinity : 0;
  }
  return { errSq: e, normSq: Float64Array.from(normSq), relativeError: rel };
}
