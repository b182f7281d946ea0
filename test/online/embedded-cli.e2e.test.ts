/** The embedded-CMD flags through the built CLI (the simulation itself is unit-tested in embedded.test.ts). */
import path from 'node:path';
import { promises as fsp } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { RunReportSchema } from '../../src/output/report-schema.ts';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

describe('cmd analyze --online --embed-* (built CLI)', () => {
  it('writes the embedded section and refuses the flags without --online', async () => {
    const out = path.join(tempDir('cmd-embed-cli-'), 'out');
    const src = fixture('lenet5-fmnist', 'npz');
    const ok = runCli(['analyze', src, '--online', '--warmup', '5', '--to', '12', '-m', '5', '-k', '300', '--embed-window', '3', '--embed-perc', '20', '--workers', '1', '-o', out]);
    expect(ok.stderr).toMatch(/embedded CMD \(simulation, L = 3, P = 20%\)/);
    expect(ok.status).toBe(0);
    const report = RunReportSchema.parse(JSON.parse(await fsp.readFile(path.join(out, 'report.json'), 'utf8')));
    const e = report.embedded!;
    expect(e.simulation).toBe(true);
    expect(e.checkpoints.map((c) => c.step)).toEqual([7, 8, 9, 10, 11, 12]);
    expect(e.checkpoints.filter((c) => c.embedding).map((c) => c.index)).toEqual([6, 9]);
    const N = report.input.modelledParameters;
    const sumAfter = e.checkpoints.reduce((s, c) => s + c.embedded + c.newlyEmbedded, 0);
    expect(e.saved).toBeCloseTo(sumAfter / (N * 12), 14);
    // Without --embed-*: no section.
    const plain = runCli(['analyze', src, '--online', '--warmup', '5', '--to', '8', '-m', '5', '-k', '300', '--workers', '1', '-q', '-o', path.join(out, '..', 'plain')]);
    expect(plain.status).toBe(0);
    expect(JSON.parse(await fsp.readFile(path.join(out, '..', 'plain', 'report.json'), 'utf8')).embedded).toBeUndefined();
    const bad = runCli(['analyze', src, '--embed-window', '3', '-o', path.join(out, '..', 'bad')]);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--online/);
  }, 60_000);
});
