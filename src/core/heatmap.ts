/**
 * The sampled |corr| matrix reordered by mode and block-averaged for display: people look
 * at it to see the modes as blocks on the diagonal (the paper's correlation figure).
 */

export interface Heatmap {
  /** Side of the square matrix (≤ maxSize). */
  size: number;
  /** size × size block means of |corr|, row-major. */
  values: Float32Array;
  /** Per mode, the first row of its block (in the reordered, downsampled matrix), plus `size` at the end. */
  modeStarts: number[];
}

/**
 * `A` is K × K; `members[m]` the sample positions of mode m. Rows/columns are taken mode by
 * mode, then the K × K matrix is averaged over blocks of ⌈K / maxSize⌉ rows and columns.
 */
export function corrHeatmap(A: Float64Array, K: number, members: readonly ArrayLike<number>[], maxSize = 256): Heatmap {
  const order: number[] = [];
  const starts: number[] = [];
  for (const mem of members) {
    starts.push(order.length);
    for (let i = 0; i < mem.length; i++) order.push(mem[i]);
  }
  const block = Math.ceil(K / maxSize);
  const size = Math.ceil(K / block);
  const sums = new Float64Array(size * size);
  const counts = new Float64Array(size * size);
  for (let i = 0; i < K; i++) {
    const bi = Math.floor(i / block);
    const row = order[i] * K;
    for (let j = 0; j < K; j++) {
      const cell = bi * size + Math.floor(j / block);
      sums[cell] += A[row + order[j]];
      counts[cell] += 1;
    }
  }
  const values = new Float32Array(size * size);
  for (let c = 0; c < values.length; c++) values[c] = counts[c] ? sums[c] / counts[c] : 0;
  return { size, values, modeStarts: [...starts.map((s) => Math.floor(s / block)), size] };
}
