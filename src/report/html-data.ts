/**
 * The files the HTML charts need besides report.json, found relative to the report's folder:
 * the model's reference trajectories and the |corr| heatmap. A missing or unreadable file is
 * not fatal: the chart says why it is absent and the rest of the report renders.
 */
import { access, open } from 'node:fs/promises';
import { InputError } from '../errors.ts';
import path from 'node:path';
import { decodeInto } from '../formats/dtype.ts';
import { readNpyHeader } from '../formats/npy.ts';
import { openCmdModel } from '../output/model-reader.ts';
import type { RunReport } from '../output/report-schema.ts';

export type Loaded<T> = { ok: true; value: T } | { ok: false; reason: string };

export interface References {
  /** One trajectory per mode, T values each. */
  trajectories: Float64Array[];
  /** The x value of each of the T columns (checkpoint steps when they line up with the report). */
  steps: number[];
}

export interface HeatmapData {
  size: number;
  values: Float32Array;
}

/** Why `name` could not be used, in one line naming it (InputErrors already name their file). */
function reason(name: string, e: unknown): string {
  if (e instanceof InputError) return e.message;
  const err = e as NodeJS.ErrnoException;
  return `${name}: ${err.code === 'ENOENT' ? 'file not found' : (err.message ?? String(e)).split('\n')[0]}`;
}

/** The readers turn ENOENT into a long InputError; a missing side file deserves a short note. */
async function missing(file: string): Promise<boolean> {
  return access(file).then(
    () => false,
    () => true,
  );
}

/** Reads the M' × T reference trajectories out of the report's cmd-model.safetensors. */
export async function loadReferences(reportDir: string, report: RunReport): Promise<Loaded<References>> {
  const file = path.resolve(reportDir, report.outputs.model);
  if (await missing(file)) return { ok: false, reason: `${report.outputs.model}: file not found` };
  try {
    const model = await openCmdModel(file);
    try {
      const modes = report.modes.length;
      const T = modes > 0 ? model.refs.length / modes : 0;
      if (!Number.isInteger(T) || T < 1) return { ok: false, reason: `${file}: ${model.refs.length} reference values do not split into ${modes} modes` };
      const trajectories = Array.from({ length: modes }, (_, m) => Float64Array.from(model.refs.subarray(m * T, (m + 1) * T)));
      const steps = report.checkpoints.length === T ? report.checkpoints.map((c) => c.step) : Array.from({ length: T }, (_, t) => t);
      return { ok: true, value: { trajectories, steps } };
    } finally {
      model.close();
    }
  } catch (e) {
    return { ok: false, reason: reason(report.outputs.model, e) };
  }
}

/** Reads the square float |corr| matrix by a positioned read of its data bytes. */
export async function loadHeatmap(reportDir: string, report: RunReport): Promise<Loaded<HeatmapData>> {
  const name = report.outputs.correlationHeatmap;
  if (!name) return { ok: false, reason: 'the report names no correlation heatmap file' };
  const file = path.resolve(reportDir, name);
  if (await missing(file)) return { ok: false, reason: `${name}: file not found` };
  try {
    const h = await readNpyHeader(file);
    const [rows, cols] = h.shape;
    if (h.shape.length !== 2 || rows !== cols || rows < 1 || h.fortranOrder || (h.descr.dtype !== 'F32' && h.descr.dtype !== 'F64')) {
      return { ok: false, reason: `${name}: expected a square float matrix, found shape [${h.shape.join(', ')}] ${h.descr.dtype}` };
    }
    const fh = await open(file, 'r');
    try {
      const bytes = new Uint8Array(h.dataBytes);
      const { bytesRead } = await fh.read(bytes, 0, h.dataBytes, h.dataOffset);
      if (bytesRead !== h.dataBytes) return { ok: false, reason: `${name}: truncated (${bytesRead} of ${h.dataBytes} data bytes)` };
      const values = new Float32Array(rows * cols);
      decodeInto(h.descr.dtype, bytes, rows * cols, values, 0, !h.descr.bigEndian);
      return { ok: true, value: { size: rows, values } };
    } finally {
      await fh.close();
    }
  } catch (e) {
    return { ok: false, reason: reason(name, e) };
  }
}
