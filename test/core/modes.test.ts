import { describe, expect, it } from 'vitest';
import { numberModes, pickReferences } from '../../src/core/modes.ts';

describe('numberModes', () => {
  it('orders modes by size descending, ties by smaller scipy label', () => {
    // label 3 has 3 members, labels 1 and 2 have 2 each, label 4 has 1.
    const labels = Int32Array.from([2, 3, 1, 3, 2, 4, 1, 3]);
    const modes = numberModes(labels);
    expect(modes.count).toBe(4);
    expect(modes.scipyLabel).toEqual([3, 1, 2, 4]);
    expect(modes.members.map((m) => Array.from(m))).toEqual([[1, 3, 7], [2, 6], [0, 4], [5]]);
    expect(Array.from(modes.modeOfSample)).toEqual([2, 0, 1, 0, 2, 3, 1, 0]);
  });

  it('rejects labels below 1', () => {
    expect(() => numberModes(Int32Array.from([1, 0]))).toThrow(RangeError);
  });
});

describe('pickReferences', () => {
  it('picks the member with the largest mean in-cluster |corr|, diagonal included', () => {
    // 4 samples; mode {0, 1, 2}: sample 1 is most central. Sample 3 alone.
    const A = Float64Array.from([
      1, 0.9, 0.5, 0.1,
      0.9, 1, 0.8, 0.2,
      0.5, 0.8, 1, 0.3,
      0.1, 0.2, 0.3, 1,
    ]);
    const refs = pickReferences(A, 4, [Int32Array.from([0, 1, 2]), Int32Array.from([3])]);
    expect(Array.from(refs.samplePosition)).toEqual([1, 3]);
    expect(refs.meanAbsCorr[0]).toBeCloseTo((0.9 + 1 + 0.8) / 3, 15);
    expect(refs.meanAbsCorr[1]).toBe(1);
  });

  it('breaks ties by sample order and handles constant members (zero rows)', () => {
    const A = Float64Array.from([
      0, 0, 0,
      0, 1, 1,
      0, 1, 1,
    ]);
    const refs = pickReferences(A, 3, [Int32Array.from([0, 1, 2])]);
    expect(refs.samplePosition[0]).toBe(1);
    const allConstant = pickReferences(new Float64Array(4), 2, [Int32Array.from([0, 1])]);
    expect(allConstant.samplePosition[0]).toBe(0);
    expect(allConstant.meanAbsCorr[0]).toBe(0);
  });
});
