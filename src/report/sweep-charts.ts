/**
 * "Choosing M": the mode sweep as two charts over the same log-scaled M axis, side by side —
 * the relative reconstruction error (last checkpoint and mean over checkpoints) and the model
 * size. Two charts rather than a second y axis: each keeps its own zero and units.
 */
import { formatBytes } from './text.ts';
import type { RunReport } from '../output/report-schema.ts';
import { sweepRows } from './compare-rows.ts';
import { lineChart, seriesColour } from './svg.ts';

export const SWEEP_ERROR_CHART = 'mode-sweep-error';
export const SWEEP_SIZE_CHART = 'mode-sweep-size';

const percent = (v: number) => `${Number((v * 100).toFixed(2))}%`;

/** The two SVG charts, or undefined when the report has no mode sweep. */
export function sweepCharts(r: RunReport): { error: string; size: string } | undefined {
  const rows = sweepRows(r);
  if (!rows.length) return undefined;
  const ticks = [...new Set(rows.map((s) => s.modes))];
  const at = (y: (s: (typeof rows)[number]) => number) => rows.map((s) => ({ x: s.modes, y: y(s) }));
  const error = lineChart({
    id: SWEEP_ERROR_CHART,
    title: 'Relative reconstruction error vs number of modes M',
    xLabel: 'modes M (log scale)',
    yLabel: '‖W − Ŵ‖ / ‖W‖',
    xLog: true,
    xTicks: ticks,
    yFloor: 0,
    yFormat: percent,
    series: [
      { name: 'last checkpoint', colour: seriesColour(1), points: at((s) => s.lastError) },
      { name: 'mean over checkpoints', colour: seriesColour(0), dashed: true, points: at((s) => s.meanError) },
    ],
  });
  const size = lineChart({
    id: SWEEP_SIZE_CHART,
    title: 'Model size vs number of modes M',
    xLabel: 'modes M (log scale)',
    yLabel: 'bytes',
    xLog: true,
    xTicks: ticks,
    yFloor: 0,
    yFromZero: true,
    yFormat: formatBytes,
    series: [
      { name: 'CMD model', colour: seriesColour(2), points: at((s) => s.modelBytes) },
      // A yardstick for the sizes: what one checkpoint of the same network takes.
      { name: 'one checkpoint', colour: seriesColour(9), dashed: true, points: at(() => r.storage.oneCheckpointBytes) },
    ],
  });
  return { error, size };
}
