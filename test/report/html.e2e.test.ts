/** The HTML page without a browser: missing side files, no evaluation, escaping, NaN points. */
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.ts';
import { writeHtmlReport } from '../../src/report/html.ts';
import { analyzeLenet, variant, type AnalyzedRun } from './run-fixture.ts';

let run: AnalyzedRun;
beforeAll(() => {
  run = analyzeLenet();
});
afterAll(() => run?.cleanup());

const chart = (html: string, id: string) => new RegExp(`<svg data-chart="${id}"[\\s\\S]*?</svg>`).exec(html)?.[0] ?? '';
const marks = (svg: string, series: string) => (new RegExp(`<g data-series="${series}">([\\s\\S]*?)</g>`).exec(svg)?.[1].match(/class="mark"/g) ?? []).length;

describe('writeHtmlReport', () => {
  it('renders a run without evaluation: the accuracy chart says so, the others have data', async () => {
    const out = path.join(run.root, 'plain.html');
    await writeHtmlReport(run.dir, out);
    const html = readFileSync(out, 'utf8');
    const acc = chart(html, 'accuracy');
    expect(acc).toContain('no evaluation in this report');
    expect(acc).not.toContain('data-series');
    expect(marks(chart(html, 'reconstruction-error'), 'cmd')).toBe(run.report.checkpoints.length);
    expect(marks(chart(html, 'references'), 'mode 0')).toBe(run.report.checkpoints.length);
    expect(chart(html, 'correlation')).toContain('data:image/png;base64,');
    expect(html).not.toContain('data-chart="mode-sweep'); // no sweep in this run: no Choosing M figure
    expect(html).not.toContain('Choosing M');
    expect(readdirSync(run.root).filter((f) => f.endsWith('.tmp'))).toEqual([]);
  });

  it('notes a missing model and heatmap and still renders the rest', async () => {
    const file = variant(run, 'no-side-files', () => undefined); // report.json only
    const out = path.join(run.root, 'missing.html');
    await writeHtmlReport(file, out);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain('Reference trajectories not shown: cmd-model.safetensors: file not found.');
    expect(html).toContain('Correlation heatmap not shown: sampled-corr.npy: file not found.');
    expect(chart(html, 'references')).not.toContain('data-series');
    expect(marks(chart(html, 'mode-sizes'), `sampled \\(of ${run.report.method.samples}\\)`)).toBe(run.report.modes.length);
  });

  it('notes a corrupt heatmap file instead of failing', async () => {
    const file = variant(run, 'bad-heatmap', () => undefined, run.seconds, true);
    const dir = path.dirname(file);
    writeFileSync(path.join(dir, 'sampled-corr.npy'), 'not an npy file');
    const out = path.join(run.root, 'bad-heatmap.html');
    await writeHtmlReport(file, out);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/Correlation heatmap not shown: \S*sampled-corr\.npy: [^<]+\./);
    expect(marks(chart(html, 'references'), 'mode 0')).toBe(run.report.checkpoints.length);
  });

  it('leaves non-finite errors out of the line and escapes names', async () => {
    const file = variant(run, 'nan-and-names', (r) => {
      r.checkpoints[3].relativeError = 'NaN';
      r.input.dir = '/data/<script>alert(1)</script>';
      r.modes[0].reference.tensor = 'a"b<c>';
    });
    const out = path.join(run.root, 'escaped.html');
    await writeHtmlReport(file, out);
    const html = readFileSync(out, 'utf8');
    expect(marks(chart(html, 'reconstruction-error'), 'cmd')).toBe(run.report.checkpoints.length - 1);
    expect(html).not.toContain('<script>alert');
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;');
    expect(html).toContain('a&quot;b&lt;c&gt;');
  });

  it('a bad report is an InputError and an unwritable target a UsageError', async () => {
    await expect(writeHtmlReport(path.join(run.root, 'none.json'), path.join(run.root, 'x.html'))).rejects.toThrow(/none\.json: cannot read report/);
    await expect(writeHtmlReport(run.dir, path.join(run.root, 'no', 'such', 'x.html'))).rejects.toBeInstanceOf(UsageError);
  });
});
