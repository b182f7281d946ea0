#!/usr/bin/env python3
"""Writes the scipy golden cases for test/core/*.test.ts into fixtures/scipy/*.json.

Run once (numpy 2.x, scipy 1.17) and commit the output; the tests never run python:

    python3 scripts/make-scipy-golden.py

Each case mirrors CMD's clustering step (docs/method.md §2–5):
A = |corrcoef(X)| with NaN -> 0, d = pdist(A) (Euclidean between rows of A),
Z = linkage(d, 'complete'), labels = fcluster(Z, M, 'maxclust').

Data matrices are stored as little-endian float32 in base64 (compact and exact); distances and
heights as JSON numbers (Python's repr round-trips float64 exactly).
"""
import base64
import json
import os

import numpy as np
import scipy
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures', 'scipy')
MAXCLUST = [1, 2, 3, 4, 5, 7, 10]


def f32_b64(x):
    return base64.b64encode(np.ascontiguousarray(x, dtype='<f4').tobytes()).decode('ascii')


def abs_corr(X):
    with np.errstate(invalid='ignore', divide='ignore'):
        C = np.corrcoef(X.astype(np.float64))
    return np.abs(np.nan_to_num(C, nan=0.0))


def planted(rng, K, T, modes, noise_frac=0.1):
    """K trajectories: each mode is a random walk; members are +/-(a*base + b) + noise (corr ~0.9)."""
    base = np.cumsum(rng.normal(size=(modes, T)), axis=1)
    weights = rng.dirichlet(np.ones(modes) * 2)  # unequal mode sizes
    n_noise = int(K * noise_frac)
    which = rng.choice(modes, size=K - n_noise, p=weights)
    rows = []
    for m in which:
        a = rng.normal() * rng.choice([1.0, 10.0, 0.01])
        b = rng.normal() * 5
        sd = base[m].std() * 0.45
        rows.append(a * (base[m] + rng.normal(scale=sd, size=T)) + b)
    for _ in range(n_noise):
        rows.append(rng.normal(size=T))
    X = np.array(rows, dtype=np.float32)
    return X[rng.permutation(K)]


def cluster_case(name, X=None, d=None, store_d=False, store_A=False):
    case = {'name': name}
    if X is not None:
        X = np.asarray(X, dtype=np.float32)
        K, T = X.shape
        case.update(K=K, T=T, X_f32_b64=f32_b64(X))
        A = abs_corr(X)
        if store_A:
            case['A'] = A.ravel().tolist()
        d = pdist(A)
    K = int(round((1 + np.sqrt(1 + 8 * len(d))) / 2))
    case['K'] = K
    if store_d or X is None:
        case['d'] = np.asarray(d, dtype=np.float64).tolist()
    Z = linkage(d, method='complete')
    case['Z_ids'] = Z[:, :2].astype(int).ravel().tolist()
    case['Z_height'] = Z[:, 2].tolist()
    case['Z_size'] = Z[:, 3].astype(int).tolist()
    case['maxclust'] = {str(M): fcluster(Z, M, criterion='maxclust').astype(int).tolist() for M in MAXCLUST}
    return case


def write(filename, cases):
    path = os.path.join(OUT, filename)
    with open(path, 'w') as f:
        json.dump({'generator': 'scripts/make-scipy-golden.py', 'numpy': np.__version__, 'scipy': scipy.__version__,
                   'cases': cases}, f, separators=(',', ':'))
    print(f'{path}: {os.path.getsize(path)} bytes')


def main():
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240501)

    write('planted-small.json', [
        cluster_case('planted-K50', X=planted(rng, 50, 30, 4), store_d=True, store_A=True),
        cluster_case('planted-K200', X=planted(rng, 200, 40, 6)),
    ])
    write('planted-K1000.json', [cluster_case('planted-K1000', X=planted(rng, 1000, 30, 10))])

    # Ties: duplicated rows (identical |corr| rows -> zero distances and equal distances to
    # everything else) and constant rows (all-zero |corr| rows).
    Xt = planted(rng, 30, 20, 3)
    dup = Xt[rng.choice(30, size=8)]
    const = np.repeat(rng.normal(size=(4, 1)).astype(np.float32), 20, axis=1)
    Xties = np.concatenate([Xt, dup, const])[rng.permutation(42)]
    # Integer distances in a tiny range: nearly every comparison inside nn_chain is a tie.
    dint = rng.integers(1, 4, size=30 * 29 // 2).astype(np.float64)
    dint20 = rng.integers(1, 21, size=40 * 39 // 2).astype(np.float64)
    write('ties.json', [
        cluster_case('ties-duplicates-constants', X=Xties, store_d=True),
        cluster_case('equidistant-4', d=np.ones(6)),
        # 4 equally spaced points on a line: tied heights 1, 1, 3 -> maxclust=3 gives 2 clusters.
        cluster_case('line-4', d=pdist(np.arange(4.0)[:, None])),
        cluster_case('integer-distances-K30', d=dint),
        cluster_case('integer-distances-K40-range20', d=dint20),
    ])


if __name__ == '__main__':
    main()
