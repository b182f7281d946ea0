/**
 * The HTML report as a browser renders it. Real runs on the fmnist-mlp fixture:
 * `cmd reconstruct --eval-data` (measured accuracies for the accuracy chart), and
 * `cmd analyze --modes 4,2,8,16 --baselines all`, which is both the baseline run of the first
 * page (main M = 4, fewer modes) and the second page (mode sweep and baselines). For each page
 * one headless Chromium run dumps the rendered DOM (with each chart's box, recorded by the
 * page's inline script) and takes a screenshot, decoded here.
 * Chromium is optional locally (skipped with a message) and required under CI=true
 * (test/helpers/optional-tools.ts). Screenshots stay in the temp folder; set
 * CMD_TEST_ARTIFACTS to a folder to keep copies of them for a look.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/output/report-schema.ts';
import { haveTools } from '../helpers/optional-tools.ts';
import { fixture } from '../helpers/tmp.ts';
import { attr, axisTicks, centre, parseBytes, parseCharts, parsePercent, yFromTicks, type Chart } from './chart-dom.ts';
import { decodePng, type Image } from './png-decode.ts';
import { cmd } from './run-fixture.ts';

const WIDTH = 1280;
const HEIGHT = 4000;
const CHARTS = ['accuracy', 'reconstruction-error', 'mode-sizes', 'references', 'correlation'];


function runChromium(bin: string, profile: string, args: string[], url: string, width = WIDTH): string {
  // One run can do both --dump-dom and --screenshot (same layout, half the browser start-ups).
  const r = spawnSync(
    bin,
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--force-device-scale-factor=1', `--user-data-dir=${profile}`, `--window-size=${width},${HEIGHT}`, ...args, url],
    { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`chromium ${args.join(' ')} exited ${r.status}: ${r.stderr.split('\n').slice(-5).join(' | ')}`);
  return r.stdout;
}

interface Page {
  html: string;
  charts: Map<string, Chart>;
  shot: Image;
}

/** Renders `htmlFile` once: the serialized DOM and a screenshot (copied to $CMD_TEST_ARTIFACTS when set). */
function renderPage(bin: string, root: string, htmlFile: string, artifact: string, width = WIDTH): Page {
  const png = path.join(root, artifact);
  const dom = runChromium(bin, path.join(root, `profile-${artifact}`), ['--dump-dom', `--screenshot=${png}`], pathToFileURL(htmlFile).href, width);
  const keep = process.env.CMD_TEST_ARTIFACTS;
  if (keep) {
    mkdirSync(keep, { recursive: true });
    copyFileSync(png, path.join(keep, artifact));
  }
  return { html: readFileSync(htmlFile, 'utf8'), charts: parseCharts(dom), shot: decodePng(readFileSync(png)) };
}

/**
 * Whether a disc of colour `rgb` (±tol per channel) is centred at (x, y): the pixel there and
 * the pixels 2 px away in the four axis directions. A 2 px line of the same colour passing
 * through (x, y) cannot pass this in any direction, so this finds the mark, not its line.
 */
function discAt(img: Image, x: number, y: number, rgb: number[], tol = 48): boolean {
  return [[0, 0], [2, 0], [-2, 0], [0, 2], [0, -2]].every(([dx, dy]) => {
    const o = ((Math.floor(y) + dy) * img.width + Math.floor(x) + dx) * img.channels;
    return rgb.every((c, i) => Math.abs(img.data[o + i] - c) <= tol);
  });
}
const hexRgb = (hex: string) => [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));

/** Pixels in the box (CSS px = device px here) that carry colour: series ink, not text or grid greys. */
function colouredPixels(img: Image, [left, top, w, h]: number[]): number {
  let n = 0;
  for (let y = Math.max(0, top); y < Math.min(img.height, top + h); y++) {
    for (let x = Math.max(0, left); x < Math.min(img.width, left + w); x++) {
      const o = (y * img.width + x) * img.channels;
      const r = img.data[o];
      const g = img.data[o + 1];
      const b = img.data[o + 2];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) n++;
    }
  }
  return n;
}

