import { describe, expect, it } from 'vitest';
import { cmdModelBytes, dmdBytes, pcaBytes, sameStorageRank } from '../../src/baselines/storage.ts';

describe('storage', () => {
  it('counts CMD model bytes: a, b float32, uint8/uint16 mode, refs, int64 indices', () => {
    expect(cmdModelBytes({ parameters: 1000, modes: 10, checkpoints: 50, samples: 200 })).toBe(1000 * 9 + 4 * 10 * 50 + 8 * 210);
    expect(cmdModelBytes({ parameters: 1000, modes: 300, checkpoints: 50 })).toBe(1000 * 10 + 4 * 300 * 50 + 8 * 300);
    expect(() => cmdModelBytes({ parameters: -1, modes: 1, checkpoints: 1 })).toThrow(/parameters/);
  });

  it('sameStorageRank is the largest rank within the budget (brute force over r)', () => {
    for (const [N, T, budget] of [
      [11_000_000, 100, cmdModelBytes({ parameters: 11_000_000, modes: 10, checkpoints: 100, samples: 1000 })],
      [1000, 40, 9000],
      [1000, 40, pcaBytes(3, 1000, 40)],
      [1000, 40, pcaBytes(3, 1000, 40) - 1],
      [50, 10, 1e9],
      [1000, 40, 3999],
      [1000, 40, 0],
      [7, 1, 1e6],
    ] as const) {
      const got = sameStorageRank(budget, N, T);
      let pca = -1;
      let dmd = 0;
      for (let r = 0; r <= T - 1; r++) {
        if (pcaBytes(r, N, T) <= budget) pca = r;
        if (r >= 1 && dmdBytes(r, N) <= budget) dmd = r;
      }
      expect(got, `N=${N} T=${T} budget=${budget}`).toEqual({ pca, dmd });
    }
  });

  it('a real CMD model always affords PCA rank ≥ 1 and DMD rank ≥ 2 (uint8 modes)', () => {
    const N = 123_457;
    for (const M of [1, 2, 10, 200]) {
      for (const T of [3, 25, 150]) {
        const s = sameStorageRank(cmdModelBytes({ parameters: N, modes: M, checkpoints: T, samples: 1000 }), N, T);
        expect(s.pca).toBeGreaterThanOrEqual(1);
        expect(s.dmd).toBeGreaterThanOrEqual(2);
      }
    }
  });
});
