/**
 * The self-contained HTML report: one file with inline CSS and inline SVG charts, no network
 * (a Content-Security-Policy forbids any fetch), readable offline and attachable to CI runs.
 */
import path from 'node:path';
import { formatBytes } from './text.ts';
import { UsageError } from '../errors.ts';
import { writeFileAtomic } from '../output/atomic.ts';
import { fromNum, type NumValue, type RunReport } from '../output/report-schema.ts';
import { formatGateValue, type GateResult, type ReportRun } from './gates.ts';
import { loadHeatmap, loadReferences, type HeatmapData, type Loaded, type References } from './html-data.ts';
import { loadRun } from './load.ts';
import { baselineRows, ratio, seriesErrors, sweepRows } from './compare-rows.ts';
import { finalAccuracy, fixed, lastRelativeError, pct, plural, samplesText } from './metrics.ts';
import { encodePngRgb } from './png.ts';
import { sweepCharts } from './sweep-charts.ts';
import { emptyChart, esc, heatmapChart, lineChart, seriesColour, shareBarChart, viridis, W, type LineSeries } from './svg.ts';

export interface HtmlInputs {
  run: ReportRun;
  baseline?: ReportRun;
  gates?: readonly GateResult[];
  references: Loaded<References>;
  heatmap: Loaded<HeatmapData>;
}

const percent = (v: number) => `${Number((v * 100).toFixed(2))}%`;

function accuracyChart(r: RunReport): string {
  const id = 'accuracy';
  const title = 'Test accuracy per checkpoint';
  const ev = r.evaluation;
  if (!ev) return emptyChart(id, title, 'no evaluation in this report');
  const series: LineSeries[] = [
    { name: 'original', colour: seriesColour(0), points: ev.checkpoints.map((c) => ({ x: c.step, y: fromNum(c.original.accuracy) })) },
    { name: 'cmd', colour: seriesColour(1), points: ev.checkpoints.map((c) => ({ x: c.step, y: fromNum(c.cmd.accuracy) })) },
  ];
  if (ev.average) {
    const y = fromNum(ev.average.metrics.accuracy);
    const steps = ev.average.checkpoints.map((c) => c.step);
    // The averaged model is one model: a dashed level over the window it averages, marked once at its end.
    series.push({ name: `average of last ${ev.average.lastK}`, colour: seriesColour(2), dashed: true, radius: 5, points: steps.length ? [{ x: Math.max(...steps), y }] : [] });
    if (steps.length > 1) series.push({ name: 'averaged window', colour: seriesColour(2), dashed: true, radius: 0, noLegend: true, points: [{ x: Math.min(...steps), y }, { x: Math.max(...steps), y }] });
  }
  const kept = series.filter((s) => s.points.some((p) => Number.isFinite(p.y)));
  if (!kept.length) return emptyChart(id, title, 'the evaluation has no finite accuracies');
  return lineChart({ id, title, xLabel: 'step', yLabel: 'test accuracy', series: kept, yFormat: percent });
}

function errorChart(r: RunReport, baseline?: ReportRun): string {
  const series: LineSeries[] = [{ name: 'cmd', colour: seriesColour(1), points: r.checkpoints.map((c) => ({ x: c.step, y: fromNum(c.relativeError) })) }];
  const shown = new Set(baselineRows(r).filter((b) => b.inChart).map((b) => b.index));
  (r.baselines ?? []).forEach((b, i) => {
    if (shown.has(i)) series.push({ name: b.name, colour: seriesColour(3 + i), points: b.checkpoints.map((c) => ({ x: c.step, y: fromNum(c.relativeError) })) });
  });
  if (baseline) series.push({ name: 'baseline run', colour: seriesColour(9), dashed: true, points: baseline.report.checkpoints.map((c) => ({ x: c.step, y: fromNum(c.relativeError) })) });
  return lineChart({ id: 'reconstruction-error', title: 'Relative reconstruction error per checkpoint', xLabel: 'step', yLabel: '‖W − Ŵ‖ / ‖W‖', series, yFormat: percent, yFloor: 0, yClip: errorClip(r) });
}

