/**
 * `reconstruct --online` with an evaluation (issue 9, defect 8): each chosen checkpoint is
 * evaluated with the online model of that checkpoint, and the numbers are those of the files
 * written into reconstructed/.
 */
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const score = path.join(repoRoot, 'test', 'fixtures-scripts', 'checkpoint-score.mjs');
const scoreOf = (file: string) => JSON.parse(execFileSync(process.execPath, [score, file], { encoding: 'utf8' }).trim()) as { accuracy: number; loss: number };

describe('reconstruct --online --eval-cmd', () => {
  it('evaluates every written online reconstruction, its original and the average', () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(['reconstruct', fixture('lenet5-fmnist', 'npz'), '--to', '8', '--online', '--warmup', '4', '--checkpoints', '3,6,8', '--avg-last', '2', '--samples', '300', '--modes', '4', '-o', out, '--eval-cmd', `node ${score} {checkpoint}`, '--json']);
    expect(r.status, r.stderr).toBe(0);
    const report = JSON.parse(r.stdout);
    const ev = report.evaluation;
    expect(ev.checkpoints.map((c: { step: number }) => c.step)).toEqual([3, 6, 8]);
    const byStep = new Map(ev.checkpoints.map((c: { step: number }) => [c.step, c]));
    for (const step of [3, 6, 8]) {
      const row = byStep.get(step) as { original: { accuracy: number }; cmd: { accuracy: number } };
      const name = `epoch_00${step}.npz`;
      expect(row.original.accuracy).toBeCloseTo(scoreOf(fixture('lenet5-fmnist', 'npz', name)).accuracy, 12);
      expect(row.cmd.accuracy).toBeCloseTo(scoreOf(path.join(out, 'reconstructed', name)).accuracy, 12);
      // Before the warm-up end the online model is the checkpoint itself; after it, it is not.
      if (step < 5) expect(row.cmd.accuracy).toBe(row.original.accuracy);
      else expect(row.cmd.accuracy).not.toBe(row.original.accuracy);
    }
    expect(ev.average.lastK).toBe(2);
    expect(ev.average.metrics.accuracy).toBeCloseTo(scoreOf(path.join(out, 'reconstructed', 'avg-last-2.npz')).accuracy, 12);
    expect(ev.final.cmd.accuracy).toBe((byStep.get(8) as { cmd: { accuracy: number } }).cmd.accuracy);
    expect(ev.provenance.model).toBe(report.provenance.model);
  });
});
