/**
 * Issue 9, defect 10: when the sampling scheme gives fewer parameters than --samples asked for
 * (K above N, or the balanced scheme dropping a layer's share that does not fit), the run says
 * so on stderr and report.json records requested vs used; `cmd report` shows both.
 */
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { planBalancedSample, sampleShortfallNote } from '../../src/core/sampling.ts';
import { writeNpz } from '../../src/formats/npz.ts';
import { runCli } from '../helpers/cli.ts';
import { xorshift32 } from '../helpers/random.ts';
import { tempDir } from '../helpers/tmp.ts';

/** Layer sizes for which the balanced plan cannot place all N samples (195 of 250). */
const SIZES = [150, 6, 84, 10];

/** Four npz checkpoints of a small drifting model with the layer sizes above. */
async function smallRun(): Promise<string> {
  const dir = tempDir('cmd-cap-');
  const rnd = xorshift32(7);
  const start = SIZES.map((n) => Float32Array.from({ length: n }, () => rnd() - 0.5));
  const drift = SIZES.map((n) => Float32Array.from({ length: n }, () => rnd() - 0.5));
  for (let t = 0; t < 4; t++) {
    const tensors = SIZES.map((n, l) => {
      const v = Float32Array.from({ length: n }, (_, i) => start[l][i] + drift[l][i] * (t + 1) * (1 + 0.1 * rnd()));
      return { name: `layer${l}.weight`, dtype: 'F32' as const, shape: [n], data: new Uint8Array(v.buffer) };
    });
    await writeNpz(path.join(dir, `epoch_00${t + 1}.npz`), tensors);
  }
  return dir;
}

describe('--samples larger than the sampling can give', () => {
  it('the plan for these sizes really falls short (so the test below tests the cap)', () => {
    expect(planBalancedSample(SIZES, 250).total).toBe(195);
    expect(sampleShortfallNote(250, 250, 250, 'U_B')).toBeUndefined();
  });

  it('warns on stderr, records requested vs used, and cmd report shows both', async () => {
    const dir = await smallRun();
    for (const requested of [250, 1000]) {
      const out = path.join(tempDir(), 'out');
      const r = runCli(['analyze', dir, '-o', out, '--samples', String(requested), '--modes', '3']);
      expect(r.status, r.stderr).toBe(0);
      const warnings = r.stderr.split('\n').filter((l) => l.startsWith('warning:'));
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toContain(`--samples ${requested} gives 195 sampled parameters (K = 195)`);
      expect(warnings[0]).toContain(requested > 250 ? 'only 250 parameters are modelled' : 'drops a layer');
      const report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8'));
      expect([report.method.samplesRequested, report.method.samples]).toEqual([requested, 195]);
      const shown = runCli(['report', out]);
      expect(shown.status).toBe(0);
      expect(shown.stdout).toContain(`195 sampled (${requested} requested) of 250 parameters`);
    }
    // Asking for what the scheme can give: no warning, no "requested" in the report view.
    const out = path.join(tempDir(), 'out');
    const r = runCli(['analyze', dir, '-o', out, '--samples', '100', '--modes', '3']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).not.toContain('warning:');
    expect(runCli(['report', out]).stdout).toContain('100 sampled of 250 parameters');
  });
});
