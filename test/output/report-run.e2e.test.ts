/** report.json as a real `cmd analyze` run writes it (the schema itself is unit-tested in report.test.ts). */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { RunReportSchema } from '../../src/output/report-schema.ts';
import { readReport } from '../../src/output/report.ts';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

describe('report.json of a real run', () => {
  it('a real run writes a valid, finite report with every section', async () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(['analyze', fixture('lenet5-fmnist', 'npz'), '-o', out, '--samples', '500', '--modes', '6', '--to', '8', '-q']);
    expect(r.status, r.stderr).toBe(0);
    const text = readFileSync(path.join(out, 'report.json'), 'utf8');
    expect(text).not.toContain('null');
    const report = await readReport(path.join(out, 'report.json'));
    expect(RunReportSchema.parse(JSON.parse(text))).toEqual(report);
    expect(report.checkpoints.map((c) => c.step)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(report.modes).toHaveLength(6);
    expect(report.modes.reduce((s, m) => s + m.assignedCount, 0)).toBe(report.input.modelledParameters);
    expect(report.modes.reduce((s, m) => s + m.sampledCount, 0)).toBe(report.method.samples);
    expect(report.tensors.reduce((s, t) => s + t.parameters, 0)).toBe(report.input.modelledParameters);
    for (const c of report.checkpoints) expect(typeof c.relativeError).toBe('number');
    expect(report.storage.modelBytes).toBeGreaterThan(0);
    expect(report.storage.checkpointsBytes).toBe(report.input.checkpoints.reduce((s, c) => s + c.bytes, 0));
    const info = JSON.parse(readFileSync(path.join(out, 'run-info.json'), 'utf8'));
    expect(info.analyze.seconds).toBeGreaterThan(0);
    expect(info.analyze.peakRssBytes).toBeGreaterThan(0);
    const samples = JSON.parse(readFileSync(path.join(out, 'samples.json'), 'utf8'));
    expect(samples).toHaveLength(500);
  });
});
