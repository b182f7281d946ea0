/**
 * Complete-linkage hierarchical clustering that reproduces `scipy.cluster.hierarchy.linkage(d,
 * method='complete')` merge for merge (docs/method.md §4).
 *
 * scipy runs the nearest-neighbour-chain algorithm on the condensed matrix, then stable-sorts the
 * merges by height and relabels the clusters with a union-find. Every tie rule below mirrors that
 * code path, so ties (duplicated rows, constant parameters) give the same tree as scipy.
 */
import { condensedLength } from './correlation.ts';

/**
 * scipy linkage matrix Z: (n − 1) rows of [id1, id2, height, size], row-major in a Float64Array.
 * Leaves are 0..n−1, the cluster formed by row r is n + r, id1 < id2.
 */
export type LinkageMatrix = Float64Array;

/** Options of {@link linkageComplete}. */
export interface LinkageOptions {
  /** Use `d` as the working matrix instead of copying it (saves K²/2 doubles; `d` is destroyed). */
  overwrite?: boolean;
}

/**
 * Complete linkage of n points given their condensed distances `d` (scipy `pdist` order).
 *
 * Tie rules (all scipy's): the chain starts at the lowest live cluster; the nearest neighbour of
 * the chain's tip is searched in increasing cluster slot order with a strict `<`, starting from
 * the previous chain element so a tie prefers going back; a merged pair keeps the higher slot;
 * merges are then sorted by height with a stable sort and renumbered n, n+1, … in that order.
 */
export function linkageComplete(d: Float64Array, n: number, options: LinkageOptions = {}): LinkageMatrix {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`linkageComplete: need at least 2 points, got ${n}`);
  if (d.length !== condensedLength(n)) {
    throw new RangeError(`linkageComplete: condensed matrix has ${d.length} entries, expected n(n−1)/2 = ${condensedLength(n)}`);
  }
  for (let p = 0; p < d.length; p++) {
    if (!Number.isFinite(d[p])) throw new RangeError(`linkageComplete: distance ${p} is ${d[p]}; all distances must be finite`);
  }
  const D = options.overwrite ? d : d.slice();
  const size = new Int32Array(n).fill(1);
  // rowStart[i] + (j − i − 1) = condensed position of (i, j > i).
  const rowStart = new Float64Array(n);
  for (let i = 0; i < n; i++) rowStart[i] = n * i - (i * (i + 1)) / 2 - i - 1;
  const chain = new Int32Array(n);
  let chainLength = 0;
  const raw = new Float64Array((n - 1) * 4);

  for (let k = 0; k < n - 1; k++) {
    if (chainLength === 0) {
      chainLength = 1;
      for (let i = 0; i < n; i++) {
        if (size[i] > 0) {
          chain[0] = i;
          break;
        }
      }
    }
    let x = 0;
    let y = 0;
    let currentMin = Infinity;
    for (;;) {
      x = chain[chainLength - 1];
      if (chainLength > 1) {
        y = chain[chainLength - 2];
        currentMin = D[x < y ? rowStart[x] + y : rowStart[y] + x];
      } else {
        currentMin = Infinity;
      }
      // Slots below x: D(i, x) sits in row i.
      for (let i = 0; i < x; i++) {
        if (size[i] === 0) continue;
        const dist = D[rowStart[i] + x];
        if (dist < currentMin) {
          currentMin = dist;
          y = i;
        }
      }
      // Slots above x: row x is contiguous.
      const rx = rowStart[x];
      for (let i = x + 1; i < n; i++) {
        if (size[i] === 0) continue;
        const dist = D[rx + i];
        if (dist < currentMin) {
          currentMin = dist;
          y = i;
        }
      }
      if (chainLength > 1 && y === chain[chainLength - 2]) break;
      chain[chainLength] = y;
      chainLength++;
    }
    chainLength -= 2;
    if (x > y) {
      const s = x;
      x = y;
      y = s;
    }
    const nx = size[x];
    const ny = size[y];
    raw[k * 4] = x;
    raw[k * 4 + 1] = y;
    raw[k * 4 + 2] = currentMin;
    raw[k * 4 + 3] = nx + ny;
    size[x] = 0;
    size[y] = nx + ny;
    // Lance–Williams for complete linkage: d(i, x∪y) = max(d(i, x), d(i, y)), stored in slot y.
    for (let i = 0; i < n; i++) {
      if (size[i] === 0 || i === y) continue;
      const pix = i < x ? rowStart[i] + x : rowStart[x] + i;
      const piy = i < y ? rowStart[i] + y : rowStart[y] + i;
      const a = D[pix];
      const b = D[piy];
      D[piy] = a > b ? a : b;
    }
  }
  return sortAndRelabel(raw, n);
}

/** Stable sort of the merges by height, then scipy's union-find relabelling (`label`). */
function sortAndRelabel(raw: Float64Array, n: number): LinkageMatrix {
  const m = n - 1;
  const order = Array.from({ length: m }, (_, r) => r);
  order.sort((p, q) => raw[p * 4 + 2] - raw[q * 4 + 2] || p - q);
  const Z = new Float64Array(m * 4);
  const parent = new Int32Array(2 * n - 1);
  const csize = new Int32Array(2 * n - 1).fill(1);
  for (let i = 0; i < parent.length; i++) parent[i] = i;
  const find = (x: number): number => {
    let root = x;
    while (parent[root] !== root) root = parent[root];
    while (parent[x] !== root) {
      const next = parent[x];
      parent[x] = root;
      x = next;
    }
    return root;
  };
  let nextLabel = n;
  for (let r = 0; r < m; r++) {
    const src = order[r] * 4;
    const xr = find(raw[src]);
    const yr = find(raw[src + 1]);
    Z[r * 4] = Math.min(xr, yr);
    Z[r * 4 + 1] = Math.max(xr, yr);
    Z[r * 4 + 2] = raw[src + 2];
    parent[xr] = nextLabel;
    parent[yr] = nextLabel;
    csize[nextLabel] = csize[xr] + csize[yr];
    Z[r * 4 + 3] = csize[nextLabel];
    nextLabel++;
  }
  return Z;
}
