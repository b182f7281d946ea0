/**
 * Charts, series and marks out of our HTML (as written, or as a browser serialized it). Our own
 * markup only: no nested <svg> and no nested series <g>.
 */
export const attr = (tag: string, name: string): string | undefined => new RegExp(`\\s${name}="([^"]*)"`).exec(tag)?.[1];

export interface Mark {
  tag: string;
  x: number;
  y: number;
}
export interface Chart {
  /** The `data-box` the page's script records ("left,top,width,height"); empty before a browser ran it. */
  box: number[];
  text: string;
  series: Map<string, Mark[]>;
}

export function parseCharts(dom: string): Map<string, Chart> {
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

/** A mark's position in SVG units (circle centre). */
export const centre = (m: Mark): [number, number] => [Number(attr(m.tag, 'cx')), Number(attr(m.tag, 'cy'))];

export interface Tick {
  pos: number;
  label: string;
}

/** The axis tick labels of a chart and where they sit: y ticks are end-anchored, x ticks centred. */
export function axisTicks(chart: Chart): { x: Tick[]; y: Tick[] } {
  const x: Tick[] = [];
  const y: Tick[] = [];
  for (const t of chart.text.matchAll(/<text class="tick"([^>]*)>([^<]*)<\/text>/g)) {
    const anchor = attr(t[1], 'text-anchor');
    if (anchor === 'end') y.push({ pos: Number(attr(t[1], 'y')), label: t[2] });
    else if (anchor === 'middle') x.push({ pos: Number(attr(t[1], 'x')), label: t[2] });
  }
  return { x, y };
}

/**
 * The y position the axis gives `value`: interpolated between the first and last tick, whose
 * labels `parse` reads back into data units.
 */
export function yFromTicks(ticks: Tick[], parse: (label: string) => number, value: number): number {
  const a = ticks[0];
  const b = ticks[ticks.length - 1];
  const va = parse(a.label);
  const vb = parse(b.label);
  return a.pos + ((value - va) / (vb - va)) * (b.pos - a.pos);
}

/** "12.5%" → 0.125. */
export const parsePercent = (s: string) => Number(s.replace('%', '')) / 100;
/** "200 KB" → 200000 (decimal units, as formatBytes writes them). */
export const parseBytes = (s: string) => {
  const [v, unit] = s.split(' ');
  return Number(v) * 1000 ** ['B', 'KB', 'MB', 'GB', 'TB'].indexOf(unit);
};