describe.skipIf(!haveTools('chromium'))('HTML report rendered by headless Chromium', () => {
  let root: string;
  let report: RunReport;
  let baseline: RunReport;
  let html: string;
  let charts: Map<string, Chart>;
  let shot: Image;
  let sweepPage: Page;
  let htmlFile: string;
  let sweepFile: string;

  beforeAll(() => {
    const chromium = 'chromium';
    root = mkdtempSync(path.join(os.tmpdir(), 'cmd-html-'));
    const run = path.join(root, 'run');
    const base = path.join(root, 'baseline');
    const ckpts = fixture('fmnist-mlp', 'checkpoints');
    for (const [args, what] of [
      [['reconstruct', ckpts, '-o', run, '--eval-data', fixture('fmnist-mlp', 'test'), '-q'], 'reconstruct'],
      [['analyze', ckpts, '-o', base, '--modes', '4,2,8,16', '--baselines', 'all', '-q'], 'analyze'],
    ] as const) {
      const r = cmd([...args]);
      if (r.status !== 0) throw new Error(`cmd ${what} failed (${r.status}): ${r.stderr}`);
    }
    report = JSON.parse(readFileSync(path.join(run, 'report.json'), 'utf8'));
    baseline = JSON.parse(readFileSync(path.join(base, 'report.json'), 'utf8'));
    htmlFile = path.join(root, 'report.html');
    const r = cmd(['report', run, '--baseline', base, '--max-recon-error', '1', '--html', htmlFile]);
    if (r.status !== 0) throw new Error(`cmd report failed (${r.status}): ${r.stderr}`);
    ({ html, charts, shot } = renderPage(chromium, root, htmlFile, 'report.png'));
    sweepFile = path.join(root, 'sweep.html');
    const s = cmd(['report', base, '--html', sweepFile]);
    if (s.status !== 0) throw new Error(`cmd report (sweep) failed (${s.status}): ${s.stderr}`);
    sweepPage = renderPage(chromium, root, sweepFile, 'report-sweep.png');
  });
  afterAll(() => {
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it('is one self-contained file: no URL but data: URIs, and a CSP forbidding fetches', () => {
    expect(html).toContain(`content="default-src 'none'; img-src data:;`);
    const refs = [...html.matchAll(/\s(?:src|href)="([^"]*)"/g)].map((m) => m[1]);
    expect(refs.length).toBeGreaterThan(0);
    for (const ref of refs) expect(ref.startsWith('data:image/png;base64,') || ref.startsWith('#') || ref.startsWith('url(#')).toBe(true);
    expect(html).not.toMatch(/<link\b|<script\s+src|@import|url\(http/i);
  });

  it('renders every chart with a laid-out box inside the window', () => {
    expect([...charts.keys()].sort()).toEqual([...CHARTS].sort());
    for (const [id, c] of charts) {
      const [left, top, w, h] = c.box;
      expect([left, top, w, h].every(Number.isFinite), id).toBe(true);
      expect(w, id).toBeGreaterThan(100);
      expect(h, id).toBeGreaterThan(100);
      expect(left + w, id).toBeLessThanOrEqual(WIDTH);
      expect(top + h, id).toBeLessThanOrEqual(HEIGHT);
    }
  });

  it('every series has marks with finite data values and finite SVG coordinates', () => {
    for (const [id, c] of charts) {
      expect(c.series.size, id).toBeGreaterThan(0);
      for (const [name, marks] of c.series) {
        expect(marks.length, `${id}/${name}`).toBeGreaterThan(0);
        for (const m of marks) {
          expect(Number.isFinite(m.x) && Number.isFinite(m.y), `${id}/${name}: ${m.tag}`).toBe(true);
          const coords = ['cx', 'cy', 'x', 'y', 'x1', 'y1', 'width', 'height'].map((a) => attr(m.tag, a)).filter((v) => v !== undefined);
          expect(coords.length, m.tag).toBeGreaterThanOrEqual(2);
          for (const v of coords) expect(Number.isFinite(Number(v)), m.tag).toBe(true);
        }
      }
    }
  });

  it('the accuracy chart plots the measured original, CMD and averaged accuracies', () => {
    const ev = report.evaluation;
    expect(ev?.average, 'reconstruct should report the last-k average').toBeDefined();
    const s = charts.get('accuracy')!.series;
    expect([...s.keys()]).toEqual(['original', 'cmd', `average of last ${ev!.average!.lastK}`, 'averaged window']);
    expect(s.get('original')!.map((m) => [m.x, m.y])).toEqual(ev!.checkpoints.map((c) => [c.step, c.original.accuracy]));
    expect(s.get('cmd')!.map((m) => [m.x, m.y])).toEqual(ev!.checkpoints.map((c) => [c.step, c.cmd.accuracy]));
    const avg = s.get(`average of last ${ev!.average!.lastK}`)!;
    expect(avg.map((m) => [m.x, m.y])).toEqual([[ev!.average!.checkpoints.at(-1)!.step, ev!.average!.metrics.accuracy]]);
  });

  it('the error chart has the CMD errors and the baseline run as a second series', () => {
    const s = charts.get('reconstruction-error')!.series;
    expect(s.get('cmd')!.map((m) => m.y)).toEqual(report.checkpoints.map((c) => c.relativeError));
    expect(s.get('baseline run')!.map((m) => m.y)).toEqual(baseline.checkpoints.map((c) => c.relativeError));
  });

  it('mode sizes, reference trajectories and heatmap match the run', () => {
    const sizes = charts.get('mode-sizes')!.series;
    expect(sizes.get(`sampled (of ${report.method.samples})`)!.map((m) => m.y)).toEqual(report.modes.map((m) => m.sampledCount));
    expect(sizes.get(`assigned (of ${report.input.modelledParameters})`)!.map((m) => m.y)).toEqual(report.modes.map((m) => m.assignedCount));
    const refs = charts.get('references')!.series;
    expect(refs.size).toBe(report.modes.length);
    for (const marks of refs.values()) {
      expect(marks.map((m) => m.x)).toEqual(report.checkpoints.map((c) => c.step));
      expect(Math.min(...marks.map((m) => m.y))).toBe(0); // min–max normalised
      expect(Math.max(...marks.map((m) => m.y))).toBe(1);
    }
    const heat = charts.get('correlation')!.series;
    expect(heat.get('abs-corr')).toHaveLength(1);
    expect(heat.get('mode-boundaries')).toHaveLength(report.modes.length - 1);
  });

  it('the screenshot shows coloured ink inside every chart box, and none beside the last one', () => {
    expect([shot.width, shot.height]).toEqual([WIDTH, HEIGHT]);
    for (const [id, c] of charts) expect(colouredPixels(shot, c.box), id).toBeGreaterThan(300);
    // Negative control: the empty grid cell to the right of the lone last chart.
    const [left, top, w, h] = charts.get('correlation')!.box;
    expect(left + 2 * w).toBeLessThan(WIDTH);
    expect(colouredPixels(shot, [left + w + 30, top, w, h])).toBe(0);
  });

  it('reflows to the window: one chart column at 800 px with nothing cut off, two at 1400 px', () => {
    for (const [width, columns] of [[800, 1], [1400, 2]] as const) {
      for (const [file, name] of [[htmlFile, 'report'], [sweepFile, 'report-sweep']] as const) {
        const page = renderPage('chromium', root, file, `${name}-${width}.png`, width);
        const boxes = [...page.charts.entries()];
        expect(boxes.length).toBeGreaterThanOrEqual(name === 'report' ? CHARTS.length : 2);
        for (const [id, { box: [left, , w] }] of boxes) {
          expect(left, `${name} ${id} at ${width} px`).toBeGreaterThanOrEqual(0);
          expect(left + w, `${name} ${id} at ${width} px`).toBeLessThanOrEqual(width);
          // Ink inside each box with data: the chart is drawn where its box says, not clipped away.
          const chart = page.charts.get(id)!;
          if (!chart.text.includes('class="empty"')) expect(colouredPixels(page.shot, chart.box), `${name} ${id} at ${width} px`).toBeGreaterThan(300);
        }
        const lefts = new Set(boxes.map(([, c]) => c.box[0]));
        if (name === 'report') expect(lefts.size, `chart columns of ${name} at ${width} px`).toBe(columns);
        else if (columns === 1) expect(lefts.size, `the Choosing M pair at ${width} px stacks`).toBe(1);
      }
    }
  });

  describe('the mode-sweep page', () => {
    const SWEEP = ['mode-sweep-error', 'mode-sweep-size'];
    const sweepOf = () => [...baseline.modeSweep!].sort((a, b) => a.modes - b.modes);
    const lastOf = (cs: { relativeError: unknown }[]) => cs[cs.length - 1].relativeError as number;
    const meanOf = (cs: { relativeError: unknown }[]) => cs.reduce((a, c) => a + (c.relativeError as number), 0) / cs.length;

    it('has the Choosing M charts side by side in one row, inside the window', () => {
      expect(baseline.modeSweep?.map((m) => m.modesRequested).sort((a, b) => a - b)).toEqual([2, 4, 8, 16]);
      const [e, z] = SWEEP.map((id) => sweepPage.charts.get(id)?.box ?? []);
      for (const [left, top, w, h] of [e, z]) {
        expect([left, top, w, h].every(Number.isFinite)).toBe(true);
        expect(w).toBeGreaterThan(100);
        expect(h).toBeGreaterThan(100);
        expect(left + w).toBeLessThanOrEqual(WIDTH);
        expect(top + h).toBeLessThanOrEqual(HEIGHT);
      }
      expect(z[1]).toBe(e[1]); // same row
      expect(z[0]).toBeGreaterThanOrEqual(e[0] + e[2]); // to the right, not overlapping
    });

    it('has one mark per M per series at finite coordinates, carrying the report values, placed by the axes', () => {
      const sweep = sweepOf();
      const modes = sweep.map((m) => m.modes);
      const expected: Record<string, Record<string, number[]>> = {
        'mode-sweep-error': { 'last checkpoint': sweep.map((m) => lastOf(m.checkpoints)), 'mean over checkpoints': sweep.map((m) => meanOf(m.checkpoints)) },
        'mode-sweep-size': { 'CMD model': sweep.map((m) => m.modelBytes), 'one checkpoint': sweep.map(() => baseline.storage.oneCheckpointBytes) },
      };
      for (const [id, series] of Object.entries(expected)) {
        const chart = sweepPage.charts.get(id)!;
        expect([...chart.series.keys()], id).toEqual(Object.keys(series));
        for (const [name, ys] of Object.entries(series)) {
          const marks = chart.series.get(name)!;
          expect(marks.map((m) => m.x), `${id}/${name}`).toEqual(modes);
          marks.forEach((m, i) => expect(m.y).toBeCloseTo(ys[i], 12));
          const xy = marks.map(centre);
          for (const [cx, cy] of xy) expect(Number.isFinite(cx) && Number.isFinite(cy) && cx >= 0 && cx <= chart.box[2] && cy >= 0 && cy <= chart.box[3]).toBe(true);
          for (let i = 1; i < xy.length; i++) expect(xy[i][0]).toBeGreaterThan(xy[i - 1][0]);
          // Where the reader's axes say: x on the tick labelled M, y interpolated between the y ticks.
          const ticks = axisTicks(chart);
          expect(ticks.x.map((t) => t.label)).toEqual(modes.map(String));
          marks.forEach((m, i) => {
            expect(xy[i][0]).toBeCloseTo(ticks.x.find((t) => t.label === String(m.x))!.pos, 1);
            expect(xy[i][1]).toBeCloseTo(yFromTicks(ticks.y, id === 'mode-sweep-size' ? parseBytes : parsePercent, m.y), 1);
          });
        }
      }
    });

    it('the screenshot has each mark in its series colour where its coordinates say', () => {
      const { shot: img, charts: cs } = sweepPage;
      for (const id of SWEEP) {
        const c = cs.get(id)!;
        expect(colouredPixels(img, c.box), id).toBeGreaterThan(300);
        for (const [name, marks] of c.series) {
          for (const m of marks) {
            const [cx, cy] = centre(m);
            const fill = attr(m.tag, 'fill')!;
            expect(attr(m.tag, 'r'), `${id}/${name}`).toBe('3');
            expect(discAt(img, c.box[0] + cx, c.box[1] + cy, hexRgb(fill)), `${id}/${name} at M = ${m.x}`).toBe(true);
          }
        }
      }
      // Negative control: the gap between the two charts has no ink.
      const [e, z] = SWEEP.map((id) => cs.get(id)!.box);
      expect(z[0] - (e[0] + e[2])).toBeGreaterThanOrEqual(8);
      expect(colouredPixels(img, [e[0] + e[2] + 2, e[1], z[0] - (e[0] + e[2]) - 4, e[3]])).toBe(0);
    });

    it('the error chart draws the baselines that fit in the CMD storage; the table lists all', () => {
      const fits = baseline.baselines!.filter((b) => b.storageBytes! <= baseline.storage.modelBytes).map((b) => b.name);
      const larger = baseline.baselines!.filter((b) => b.storageBytes! > baseline.storage.modelBytes).map((b) => b.name);
      expect(larger.length).toBeGreaterThan(0); // the rank-M PCA/DMD are bigger than CMD here
      const s = sweepPage.charts.get('reconstruction-error')!.series;
      expect([...s.keys()]).toEqual(['cmd', ...fits]);
      for (const name of fits) {
        const b = baseline.baselines!.find((x) => x.name === name)!;
        expect(s.get(name)!.map((m) => m.y)).toEqual(b.checkpoints.map((c) => c.relativeError));
      }
      const table = /<h2>Baselines<\/h2>[\s\S]*?<\/table>/.exec(sweepPage.html)?.[0] ?? '';
      for (const b of baseline.baselines!) expect(table).toContain(`<td>${b.name}</td>`);
      expect(colouredPixels(sweepPage.shot, sweepPage.charts.get('reconstruction-error')!.box)).toBeGreaterThan(300);
    });
  });
});
