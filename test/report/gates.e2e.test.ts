/** Gate arithmetic on a real report (from `cmd analyze` on LeNet-5) with edited evaluations. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { InputError, UsageError } from '../../src/errors.ts';
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

  it('a never-measured CMD accuracy cannot be gated: InputError naming the report and the value', () => {
    const r = withEval([0.9], [0.9], (rep) => {
      rep.evaluation!.final!.cmd = { error: 'evaluation timed out' };
    });
    expect(() => evaluateGates(r, { maxAccDrop: 100 })).toThrow(InputError);
    expect(() => evaluateGates(r, { maxAccDrop: 100 })).toThrow("x/report.json: --max-acc-drop needs the analysed report's CMD accuracy, but it was never measured (its evaluation failed: evaluation timed out)");
  });

  it('a recorded non-finite accuracy or loss fails the gate whatever the threshold, and says so', () => {
    const nanAcc = withEval([0.9], [0.9], (rep) => {
      rep.evaluation!.final!.cmd = { accuracy: 'NaN' };
    });
    const [g] = evaluateGates(nanAcc, { maxAccDrop: 100 });
    expect(g).toMatchObject({ passed: false, nonFinite: 'CMD accuracy was NaN (non-finite)', thresholdText: '100 pts' });
    expect(failureMessage([g])).toBe('1 of 1 gate failed: max-acc-drop (non-finite: CMD accuracy was NaN (non-finite); threshold 100 pts)');
    const infLoss = withEval([0.9], [0.95], (rep) => {
      rep.evaluation!.final!.original = { accuracy: 0.9, loss: 'Infinity' };
    });
    expect(evaluateGates(infLoss, { maxAccDrop: 100 })[0]).toMatchObject({ passed: false, nonFinite: 'original loss was Infinity (non-finite)' });
  });

  it('a passing and a failing gate line show the threshold as interpreted', () => {
    const r = withEval([0.9], [0.8]);
    const [g] = evaluateGates(r, { maxAccDrop: 5 });
    expect(failureMessage([g])).toBe('1 of 1 gate failed: max-acc-drop (10 > 5 pts)');
    const [e] = evaluateGates({ file: 'r', report: run.report }, { maxReconError: 0.0001 });
    expect(failureMessage([e])).toMatch(/^1 of 1 gate failed: max-recon-error \([\d.]+ > 0\.0001 \(0\.01%\)\)$/);
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
    expect(() => evaluateGates(plain, { maxAccDrop: 1 })).toThrow(InputError);
    expect(() => evaluateGates(plain, { maxAccDrop: 1 })).toThrow(/p\/report.json: --max-acc-drop needs accuracies, but the analysed report has no evaluation section/);
    expect(() => evaluateGates(plain, { maxSlowdown: 2 })).toThrow(/--baseline/);
    expect(() => evaluateGates(plain, { maxSlowdown: 2 }, { file: 'b/report.json', report: run.report })).toThrow(/run-info.json next to b\/report.json/);
    expect(evaluateGates(plain, {})).toEqual([]);
  });
});
