/**
 * Small hand-made SVG charts for the self-contained HTML report. Every chart is an <svg>
 * with `data-chart`, every series a <g data-series>, every mark carries its data values in
 * `data-x`/`data-y`, so tests (and curious readers) can check what was drawn.
 */

export const W = 600;
export const H = 320;
const M = { left: 64, right: 16, top: 16, bottom: 64 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

/** Escapes text for HTML/SVG content and attribute values. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[ch] as string);
}

const r2 = (x: number) => String(Math.round(x * 100) / 100);

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];
/** A distinct colour per series index (hues spread evenly past the palette). */
export function seriesColour(i: number): string {
  return i < PALETTE.length ? PALETTE[i] : `hsl(${Math.round((i * 137.508) % 360)}, 65%, 45%)`;
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5, integer = false): number[] {
  if (!(hi > lo)) return [lo];
  const raw = integer ? Math.max(1, (hi - lo) / count) : (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = (integer ? [1, 2, 5, 10] : [1, 2, 2.5, 5, 10]).map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const ticks: number[] = [];
  for (let t = Math.ceil(lo / step - 1e-9) * step; t <= hi + step * 1e-9; t += step) ticks.push(Number(t.toPrecision(12)));
  return ticks;
}

interface Scale {
  lo: number;
  hi: number;
  (v: number): number;
}
function scale(lo: number, hi: number, from: number, to: number): Scale {
  const span = hi > lo ? hi - lo : 1;
  const f = ((v: number) => from + ((v - lo) / span) * (to - from)) as Scale;
  f.lo = lo;
  f.hi = hi;
  return f;
}

/** A domain around finite values, padded a little; [0, 1] when there are none. */
function domain(values: number[], pad = 0.05, floor?: number): [number, number] {
  const ok = values.filter(Number.isFinite);
  if (!ok.length) return [0, 1];
  let lo = Math.min(...ok);
  let hi = Math.max(...ok);
  if (hi === lo) {
    lo -= Math.abs(lo) * 0.1 || 0.5;
    hi += Math.abs(hi) * 0.1 || 0.5;
  }
  const p = (hi - lo) * pad;
  lo -= p;
  hi += p;
  if (floor !== undefined) lo = Math.max(lo, floor);
  return [lo, hi];
}

function axes(x: Scale, y: Scale, xLabel: string, yLabel: string, yFormat: (v: number) => string, xTicks?: { v: number; label: string }[], xInteger = false): string {
  const out: string[] = [`<g class="axes">`];
  for (const t of niceTicks(y.lo, y.hi)) {
    const py = r2(y(t));
    out.push(`<line class="grid" x1="${M.left}" x2="${M.left + PW}" y1="${py}" y2="${py}"/>`, `<text class="tick" x="${M.left - 6}" y="${py}" text-anchor="end" dominant-baseline="middle">${esc(yFormat(t))}</text>`);
  }
  const xt = xTicks ?? niceTicks(x.lo, x.hi, 8, xInteger).map((v) => ({ v, label: String(v) }));
  for (const t of xt) {
    const px = r2(x(t.v));
    out.push(`<line class="tickmark" x1="${px}" x2="${px}" y1="${M.top + PH}" y2="${M.top + PH + 4}"/>`, `<text class="tick" x="${px}" y="${M.top + PH + 16}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  out.push(`<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PH}"/>`, `<line class="axis" x1="${M.left}" x2="${M.left + PW}" y1="${M.top + PH}" y2="${M.top + PH}"/>`);
  out.push(`<text class="label" x="${M.left + PW / 2}" y="${M.top + PH + 34}" text-anchor="middle">${esc(xLabel)}</text>`);
  out.push(`<text class="label" transform="translate(14 ${M.top + PH / 2}) rotate(-90)" text-anchor="middle">${esc(yLabel)}</text>`);
  out.push('</g>');
  return out.join('');
}

function legend(items: { name: string; colour: string; dashed?: boolean }[]): string {
  const out: string[] = ['<g class="legend">'];
  let x = M.left;
  let y = M.top + PH + 50;
  for (const it of items) {
    const w = 30 + it.name.length * 6.5;
    if (x + w > W - M.right && x > M.left) {
      x = M.left;
      y += 13; // a second row; the bottom margin leaves room for two
    }
    out.push(`<line x1="${x}" x2="${x + 18}" y1="${y - 4}" y2="${y - 4}" stroke="${it.colour}" stroke-width="3"${it.dashed ? ' stroke-dasharray="4 3"' : ''}/>`, `<text class="tick" x="${x + 22}" y="${y}">${esc(it.name)}</text>`);
    x += w;
  }
  out.push('</g>');
  return out.join('');
}

function svgOpen(id: string, title: string): string {
  return `<svg data-chart="${esc(id)}" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`;
}

/** A chart that has nothing to plot: the frame and a sentence saying why. */
export function emptyChart(id: string, title: string, message: string): string {
  return `${svgOpen(id, title)}<rect class="frame" x="${M.left}" y="${M.top}" width="${PW}" height="${PH}"/><text class="empty" x="${W / 2}" y="${H / 2}" text-anchor="middle">${esc(message)}</text></svg>`;
}

export interface Point {
  x: number;
  y: number;
}
export interface LineSeries {
  name: string;
  points: Point[];
  colour: string;
  dashed?: boolean;
  /** Marker radius; 0 keeps the data attributes on invisible marks. @default 3 */
  radius?: number;
  /** Leave out of the legend (a helper series drawn for another one). */
  noLegend?: boolean;
}

export interface LineChartOptions {
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: LineSeries[];
  yFormat?: (v: number) => string;
  /** Lower bound of the y axis (e.g. 0 for errors). */
  yFloor?: number;
  /** Stretch the y axis down (or up) to 0, so sizes are read against zero, not against each other. */
  yFromZero?: boolean;
  /** Logarithmic x axis (for x values spread over orders of magnitude, like M); x ≤ 0 is left out. */
  xLog?: boolean;
  /** Tick positions on the x axis, in data units (default: round values). */
  xTicks?: number[];
  /**
   * Values above this are off the scale: pinned to the top edge as hollow marks (data-y keeps
   * the true value, `data-clipped` says so), so one wild series cannot flatten all the others.
   */
  yClip?: number;
  legend?: boolean;
}

/** A scale that positions `tx(v)` linearly; lo/hi stay in data units for the axis. */
function transformed(tx: (v: number) => number, lo: number, hi: number, from: number, to: number): Scale {
  const inner = scale(tx(lo), tx(hi), from, to);
  const f = ((v: number) => inner(tx(v))) as Scale;
  f.lo = lo;
  f.hi = hi;
  return f;
}

/** Lines with point marks; non-finite points are left out and break the line. */
export function lineChart(o: LineChartOptions): string {
  const { id, title, xLabel, yLabel, series, yFormat = (v) => String(v), yFloor, yFromZero = false, xLog = false, xTicks, yClip = Infinity, legend: showLegend = true } = o;
  const tx = xLog ? (v: number) => (v > 0 ? Math.log10(v) : NaN) : (v: number) => v;
  const all = series.flatMap((s) => s.points);
  const [x0, x1] = domain(all.map((p) => tx(p.x)), xLog ? 0.06 : 0.02);
  const [y0, y1] = domain([...all.map((p) => Math.min(p.y, yClip)), ...(yFromZero ? [0] : [])], 0.08, yFloor);
  const x = xLog ? transformed(tx, 10 ** x0, 10 ** x1, M.left, M.left + PW) : scale(x0, x1, M.left, M.left + PW);
  const y = scale(y0, y1, M.top + PH, M.top);
  // Steps are integers: ticks at 2.5 would name checkpoints that do not exist.
  const xInteger = all.every((p) => !Number.isFinite(p.x) || Number.isInteger(p.x));
  const body: string[] = [svgOpen(id, title), axes(x, y, xLabel, yLabel, yFormat, xTicks?.map((v) => ({ v, label: String(v) })), xInteger)];
  for (const s of series) {
    const segments: string[][] = [[]];
    const marks: string[] = [];
    for (const p of s.points) {
      if (!Number.isFinite(tx(p.x)) || !Number.isFinite(p.y)) {
        segments.push([]);
        continue;
      }
      const px = r2(x(p.x));
      const clipped = p.y > yClip;
      const py = r2(clipped ? M.top : y(p.y));
      segments[segments.length - 1].push(`${px},${py}`);
      const fill = clipped ? `fill="#fff" stroke="${s.colour}" stroke-width="1.5" data-clipped="true"` : `fill="${s.colour}"`;
      marks.push(`<circle class="mark" cx="${px}" cy="${py}" r="${s.radius ?? 3}" ${fill} data-x="${p.x}" data-y="${p.y}"/>`);
    }
    const lines = segments.filter((g) => g.length > 1).map((g) => `<polyline points="${g.join(' ')}" fill="none" stroke="${s.colour}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 4"' : ''}/>`);
    body.push(`<g data-series="${esc(s.name)}">${lines.join('')}${marks.join('')}</g>`);
  }
  if (showLegend) body.push(legend(series.filter((s) => !s.noLegend).map((s) => ({ name: s.name, colour: s.colour, dashed: s.dashed }))));
  body.push('</svg>');
  return body.join('');
}

export interface BarSeries {
  name: string;
  colour: string;
  /** One value per category; the bar height is value / total (a share). */
  values: number[];
}

/** Grouped bars of each series' share of its own total, so counts of different scale compare. */
export function shareBarChart(o: { id: string; title: string; xLabel: string; categories: string[]; series: BarSeries[] }): string {
  const { id, title, xLabel, categories, series } = o;
  const shares = series.map((s) => {
    const total = s.values.reduce((a, b) => a + b, 0);
    return s.values.map((v) => (total > 0 ? v / total : 0));
  });
  const yMax = Math.max(0.01, ...shares.flat()) * 1.08;
  const y = scale(0, yMax, M.top + PH, M.top);
  const band = PW / Math.max(1, categories.length);
  const x = scale(0, categories.length, M.left, M.left + PW);
  const barW = (band * 0.8) / Math.max(1, series.length);
  const labelEvery = Math.ceil(categories.length / 20);
  const xTicks = categories.map((c, i) => ({ v: i + 0.5, label: i % labelEvery === 0 ? c : '' }));
  const body: string[] = [svgOpen(id, title), axes(x, y, xLabel, 'share of the series total', (v) => `${Math.round(v * 100)}%`, xTicks)];
  series.forEach((s, si) => {
    const rects = s.values.map((v, i) => {
      const top = y(shares[si][i]);
      const left = M.left + i * band + band * 0.1 + si * barW;
      return `<rect class="mark" x="${r2(left)}" y="${r2(top)}" width="${r2(barW)}" height="${r2(M.top + PH - top)}" fill="${s.colour}" data-x="${esc(categories[i])}" data-y="${v}" data-share="${r2(shares[si][i] * 100)}"><title>${esc(`${s.name} ${categories[i]}: ${v}`)}</title></rect>`;
    });
    body.push(`<g data-series="${esc(s.name)}">${rects.join('')}</g>`);
  });
  body.push(legend(series.map((s) => ({ name: s.name, colour: s.colour }))), '</svg>');
  return body.join('');
}

/** Viridis, sampled at five stops and interpolated linearly: perceptually even enough here. */
const VIRIDIS = [
  [68, 1, 84],
  [59, 82, 139],
  [33, 145, 140],
  [94, 201, 98],
  [253, 231, 37],
];
export function viridis(t: number): [number, number, number] {
  const v = Number.isFinite(t) ? Math.min(1, Math.max(0, t)) : 0;
  const f = v * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(f));
  const u = f - i;
  return [0, 1, 2].map((c) => Math.round(VIRIDIS[i][c] + (VIRIDIS[i + 1][c] - VIRIDIS[i][c]) * u)) as [number, number, number];
}

/**
 * A square heatmap given as a PNG data URI (one pixel per cell, scaled up without smoothing),
 * with lines at the mode boundaries (`boundaries` in cell units along both axes).
 */
export function heatmapChart(o: { id: string; title: string; size: number; pngDataUri: string; boundaries: number[] }): string {
  const side = H - M.top - 24;
  const left = M.left;
  const top = M.top;
  const cell = side / o.size;
  const lines = o.boundaries.map((b) => {
    const p = r2(left + b * cell);
    const q = r2(top + b * cell);
    return `<line class="mark" x1="${p}" x2="${p}" y1="${top}" y2="${top + side}" data-x="${r2(b)}" data-y="0"/><line x1="${left}" x2="${left + side}" y1="${q}" y2="${q}"/>`;
  });
  const legendX = left + side + 24;
  const stops = [0, 0.25, 0.5, 0.75, 1].map((t) => `<stop offset="${t * 100}%" stop-color="rgb(${viridis(1 - t).join(',')})"/>`).join('');
  return [
    svgOpen(o.id, o.title),
    `<g data-series="abs-corr"><image class="mark" href="${o.pngDataUri}" x="${left}" y="${top}" width="${r2(side)}" height="${r2(side)}" preserveAspectRatio="none" style="image-rendering:pixelated" data-x="0" data-y="0" data-size="${o.size}"/></g>`,
    `<g data-series="mode-boundaries" stroke="#fff" stroke-width="1" opacity="0.9">${lines.join('')}</g>`,
    `<rect class="frame" x="${left}" y="${top}" width="${r2(side)}" height="${r2(side)}"/>`,
    `<defs><linearGradient id="${esc(o.id)}-ramp" x1="0" x2="0" y1="0" y2="1">${stops}</linearGradient></defs>`,
    `<rect x="${legendX}" y="${top}" width="14" height="${r2(side)}" fill="url(#${esc(o.id)}-ramp)"/>`,
    `<text class="tick" x="${legendX + 20}" y="${top + 8}">|corr| = 1</text><text class="tick" x="${legendX + 20}" y="${r2(top + side)}">0</text>`,
    `<text class="tick" x="${left}" y="${r2(top + side + 16)}">sampled parameters, ordered by mode (${o.size} × ${o.size} cells)</text>`,
    '</svg>',
  ].join('');
}
