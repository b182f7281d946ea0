/**
 * The HTML report as a browser renders it. Real runs: `cmd reconstruct --eval-data` on the
 * fmnist-mlp fixture (measured accuracies for the accuracy chart) and `cmd analyze` with fewer
 * modes as the baseline run; then headless Chromium dumps the rendered DOM (with each chart's
 * box, recorded by the page's inline script) and takes a screenshot, decoded here.
 * Chromium is required: without it this test fails, saying how to install it.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RunReport } from '../../src/output/report-schema.ts';
import { fixture, repoRoot } from '../helpers/tmp.ts';
import { decodePng, type Image } from './png-decode.ts';
import { cmd } from './run-fixture.ts';

const WIDTH = 1280;
const HEIGHT = 4000;
const CHARTS = ['accuracy', 'reconstruction-error', 'mode-sizes', 'references', 'correlation'];

function findChromium(): string {
  for (const name of ['chromium', 'chromium-browser', 'google-chrome']) {
    const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
    if (r.status === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  throw new Error('Chromium is not installed; the HTML report test needs it: apt-get install -y chromium');
}

function runChromium(bin: string, profile: string, args: string[], url: string): string {
  const r = spawnSync(
    bin,
    ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--hide-scrollbars', '--force-device-scale-factor=1', `--user-data-dir=${profile}`, `--window-size=${WIDTH},${HEIGHT}`, ...args, url],
    { encoding: 'utf8', timeout: 90_000, maxBuffer: 64 << 20 },
  );
  if (r.status !== 0) throw new Error(`chromium ${args.join(' ')} exited ${r.status}: ${r.stderr.split('\n').slice(-5).join(' | ')}`);
  return r.stdout;
}

const attr = (tag: string, name: string): string | undefined => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];

interface Mark {
  tag: string;
  x: number;
  y: number;
}
interface Chart {
  box: number[];
  text: string;
  series: Map<string, Mark[]>;
}

/** Charts, series and marks out of the serialized DOM (our own markup: no nested <svg> or series <g>). */
function parseCharts(dom: string): Map<string, Chart> {
  const charts = new Map<string, Chart>();
  for (const m of dom.matchAll(/<svg([^>]*)>([\s\S]*?)<\/svg>/g)) {
    const id = attr(m[1], 'data-chart');
    if (!id) continue;
    const series = new Map<string, Mark[]>();
    for (const g of m[2].matchAll(/<g data-series="([^"]*)"[^>]*>([\s\S]*?)<\/g>/g)) {
      const marks = [...g[2].matchAll(/<(?:circle|rect|image|line)\b[^>]*\sclass="mark"[^>]*>/g)].map((t) => ({ tag: t[0], x: Number(attr(t[0], 'data-x')), y: Number(attr(t[0], 'data-y')) }));
      series.set(g[1], marks);
    }
    charts.set(id, { box: (attr(m[1], 'data-box') ?? '').split(',').map(Number), text: m[2], series });
  }
  return charts;
}

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

describe('HTML report rendered by headless Chromium', () => {
  let root: string;
  let report: RunReport;
  let baseline: RunReport;
  let html: string;
  let charts: Map<string, Chart>;
  let shot: Image;

  beforeAll(() => {
    const chromium = findChromium();
    root = mkdtempSync(path.join(os.tmpdir(), 'cmd-html-'));
    const run = path.join(root, 'run');
    const base = path.join(root, 'baseline');
    const ckpts = fixture('fmnist-mlp', 'checkpoints');
    for (const [args, what] of [
      [['reconstruct', ckpts, '-o', run, '--eval-data', fixture('fmnist-mlp', 'test'), '-q'], 'reconstruct'],
      [['analyze', ckpts, '-o', base, '--modes', '4', '-q'], 'analyze'],
    ] as const) {
      const r = cmd([...args]);
      if (r.status !== 0) throw new Error(`cmd ${what} failed (${r.status}): ${r.stderr}`);
    }
    report = JSON.parse(readFileSync(path.join(run, 'report.json'), 'utf8'));
    baseline = JSON.parse(readFileSync(path.join(base, 'report.json'), 'utf8'));
    const htmlFile = path.join(root, 'report.html');
    const r = cmd(['report', run, '--baseline', base, '--max-recon-error', '1', '--html', htmlFile]);
    if (r.status !== 0) throw new Error(`cmd report failed (${r.status}): ${r.stderr}`);
    html = readFileSync(htmlFile, 'utf8');
    const url = pathToFileURL(htmlFile).href;
    charts = parseCharts(runChromium(chromium, path.join(root, 'profile-dom'), ['--dump-dom'], url));
    const png = path.join(root, 'report.png');
    runChromium(chromium, path.join(root, 'profile-shot'), [`--screenshot=${png}`], url);
    mkdirSync(path.join(repoRoot, 'test-artifacts'), { recursive: true });
    copyFileSync(png, path.join(repoRoot, 'test-artifacts', 'report.png'));
    shot = decodePng(readFileSync(png));
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
    expect(existsSync(path.join(repoRoot, 'test-artifacts', 'report.png'))).toBe(true);
    for (const [id, c] of charts) expect(colouredPixels(shot, c.box), id).toBeGreaterThan(300);
    // Negative control: the empty grid cell to the right of the lone last chart.
    const [left, top, w, h] = charts.get('correlation')!.box;
    expect(left + 2 * w).toBeLessThan(WIDTH);
    expect(colouredPixels(shot, [left + w + 30, top, w, h])).toBe(0);
  });
});