/**
 * Errors above 100% (worse than reconstructing all zeros; the last-k average far from the early
 * checkpoints) go off the scale, unless CMD's own errors are that large.
 */
function errorClip(r: RunReport): number {
  return Math.max(1, ...r.checkpoints.map((c) => fromNum(c.relativeError)).filter(Number.isFinite));
}

function modeSizesChart(r: RunReport): string {
  return shareBarChart({
    id: 'mode-sizes',
    title: 'Mode sizes',
    xLabel: 'mode',
    categories: r.modes.map((m) => String(m.mode)),
    series: [
      { name: `sampled (of ${r.method.samples})`, colour: seriesColour(0), values: r.modes.map((m) => m.sampledCount) },
      { name: `assigned (of ${r.input.modelledParameters})`, colour: seriesColour(3), values: r.modes.map((m) => m.assignedCount) },
    ],
  });
}

function referencesChart(refs: Loaded<References>): string {
  const id = 'references';
  const title = 'Reference trajectories (each min–max normalised to [0, 1])';
  if (!refs.ok) return emptyChart(id, title, `reference trajectories unavailable: ${refs.reason}`);
  const series = refs.value.trajectories.map((tr, m) => {
    let lo = Infinity;
    let hi = -Infinity;
    for (const v of tr) if (Number.isFinite(v)) (lo = Math.min(lo, v)), (hi = Math.max(hi, v));
    return { name: `mode ${m}`, colour: seriesColour(m), radius: 2, points: Array.from(tr, (v, t) => ({ x: refs.value.steps[t], y: hi > lo ? (v - lo) / (hi - lo) : 0.5 })) };
  });
  return lineChart({ id, title, xLabel: 'step', yLabel: 'normalised value', series, yFormat: (v) => String(Number(v.toFixed(2))) });
}

function correlationChart(r: RunReport, heat: Loaded<HeatmapData>): string {
  const id = 'correlation';
  const title = 'Sampled |corr|, reordered by mode';
  if (!heat.ok) return emptyChart(id, title, `heatmap unavailable: ${heat.reason}`);
  const { size, values } = heat.value;
  const rgb = new Uint8Array(size * size * 3);
  for (let i = 0; i < size * size; i++) rgb.set(viridis(values[i]), i * 3);
  const png = encodePngRgb(size, size, rgb);
  const K = r.modes.reduce((s, m) => s + m.sampledCount, 0);
  const boundaries: number[] = [];
  let start = 0;
  for (const m of r.modes.slice(0, -1)) {
    start += m.sampledCount;
    boundaries.push(K > 0 ? (start * size) / K : 0);
  }
  return heatmapChart({ id, title, size, pngDataUri: `data:image/png;base64,${png.toString('base64')}`, boundaries });
}

function figure(title: string, caption: string, svg: string, wide = false): string {
  return `<figure${wide ? ' class="wide"' : ''}><figcaption><strong>${esc(title)}</strong><br><span>${esc(caption)}</span></figcaption>${svg}</figure>`;
}

function errorCaption(r: RunReport, baseline?: ReportRun): string {
  const rows = baselineRows(r);
  const hidden = rows.filter((b) => !b.inChart).map((b) => b.name);
  const clip = errorClip(r);
  const drawn = [...rows.filter((b) => b.inChart).map((b) => r.baselines![b.index].checkpoints), baseline?.report.checkpoints ?? []];
  const clipped = drawn.some((cs) => cs.some((c) => fromNum(c.relativeError) > clip));
  const base = `relative Frobenius error of the reconstruction per checkpoint (lower is better${clipped ? `; errors above ${pct(clip, 0)} are pinned to the top edge as hollow marks` : ''})`;
  if (!rows.length) return base;
  return `${base}; baselines that fit in the CMD model's storage as extra series${hidden.length ? ` (${hidden.join(', ')}: more storage, in the Baselines table only)` : ''}`;
}

