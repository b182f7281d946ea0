/**
 * The mode sweep and the baselines in every `cmd report` view, from a real
 * `cmd analyze --modes 10,2,5,20 --baselines all` run on the LeNet-5 fixture (and modified
 * copies of its report). Expected numbers are recomputed here from report.json.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/output/report-schema.ts';
import { writeHtmlReport } from '../../src/report/html.ts';
import { attr, axisTicks, centre, parseCharts, parsePercent, yFromTicks } from './chart-dom.ts';
import { analyzeLenet, cmd, variant, type AnalyzedRun } from './run-fixture.ts';

let run: AnalyzedRun;
beforeAll(() => {
  run = analyzeLenet(['--modes', '10,2,5,20', '--baselines', 'all']);
});
afterAll(() => run?.cleanup());

type Cps = { relativeError: unknown }[];
const last = (cs: Cps) => cs[cs.length - 1].relativeError as number;
const mean = (cs: Cps) => cs.reduce((a, c) => a + (c.relativeError as number), 0) / cs.length;
const pct = (x: number) => `${(x * 100).toFixed(2)}%`;
const byModes = (r: RunReport) => [...r.modeSweep!].sort((a, b) => a.modes - b.modes);
const ratio = (b: number, cmdBytes: number) => `${(b / cmdBytes).toFixed(2)}×`;
/** The lines of a text section, from its first line to the next blank line. */
const section = (out: string, start: string) => {
  const from = out.indexOf(start);
  expect(from, start).toBeGreaterThanOrEqual(0);
  return out.slice(from).split('\n\n')[0].split('\n');
};

