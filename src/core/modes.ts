/**
 * From flat cluster labels to numbered modes and their reference parameters
 * (docs/method.md §6 "Mode numbering" and §7 "References", the official `find_ref_w_per_mode`).
 */

/** The modes found among the K sampled parameters. */
export interface SampleModes {
  /** Number of modes M' (≤ requested M). */
  count: number;
  /** Per mode, the sample positions (0..K−1) of its members, ascending. */
  members: Int32Array[];
  /** Per mode, the scipy fcluster label it came from. */
  scipyLabel: number[];
  /** Per sample position, its mode. */
  modeOfSample: Int32Array;
}

/**
 * Numbers the flat clusters as modes: by number of sampled members, descending (mode 0 = the
 * largest cluster). Tie-break (documented deviation): the smaller scipy label first; the official
 * code sorts with pandas' unstable quicksort, so its order on ties is implementation-defined.
 */
export function numberModes(labels: Int32Array): SampleModes {
  const K = labels.length;
  let maxLabel = 0;
  for (let p = 0; p < K; p++) {
    if (labels[p] < 1) throw new RangeError(`numberModes: labels must be ≥ 1, got ${labels[p]} at position ${p}`);
    if (labels[p] > maxLabel) maxLabel = labels[p];
  }
  const sizes = new Int32Array(maxLabel + 1);
  for (let p = 0; p < K; p++) sizes[labels[p]]++;
  const present: number[] = [];
  for (let c = 1; c <= maxLabel; c++) if (sizes[c] > 0) present.push(c);
  present.sort((a, b) => sizes[b] - sizes[a] || a - b);
  const modeOfLabel = new Int32Array(maxLabel + 1).fill(-1);
  present.forEach((c, m) => (modeOfLabel[c] = m));
  const members = present.map((c) => new Int32Array(sizes[c]));
  const fill = new Int32Array(present.length);
  const modeOfSample = new Int32Array(K);
  for (let p = 0; p < K; p++) {
    const m = modeOfLabel[labels[p]];
    modeOfSample[p] = m;
    members[m][fill[m]++] = p;
  }
  return { count: present.length, members, scipyLabel: present, modeOfSample };
}

/** The reference parameter chosen for each mode. */
export interface ModeReferences {
  /** Per mode, the sample position (0..K−1) of its reference. */
  samplePosition: Int32Array;
  /** Per mode, the reference's mean |corr| with the mode's members (itself included). */
  meanAbsCorr: Float64Array;
}

/**
 * Per mode, the member with the largest mean |corr| to all members of the mode, diagonal
 * included (a constant member has 0 on its diagonal, as in the official code). Ties go to the
 * member that comes first in sample order (documented; the official member order comes from an
 * unstable argsort). `A` is the K × K |corr| matrix of {@link absCorrelation}.
 */
export function pickReferences(A: Float64Array, K: number, members: readonly Int32Array[]): ModeReferences {
  if (A.length !== K * K) throw new RangeError(`pickReferences: A has ${A.length} values, expected K² = ${K * K}`);
  const samplePosition = new Int32Array(members.length);
  const meanAbsCorr = new Float64Array(members.length);
  members.forEach((mem, m) => {
    if (mem.length === 0) throw new RangeError(`pickReferences: mode ${m} has no members`);
    let best = -1;
    let bestMean = -Infinity;
    for (const p of mem) {
      let s = 0;
      const row = p * K;
      for (const q of mem) s += A[row + q];
      const mean = s / mem.length;
      if (mean > bestMean) {
        bestMean = mean;
        best = p;
      }
    }
    samplePosition[m] = best;
    meanAbsCorr[m] = bestMean;
  });
  return { samplePosition, meanAbsCorr };
}
