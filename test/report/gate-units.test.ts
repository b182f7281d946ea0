/** Gate thresholds in their units (issue 9, defect 9): `5%` and fractions, ambiguous values refused. */
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { describeThreshold, parseGateThreshold } from '../../src/report/gates.ts';

describe('parseGateThreshold', () => {
  it('--max-recon-error takes a fraction or a percentage', () => {
    expect(parseGateThreshold('--max-recon-error', '0.05')).toBe(0.05);
    expect(parseGateThreshold('--max-recon-error', '5%')).toBe(0.05);
    expect(parseGateThreshold('--max-recon-error', ' 12.5 % ')).toBe(0.125);
    expect(parseGateThreshold('--max-recon-error', '1')).toBe(1);
    expect(parseGateThreshold('--max-recon-error', '0')).toBe(0);
    expect(parseGateThreshold('--max-recon-error', undefined)).toBeUndefined();
  });

  it('refuses a bare --max-recon-error above 1 with a one-line hint', () => {
    expect(() => parseGateThreshold('--max-recon-error', '5')).toThrow(UsageError);
    expect(() => parseGateThreshold('--max-recon-error', '5')).toThrow(/^--max-recon-error 5 is ambiguous: it takes a fraction \(0\.05 = 5%\); write 5% or 0\.05$/);
    for (const bad of ['', 'abc', '-0.1', '5x', '0.1pp', 'NaN', 'Infinity']) expect(() => parseGateThreshold('--max-recon-error', bad), bad).toThrow(UsageError);
  });

  it('--max-acc-drop takes percentage points; --max-slowdown a positive ratio', () => {
    expect(parseGateThreshold('--max-acc-drop', '0.5')).toBe(0.5);
    expect(parseGateThreshold('--max-acc-drop', '2pp')).toBe(2);
    expect(parseGateThreshold('--max-acc-drop', '2%')).toBe(2);
    expect(() => parseGateThreshold('--max-acc-drop', '-1')).toThrow(UsageError);
    expect(parseGateThreshold('--max-slowdown', '1.5')).toBe(1.5);
    expect(parseGateThreshold('--max-slowdown', '1.5x')).toBe(1.5);
    expect(() => parseGateThreshold('--max-slowdown', '0')).toThrow(UsageError);
    expect(() => parseGateThreshold('--max-slowdown', '150%')).toThrow(UsageError);
  });

  it('shows each threshold as it was interpreted', () => {
    expect(describeThreshold('max-recon-error', 0.05)).toBe('0.05 (5%)');
    expect(describeThreshold('max-acc-drop', 0.5)).toBe('0.5 pts');
    expect(describeThreshold('max-acc-drop-vs-baseline', 1)).toBe('1 pts');
    expect(describeThreshold('max-slowdown', 1.5)).toBe('1.5×');
  });
});