/** The "Choosing M" figure spanning both grid columns, or nothing without a mode sweep. */
function sweepFigure(r: RunReport): string[] {
  const charts = sweepCharts(r);
  if (!charts) return [];
  const main = sweepRows(r).find((s) => s.main);
  const caption = `the same run fitted with each M of the sweep${main ? ` (M = ${main.modes} is this report's model)` : ''}: relative reconstruction error at the last checkpoint and averaged over checkpoints (left), and the model size against one checkpoint (right); where the error stops falling is a good M`;
  return [figure('Choosing M', caption, `<div class="pair">${charts.error}${charts.size}</div>`, true)];
}

/** `align` has one letter per column: 'r' right-aligns numbers, anything else is text. */
function htmlTable(rows: string[][], align: string): string {
  const [head, ...body] = rows;
  const td = (c: string, i: number, tag: string) => `<${tag}${align[i] === 'r' ? ' class="num"' : ''}>${esc(c)}</${tag}>`;
  return `<table><thead><tr>${head.map((c, i) => td(c, i, 'th')).join('')}</tr></thead><tbody>${body.map((r) => `<tr>${r.map((c, i) => td(c, i, 'td')).join('')}</tr>`).join('')}</tbody></table>`;
}

const acc = (x: NumValue | undefined) => (x === undefined ? '–' : pct(fromNum(x)));

function tables(inp: HtmlInputs): string {
  const r = inp.run.report;
  const parts: string[] = [];
  if (inp.gates?.length) {
    parts.push('<h2>Gates</h2>', htmlTable([['gate', 'value', 'threshold', 'result', 'what'], ...inp.gates.map((g) => [g.name, formatGateValue(g.value), `≤ ${g.thresholdText}`, g.passed ? 'pass' : 'FAIL', g.nonFinite ? `${g.description}; non-finite: ${g.nonFinite}` : g.description])], 'lrlll'));
  }
  const ev = r.evaluation;
  if (ev) {
    const rows = ev.checkpoints.map((c) => [c.name, String(c.step), acc(c.original.accuracy), acc(c.cmd.accuracy), c.original.loss === undefined ? '–' : fixed(fromNum(c.original.loss)), c.cmd.loss === undefined ? '–' : fixed(fromNum(c.cmd.loss))]);
    if (ev.average) rows.push([`average of last ${ev.average.lastK}`, '', '', acc(ev.average.metrics.accuracy), '', ev.average.metrics.loss === undefined ? '–' : fixed(fromNum(ev.average.metrics.loss))]);
    parts.push(`<h2>Evaluation (${esc(ev.method)})</h2>`, htmlTable([['checkpoint', 'step', 'original acc', 'CMD acc', 'original loss', 'CMD loss'], ...rows], 'lrrrrr'));
  }
  const baselines = baselineRows(r);
  if (baselines.length) {
    const own = seriesErrors(r.checkpoints);
    const final = finalAccuracy(r);
    const cmdRow = [`CMD (${r.method.modes} modes, this run)`, '–', formatBytes(r.storage.modelBytes), ratio(1), pct(own.last), pct(own.mean), final ? pct(final.cmd) : '–', 'yes'];
    const rows = baselines.map((b) => [b.name, b.rank === undefined ? '–' : String(b.rank), b.storageBytes === undefined ? '–' : formatBytes(b.storageBytes), ratio(b.storageVsCmd), pct(b.lastError), pct(b.meanError), acc(b.metrics?.accuracy), b.inChart ? 'yes' : 'no (more storage)']);
    parts.push('<h2>Baselines</h2>', htmlTable([['name', 'rank', 'storage', '× CMD storage', 'last error', 'mean error', 'accuracy', 'in chart'], cmdRow, ...rows], 'lrrrrrrl'));
  }
  const sweep = sweepRows(r);
  if (sweep.length) {
    const withAcc = sweep.some((s) => s.metrics?.accuracy !== undefined);
    const rows = sweep.map((s) => [`${s.modes}${s.main ? ' (this report)' : ''}`, String(s.modesRequested), formatBytes(s.modelBytes), `${fixed(s.compressionVsTrajectory, 1)}×`, pct(s.lastError), pct(s.meanError), ...(withAcc ? [acc(s.metrics?.accuracy)] : []), s.model]);
    parts.push('<h2>Choosing M (mode sweep)</h2>', htmlTable([['modes M', 'requested', 'model size', 'smaller than checkpoints', 'last error', 'mean error', ...(withAcc ? ['accuracy'] : []), 'model file'], ...rows], withAcc ? 'rrrrrrrl' : 'rrrrrrl'));
  }
  parts.push('<h2>Modes</h2>', htmlTable([['mode', 'sampled', 'assigned', 'mean R²', 'reference parameter'], ...r.modes.map((m) => [String(m.mode), String(m.sampledCount), String(m.assignedCount), fixed(fromNum(m.meanR2), 3), `${m.reference.tensor}[${m.reference.element}]`])], 'rrrrl'));
  parts.push('<h2>Checkpoints</h2>', htmlTable([['checkpoint', 'step', 'relative error'], ...r.checkpoints.map((c) => [c.name, String(c.step), pct(fromNum(c.relativeError))])], 'lrr'));
  return parts.join('\n');
}

function facts(inp: HtmlInputs): string {
  const r = inp.run.report;
  const a = finalAccuracy(r);
  const items = [
    ['modes', `${r.method.modes} (${r.method.modesRequested} requested)`],
    ['samples', `${samplesText(r)} (${r.method.sampling}, seed ${r.method.seed ?? 'from file'})`],
    ['parameters', `${r.input.modelledParameters.toLocaleString('en-US')} in ${r.input.modelledTensors} tensors`],
    ['checkpoints', `${r.checkpoints.length} (${r.input.format})`],
    ['last relative error', pct(lastRelativeError(r))],
    ...(r.modeSweep?.length ? [['mode sweep', `M = ${sweepRows(r).map((s) => s.modes).join(', ')} (see Choosing M)`]] : []),
    ['final accuracy', a ? `original ${pct(a.original)}, CMD ${pct(a.cmd)}${a.average !== undefined ? `, averaged ${pct(a.average)}` : ''}` : 'no evaluation'],
    ['storage', `model ${formatBytes(r.storage.modelBytes)} vs ${formatBytes(r.storage.checkpointsBytes)} of checkpoints (${fixed(fromNum(r.storage.compressionVsTrajectory), 1)}×)`],
    ...(inp.run.seconds !== undefined ? [['runtime', `${inp.run.seconds.toFixed(2)} s`]] : []),
    ...(inp.baseline ? [['baseline run', inp.baseline.file]] : []),
  ];
  return `<dl>${items.map(([k, v]) => `<dt>${esc(k)}</dt><dd>${esc(v)}</dd>`).join('')}</dl>`;
}

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;background:#fff;margin:24px;max-width:1240px}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:24px 0 8px}
.sub{color:#666;margin:0 0 16px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 16px;margin:0 0 16px} dt{color:#666} dd{margin:0}
h1,.sub,dd{overflow-wrap:anywhere}
/* Two ${W}px chart columns where they fit, else one; below ${W}px the charts scale down (docs/report.md, "HTML report"). */
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,${W}px),${W}px));gap:16px 24px}
.charts .wide{grid-column:1/-1} .pair{display:flex;flex-wrap:wrap;gap:24px}
svg{max-width:100%;height:auto}
table{display:block;max-width:100%;overflow-x:auto}
figure{margin:0} figcaption{margin-bottom:4px} figcaption span{color:#666;font-size:12px}
svg{display:block;background:#fff;overflow:visible}
svg text{font-size:11px;fill:#333} svg .label{font-size:12px;fill:#222} svg .empty{font-size:13px;fill:#888}
svg .grid{stroke:#e6e6e6} svg .axis,svg .tickmark{stroke:#555} svg .frame{fill:none;stroke:#bbb}
.note{color:#8a5a00;background:#fff6e0;padding:6px 10px;border-radius:4px;margin:4px 0}
table{border-collapse:collapse;margin:0 0 8px;font-size:13px} th,td{padding:2px 10px;border-bottom:1px solid #eee;text-align:left} .num{text-align:right;font-variant-numeric:tabular-nums}
`;

/** Records each chart's page box in `data-box` ("left,top,width,height" CSS px) for tests and tools. */
const BOX_SCRIPT = `for(const e of document.querySelectorAll('[data-chart]')){const b=e.getBoundingClientRect();e.setAttribute('data-box',[b.left+scrollX,b.top+scrollY,b.width,b.height].map(Math.round).join(','));}`;

/** The whole HTML document. Pure: everything it shows comes in through `inp`. */
export function renderHtml(inp: HtmlInputs): string {
  const r = inp.run.report;
  const notes = [
    ...(r.evaluation ? [] : ['This report has no evaluation: the accuracy chart is empty.']),
    ...(inp.references.ok ? [] : [`Reference trajectories not shown: ${inp.references.reason}.`]),
    ...(inp.heatmap.ok ? [] : [`Correlation heatmap not shown: ${inp.heatmap.reason}.`]),
  ];
  const failed = inp.gates?.filter((g) => !g.passed).length ?? 0;
  const verdict = inp.gates?.length ? (failed ? `${failed} of ${plural(inp.gates.length, 'gate')} failed` : inp.gates.length === 1 ? 'the gate passed' : `all ${inp.gates.length} gates passed`) : '';
  const charts = [
    figure('Test accuracy', 'original checkpoints vs their CMD reconstructions; the averaged model (uniform mean of the last k reconstructions) is the dashed level', accuracyChart(r)),
    figure('Reconstruction error', errorCaption(r, inp.baseline), errorChart(r, inp.baseline)),
    ...sweepFigure(r),
    figure('Mode sizes', 'share of the sampled parameters and of all assigned parameters in each mode; hover a bar for its count', modeSizesChart(r)),
    figure('Reference trajectories', 'the reference parameter of each mode over training, each min–max normalised to [0, 1] (shape, not scale, is what matters: every member of a mode is an affine copy of it)', referencesChart(inp.references)),
    figure('Correlation of sampled parameters', '|Pearson correlation| between sampled parameters, rows and columns grouped by mode (white lines are mode boundaries): modes appear as bright diagonal blocks', correlationChart(r, inp.heatmap)),
  ];
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CMD report — ${esc(path.basename(r.input.dir))}</title>
<style>${CSS}</style>
</head>
<body>
<h1>CMD report: ${esc(r.input.dir)}</h1>
<p class="sub">${esc(`${r.tool.name} ${r.tool.version} · ${r.method.variant} · ${inp.run.file}`)}${verdict ? ` · <strong>${esc(verdict)}</strong>` : ''}</p>
${facts(inp)}
${notes.map((n) => `<p class="note">${esc(n)}</p>`).join('\n')}
<div class="charts">
${charts.join('\n')}
</div>
${tables(inp)}
<script>${BOX_SCRIPT}</script>
</body>
</html>
`;
}

/** Loads everything the page shows for one run (model and heatmap relative to the report). */
export async function buildHtmlInputs(run: ReportRun, extra: { baseline?: ReportRun; gates?: readonly GateResult[] } = {}): Promise<HtmlInputs> {
  const dir = path.dirname(path.resolve(run.file));
  const [references, heatmap] = await Promise.all([loadReferences(dir, run.report), loadHeatmap(dir, run.report)]);
  return { run, ...extra, references, heatmap };
}

/** Renders `inp` and writes it to `htmlPath` via a temp file and rename. */
export async function writeHtmlFile(htmlPath: string, inp: HtmlInputs): Promise<void> {
  const html = renderHtml(inp);
  try {
    await writeFileAtomic(htmlPath, html);
  } catch (e) {
    throw new UsageError(`--html ${htmlPath}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}

/**
 * Writes the HTML report of the run whose report.json is `source` (or of the output folder
 * `source`) to `htmlPath`, atomically. Used by `cmd report --html` and `analyze/reconstruct --html`.
 */
export async function writeHtmlReport(source: string, htmlPath: string, extra: { baseline?: ReportRun; gates?: readonly GateResult[] } = {}): Promise<void> {
  await writeHtmlFile(htmlPath, await buildHtmlInputs(await loadRun(source), extra));
}
