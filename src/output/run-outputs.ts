/** The side files of a run: samples used, the |corr| heatmap, the report and timings. */
import type { Heatmap } from '../core/heatmap.ts';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { locate } from '../checkpoints/parameter-space.ts';
import { writeNpy } from '../formats/npy.ts';
import type { AnalysisResult } from '../pipeline/analyze.ts';
import { writeFileAtomic } from './atomic.ts';
import { REPORT_FILE, RUN_INFO_FILE, SAMPLES_FILE, serializeReport } from './report.ts';
import type { RunReport } from './report-schema.ts';
import path from 'node:path';

export const HEATMAP_FILE = 'sampled-corr.npy';

/** Writes samples.json (the [tensor, element] pairs used, in order: reusable with --samples-from). */
export async function writeSamples(dir: string, set: CheckpointSet, indices: Float64Array): Promise<void> {
  const pairs = Array.from(indices, (g) => {
    const l = locate(set.space, g);
    return `  ${JSON.stringify([l.tensor, l.element])}`;
  });
  await writeFileAtomic(path.join(dir, SAMPLES_FILE), `[\n${pairs.join(',\n')}\n]\n`);
}

export async function writeHeatmap(dir: string, result: { heatmap: Heatmap }): Promise<void> {
  const h = result.heatmap;
  await writeNpy(path.join(dir, HEATMAP_FILE), { name: 'sampled_corr', dtype: 'F32', shape: [h.size, h.size], data: new Uint8Array(h.values.buffer, h.values.byteOffset, h.values.byteLength) });
}

export async function writeReport(dir: string, report: RunReport): Promise<void> {
  await writeFileAtomic(path.join(dir, REPORT_FILE), serializeReport(report));
}

/** Timings and machine facts: kept apart from the report so the report is reproducible byte for byte. */
export async function writeRunInfo(dir: string, info: { seconds: number; result?: Pick<AnalysisResult, 'timings' | 'workers' | 'bytesRead'>; checkpointBytes: number; extra?: Record<string, unknown> }): Promise<void> {
  const body = {
    seconds: info.seconds,
    stageMilliseconds: info.result?.timings,
    workers: info.result?.workers,
    bytesRead: info.result?.bytesRead,
    checkpointBytes: info.checkpointBytes,
    gbPerSecond: info.checkpointBytes / 1e9 / info.seconds,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    node: process.version,
    ...info.extra,
  };
  await writeFileAtomic(path.join(dir, RUN_INFO_FILE), `${JSON.stringify(body, null, 2)}\n`);
}
