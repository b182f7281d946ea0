/**
 * Flat clusters from a linkage tree with scipy's `fcluster` semantics and label numbering
 * (docs/method.md §5). All traversals follow scipy's `_hierarchy` routines step for step so
 * labels match exactly, not only the partition.
 */
import type { LinkageMatrix } from './linkage.ts';

function checkLinkage(Z: LinkageMatrix, n: number, op: string): void {
  if (!Number.isInteger(n) || n < 2) throw new RangeError(`${op}: need at least 2 points, got ${n}`);
  if (Z.length !== (n - 1) * 4) throw new RangeError(`${op}: Z has ${Z.length} values, expected (n−1)·4 = ${(n - 1) * 4}`);
}

/**
 * For every merge r, the largest merge height in its subtree (scipy
 * `get_max_dist_for_each_cluster`). Equals Z's heights for monotone trees such as complete linkage.
 */
export function maxDistPerCluster(Z: LinkageMatrix, n: number): Float64Array {
  checkLinkage(Z, n, 'maxDistPerCluster');
  const MD = new Float64Array(n - 1);
  // Children always have smaller ids than their parent, so a forward pass sees them first.
  for (let r = 0; r < n - 1; r++) {
    let m = Z[r * 4 + 2];
    const lc = Z[r * 4];
    const rc = Z[r * 4 + 1];
    if (lc >= n && MD[lc - n] > m) m = MD[lc - n];
    if (rc >= n && MD[rc - n] > m) m = MD[rc - n];
    MD[r] = m;
  }
  return MD;
}

/**
 * Labels 1..C for a cut where every subtree with `MC ≤ cutoff` is one cluster (scipy
 * `cluster_monocrit`). Labels are numbered in scipy's depth-first order: at each node, descend
 * into the left non-leaf child, then the right non-leaf child, then number the leaf children
 * (left, then right). Note this is not a plain left-to-right leaf order when a node has one leaf
 * child and one subtree child: the subtree is numbered first.
 */
export function clusterMonocrit(Z: LinkageMatrix, n: number, MC: Float64Array, cutoff: number): Int32Array {
  checkLinkage(Z, n, 'clusterMonocrit');
  const T = new Int32Array(n);
  const stack = new Int32Array(n);
  const visited = new Uint8Array(2 * n - 1);
  let nCluster = 0;
  let leader = -1;
  let k = 0;
  stack[0] = 2 * n - 2;
  while (k >= 0) {
    const root = stack[k] - n;
    const lc = Z[root * 4];
    const rc = Z[root * 4 + 1];
    if (leader === -1 && MC[root] <= cutoff) {
      leader = root;
      nCluster++;
    }
    if (lc >= n && !visited[lc]) {
      visited[lc] = 1;
      stack[++k] = lc;
      continue;
    }
    if (rc >= n && !visited[rc]) {
      visited[rc] = 1;
      stack[++k] = rc;
      continue;
    }
    if (lc < n) {
      if (leader === -1) nCluster++;
      T[lc] = nCluster;
    }
    if (rc < n) {
      if (leader === -1) nCluster++;
      T[rc] = nCluster;
    }
    if (leader === root) leader = -1;
    k--;
  }
  return T;
}

/** Number of flat clusters a cut at `thresh` would give, or max+1 as soon as it exceeds max. */
function countClusters(Z: LinkageMatrix, n: number, MC: Float64Array, thresh: number, max: number, stack: Int32Array, visited: Uint8Array): number {
  visited.fill(0);
  let nc = 0;
  let k = 0;
  stack[0] = 2 * n - 2;
  while (k >= 0) {
    const root = stack[k] - n;
    const lc = Z[root * 4];
    const rc = Z[root * 4 + 1];
    if (MC[root] <= thresh) {
      if (++nc > max) return nc;
      k--;
      visited[lc] = 1;
      visited[rc] = 1;
      continue;
    }
    if (!visited[lc]) {
      visited[lc] = 1;
      if (lc >= n) {
        stack[++k] = lc;
        continue;
      }
      if (++nc > max) return nc;
    }
    if (!visited[rc]) {
      visited[rc] = 1;
      if (rc >= n) {
        stack[++k] = rc;
        continue;
      }
      if (++nc > max) return nc;
    }
    k--;
  }
  return nc;
}

/**
 * scipy `fcluster(Z, M, criterion='maxclust')`: cut at the smallest merge height t such that
 * merging everything at height ≤ t leaves at most M clusters. With tied heights this can give
 * FEWER than M clusters (4 equidistant points, M = 3 → 2 clusters). M ≥ n gives every point its
 * own label i+1. Returns labels 1..M' per point, numbered as {@link clusterMonocrit}.
 *
 * Like scipy, the threshold is found by bisection over the merge rows, which assumes heights
 * sorted ascending (true for any Z from {@link linkageComplete}).
 */
export function fclusterMaxclust(Z: LinkageMatrix, n: number, M: number): Int32Array {
  checkLinkage(Z, n, 'fclusterMaxclust');
  if (!Number.isInteger(M) || M < 1) throw new RangeError(`fclusterMaxclust: M must be a positive integer, got ${M}`);
  if (M >= n) return Int32Array.from({ length: n }, (_, i) => i + 1);
  const MC = maxDistPerCluster(Z, n);
  const stack = new Int32Array(n);
  const visited = new Uint8Array(2 * n - 1);
  let lower = -1; // stands for "−∞", never evaluated
  let upper = n - 1;
  while (upper - lower > 1) {
    const mid = (lower + upper) >> 1;
    if (countClusters(Z, n, MC, MC[mid], M, stack, visited) > M) lower = mid;
    else upper = mid;
  }
  return clusterMonocrit(Z, n, MC, MC[upper]);
}

/**
 * scipy `fcluster(Z, t, criterion='distance')`: points whose cophenetic distance is ≤ t share a
 * cluster. Not used by the official scripts; provided for the `'distance'` option.
 */
export function fclusterDistance(Z: LinkageMatrix, n: number, t: number): Int32Array {
  return clusterMonocrit(Z, n, maxDistPerCluster(Z, n), t);
}