describe('mode sweep and baselines in the report views', () => {
  it('the run has a four-M sweep, the main model among it, and six baselines', () => {
    const r = run.report;
    expect(byModes(r).map((m) => m.modesRequested)).toEqual([2, 5, 10, 20]);
    expect(r.modeSweep!.filter((m) => m.model === r.outputs.model).map((m) => m.modes)).toEqual([10]);
    expect(r.baselines).toHaveLength(6);
  });

  it('table: a sweep row per M with its errors, the main model starred; baselines after a CMD row', () => {
    const out = cmd(['report', run.reportFile]);
    expect(out.status).toBe(0);
    const r = run.report;
    const [title, header, ...rows] = section(out.stdout, 'mode sweep');
    expect(title).toContain('choosing M');
    expect(header).toMatch(/modes\s+requested\s+model\s+× smaller\s+last error\s+mean error\s+file/);
    expect(rows).toHaveLength(4);
    byModes(r).forEach((m, i) => {
      expect(rows[i]).toMatch(new RegExp(`^${m.model === r.outputs.model ? '\\*' : ' '}\\s+${m.modes}\\s+${m.modesRequested}\\s`));
      expect(rows[i]).toContain(pct(last(m.checkpoints)));
      expect(rows[i]).toContain(pct(mean(m.checkpoints)));
      expect(rows[i].trimEnd().endsWith(m.model)).toBe(true);
    });
    const [, bHeader, cmdRow, ...bRows] = section(out.stdout, 'baselines');
    expect(bHeader).toMatch(/^name\s+rank\s+storage\s+× CMD\s+last error\s+mean error/);
    expect(cmdRow).toMatch(/^CMD \(10 modes\)\s/);
    expect(cmdRow).toContain(pct(last(r.checkpoints)));
    r.baselines!.forEach((b, i) => {
      expect(bRows[i].startsWith(`${b.name} `)).toBe(true);
      for (const cell of [ratio(b.storageBytes!, r.storage.modelBytes), pct(last(b.checkpoints)), pct(mean(b.checkpoints))]) expect(bRows[i]).toContain(cell);
    });
  });

  it('markdown: a Choosing M table with the main M in bold, and a baselines table without an empty accuracy column', () => {
    const out = cmd(['report', run.reportFile, '--format', 'markdown']);
    expect(out.status).toBe(0);
    const r = run.report;
    const lines = out.stdout.split('\n');
    const at = lines.findIndex((l) => l.startsWith('**Choosing M**'));
    expect(at).toBeGreaterThan(0);
    expect(lines[at + 2]).toBe('| modes | requested | model | last error | mean error |');
    byModes(r).forEach((m, i) => {
      const cells = lines[at + 4 + i].split(' | ');
      expect(cells[0]).toBe(`| ${m.model === r.outputs.model ? `**${m.modes}**` : m.modes}`);
      expect(cells.slice(3)).toEqual([pct(last(m.checkpoints)), `${pct(mean(m.checkpoints))} |`]);
    });
    const b = lines.findIndex((l) => l === '**Baselines**');
    expect(lines[b + 2]).toBe('| method | storage | × CMD | last error | mean error |');
    expect(lines[b + 4]).toMatch(/^\| CMD \(10 modes\) \| .* \| 1\.00× \|/);
    r.baselines!.forEach((x, i) => expect(lines[b + 5 + i]).toContain(`| ${x.name} | `));
    expect(lines[b + 5 + r.baselines!.length]).toBe('');
  });

  it('JSON: modeSweep has each M’s headline numbers, sorted by M', () => {
    const out = cmd(['report', run.reportFile, '--format', 'json']);
    expect(out.status).toBe(0);
    const doc = JSON.parse(out.stdout);
    const r = run.report;
    expect(doc.report.modeSweep.map((m: { modes: number }) => m.modes)).toEqual([2, 5, 10, 20]);
    byModes(r).forEach((m, i) => {
      const got = doc.report.modeSweep[i];
      expect(got).toMatchObject({ modesRequested: m.modesRequested, modes: m.modes, main: m.model === r.outputs.model, model: m.model, modelBytes: m.modelBytes, compressionVsTrajectory: m.compressionVsTrajectory, metrics: null });
      expect(got.lastRelativeError).toBe(last(m.checkpoints));
      expect(got.meanRelativeError).toBeCloseTo(mean(m.checkpoints), 14);
    });
    expect(doc.report.baselines).toEqual(r.baselines);
  });

  it('HTML: the Choosing M charts have one mark per M per series, on the log M axis and the y ticks', async () => {
    const out = path.join(run.root, 'sweep.html');
    await writeHtmlReport(run.dir, out);
    const html = readFileSync(out, 'utf8');
    expect(html).toMatch(/<figure class="wide"><figcaption><strong>Choosing M<\/strong>/);
    const charts = parseCharts(html);
    const sweep = byModes(run.report);
    const err = charts.get('mode-sweep-error')!;
    expect([...err.series.keys()]).toEqual(['last checkpoint', 'mean over checkpoints']);
    const ys = { 'last checkpoint': sweep.map((m) => last(m.checkpoints)), 'mean over checkpoints': sweep.map((m) => mean(m.checkpoints)) };
    const ticks = axisTicks(err);
    expect(ticks.x.map((t) => t.label)).toEqual(['2', '5', '10', '20']);
    for (const [name, values] of Object.entries(ys)) {
      const marks = err.series.get(name)!;
      expect(marks.map((m) => m.x)).toEqual([2, 5, 10, 20]);
      marks.forEach((m, i) => expect(m.y).toBeCloseTo(values[i], 14));
      const xy = marks.map(centre);
      for (const [cx, cy] of xy) expect(Number.isFinite(cx) && Number.isFinite(cy)).toBe(true);
      marks.forEach((m, i) => expect(xy[i][1]).toBeCloseTo(yFromTicks(ticks.y, parsePercent, m.y), 1));
      // Log scale: 5→10 and 10→20 are the same factor, so the same distance; 2→5 is log2(2.5) times it.
      const step = xy[2][0] - xy[1][0];
      expect(xy[3][0] - xy[2][0]).toBeCloseTo(step, 1);
      expect((xy[1][0] - xy[0][0]) / step).toBeCloseTo(Math.log2(2.5), 3);
    }
    const size = charts.get('mode-sweep-size')!;
    expect(size.series.get('CMD model')!.map((m) => [m.x, m.y])).toEqual(sweep.map((m) => [m.modes, m.modelBytes]));
    expect(size.series.get('one checkpoint')!.map((m) => m.y)).toEqual(sweep.map(() => run.report.storage.oneCheckpointBytes));
    expect(axisTicks(size).y[0].label).toBe('0 B'); // sizes read against zero
    expect(html).toContain('<h2>Choosing M (mode sweep)</h2>');
    expect(html).toContain('<td class="num">10 (this report)</td>');
  });

  it('HTML: the error chart draws baselines within the CMD storage, pins errors above 100%, and the table lists all', async () => {
    const out = path.join(run.root, 'baselines.html');
    await writeHtmlReport(run.dir, out);
    const html = readFileSync(out, 'utf8');
    const r = run.report;
    const within = r.baselines!.filter((b) => b.storageBytes! <= r.storage.modelBytes);
    const larger = r.baselines!.filter((b) => b.storageBytes! > r.storage.modelBytes).map((b) => b.name);
    expect(larger).toEqual(['pca-rank-10', 'dmd-rank-10']);
    const chart = parseCharts(html).get('reconstruction-error')!;
    expect([...chart.series.keys()]).toEqual(['cmd', ...within.map((b) => b.name)]);
    expect(html).toContain(`(${larger.join(', ')}: more storage, in the Baselines table only)`);
    let pinned = 0;
    for (const b of within) {
      const marks = chart.series.get(b.name)!;
      expect(marks.map((m) => m.y)).toEqual(b.checkpoints.map((c) => c.relativeError));
      for (const m of marks) {
        const clipped = attr(m.tag, 'data-clipped') === 'true';
        expect(clipped).toBe(m.y > 1);
        if (clipped) pinned++;
        expect(Number(attr(m.tag, 'cy')) === 16).toBe(clipped); // the plot's top edge
      }
    }
    expect(pinned).toBeGreaterThan(0); // the last-5 average is far from the early checkpoints
    expect(html).toContain('errors above 100% are pinned to the top edge');
    const table = /<h2>Baselines<\/h2>[\s\S]*?<\/table>/.exec(html)![0];
    expect(table).toContain('<td>CMD (10 modes, this run)</td>');
    for (const b of r.baselines!) expect(table).toContain(`<td>${b.name}</td>`);
    expect(table.match(/<td>no \(more storage\)<\/td>/g)).toHaveLength(2);
  });

  it('sorts a shuffled sweep, shows a NaN error as NaN, and finds the main M when the model moved', async () => {
    const file = variant(run, 'shuffled', (r) => {
      r.modeSweep!.reverse();
      const five = r.modeSweep!.find((m) => m.modes === 5)!;
      five.checkpoints[five.checkpoints.length - 1].relativeError = 'NaN';
      r.outputs.model = 'moved/cmd-model.safetensors';
      for (const m of r.modeSweep!) if (m.modes === 10) m.model = 'moved/cmd-model.safetensors.old';
    });
    const table = cmd(['report', file]).stdout;
    const rows = section(table, 'mode sweep').slice(2);
    expect(rows.map((l) => l.trim().replace(/^\*\s+/, '').split(/\s+/)[0])).toEqual(['2', '5', '10', '20']);
    expect(rows.filter((l) => l.startsWith('*'))).toHaveLength(1);
    expect(rows[2].startsWith('*')).toBe(true);
    expect(rows[1]).toMatch(/\sNaN\s/);
    const doc = JSON.parse(cmd(['report', file, '--format', 'json']).stdout);
    expect(doc.report.modeSweep[1].lastRelativeError).toBe('NaN');
    expect(doc.report.modeSweep.map((m: { main: boolean }) => m.main)).toEqual([false, false, true, false]);
    const out = path.join(run.root, 'shuffled.html');
    await writeHtmlReport(file, out);
    const err = parseCharts(readFileSync(out, 'utf8')).get('mode-sweep-error')!;
    expect(err.series.get('last checkpoint')!.map((m) => m.x)).toEqual([2, 10, 20]); // the NaN is left out
    expect(err.series.get('mean over checkpoints')!.map((m) => m.x)).toEqual([2, 5, 10, 20]);
  });

  it('a baseline without a storage size is drawn, and its ratio is a dash', async () => {
    const name = run.report.baselines![2].name; // pca-rank-10: otherwise table-only
    const file = variant(run, 'no-storage', (r) => {
      delete r.baselines![2].storageBytes;
    });
    expect(cmd(['report', file, '--format', 'markdown']).stdout).toContain(`| ${name} | – | – | `);
    const out = path.join(run.root, 'no-storage.html');
    await writeHtmlReport(file, out);
    const chart = parseCharts(readFileSync(out, 'utf8')).get('reconstruction-error')!;
    expect(chart.series.has(name)).toBe(true);
    expect(chart.series.has('dmd-rank-10')).toBe(false);
  });
});
