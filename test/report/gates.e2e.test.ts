/** Gate arithmetic on a real report (from `cmd analyze` on LeNet-5) with edited evaluations. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { evaluateGates, failureMessage, type ReportRun } from '../../src/report/gates.ts';
import { analyzeLenet, setEvaluation, type AnalyzedRun } from './run-fixture.ts';

let run: AnalyzedRun;
beforeAll(() => {
  run = analyzeLenet();
});
afterAll(() => run?.cleanup());

function withEval(orig: number[], cmdAcc: number[], edit?: (r: ReportRun['report']) => void, seconds?: number): ReportRun {
  const report = structuredClone(run.report);
  setEvaluation(report, orig, cmdAcc);
  edit?.(report);
  return { file: 'x/report.json', report, seconds };
}

describe('evaluateGates', () => {
  it('accuracy drop is (original − CMD) × 100 and passes at equality', () => {
    const r = withEval([0.8, 0.9], [0.8, 0.875]);
    const [g] = evaluateGates(r, { maxAccDrop: 2.5 });
    expect(g.value).toBeCloseTo(2.5, 12);
    expect(evaluateGates(r, { maxAccDrop: 2.6 })[0].passed).toBe(true);
    expect(evaluateGates(r, { maxAccDrop: 2.4 })[0].passed).toBe(false);
  });

  it('a CMD model better than the original has a negative drop', () => {
    expect(evaluateGates(withEval([0.9], [0.95]), { maxAccDrop: 0 })[0]).toMatchObject({ passed: true });
  });

  it('uses the last evaluated checkpoint when the evaluation has no final section', () => {
    const r = withEval([0.9, 0.7], [0.9, 0.6], (rep) => delete rep.evaluation!.final);
    const [g] = evaluateGates(r, { maxAccDrop: 5 });
    expect(g.value).toBeCloseTo(10, 12);
    expect(g.description).toContain(`last evaluated checkpoint, ${run.report.checkpoints.at(-1)!.name}`);
  });

  it('a failed (missing) CMD accuracy fails the gate instead of passing silently', () => {
    const r = withEval([0.9], [0.9], (rep) => {
      rep.evaluation!.final!.cmd = { error: 'evaluation timed out' };
    });
    const [g] = evaluateGates(r, { maxAccDrop: 100 });
    expect(Number.isNaN(g.value)).toBe(true);
    expect(g.passed).toBe(false);
    expect(failureMessage([g])).toBe('1 of 1 gate failed: max-acc-drop (NaN > 100)');
  });

  it('reconstruction error reads the last checkpoint of the report', () => {
    const last = run.report.checkpoints.at(-1)!.relativeError as number;
    const [g] = evaluateGates({ file: 'r', report: run.report }, { maxReconError: last });
    expect(g).toMatchObject({ name: 'max-recon-error', value: last, threshold: last, passed: true });
  });

  it('slowdown is this runtime over the baseline runtime', () => {
    const [g] = evaluateGates({ file: 'a', report: run.report, seconds: 3 }, { maxSlowdown: 1.4 }, { file: 'b', report: run.report, seconds: 2 });
    expect([g.value, g.passed]).toEqual([1.5, false]);
  });

  it('refuses gates that cannot apply', () => {
    const plain: ReportRun = { file: 'p/report.json', report: run.report, seconds: 1 };
    expect(() => evaluateGates(plain, { maxAccDrop: 1 })).toThrow(UsageError);
    expect(() => evaluateGates(plain, { maxSlowdown: 2 })).toThrow(/--baseline/);
    expect(() => evaluateGates(plain, { maxSlowdown: 2 }, { file: 'b/report.json', report: run.report })).toThrow(/run-info.json next to b\/report.json/);
    expect(evaluateGates(plain, {})).toEqual([]);
  });
});
