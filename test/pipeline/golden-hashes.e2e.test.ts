/**
 * Issue 13: pass 2 may only get faster. Every case of golden-hashes.json (hashes written by the
 * code before the float32 pre-pass, scripts/golden-hashes.mjs) is rerun with one worker and with
 * the default worker count; the model and report must hash the same as then, byte for byte
 * (only the absolute input path is replaced, see digestOutputs).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { goldenFile, runAnalyze } from '../../scripts/golden-hashes.mjs';
import { tempDir } from '../helpers/tmp.ts';

interface GoldenCase {
  name: string;
  input: string;
  args: string[];
  model: string;
  report: string;
}

const golden = JSON.parse(fs.readFileSync(goldenFile, 'utf8')) as { cases: GoldenCase[] };

describe('cmd analyze matches the golden hashes', () => {
  it('has cases with hashes', () => {
    expect(golden.cases.length).toBeGreaterThanOrEqual(8);
    for (const c of golden.cases) expect(c.model).toMatch(/^[0-9a-f]{64}$/);
  });

  for (const c of golden.cases) {
    it(`${c.name}: ${c.input} ${c.args.join(' ')}`, () => {
      const dir = tempDir('cmd-golden-');
      for (const workers of [[], ['--workers', '1']]) {
        const d = runAnalyze(c.input, [...c.args, ...workers], path.join(dir, workers.length ? 'w1' : 'wdefault'));
        expect({ workers: workers.join(' ') || 'default', ...d }).toEqual({ workers: workers.join(' ') || 'default', model: c.model, report: c.report });
      }
    }, 120_000);
  }
});
