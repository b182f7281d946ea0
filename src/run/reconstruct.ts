/**
 * `reconstruct`: write ŵ(t) = a ⊙ r(t)[mode] + b for the chosen checkpoints (and the last-k
 * average), optionally evaluated. Reuses the model already in the output folder only when every
 * input of the decomposition is identical (provenance.ts), and says which it did and why.
 * It owns `reconstructed/`, the evaluation in report.json and its own run-info.json entry; every
 * other file of the folder stays byte-identical (docs/architecture.md, "Who owns which file").
 */
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadCheckpointSet, type CheckpointSet, type LoadOptions } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, InputError, UsageError } from '../errors.ts';
import { MODEL_FILE, SWEEP_DIR } from '../pipeline/model-file.ts';
import { openCmdModel, type CmdModel } from '../output/model-reader.ts';
import { readReport, REPORT_FILE, RUN_INFO_FILE, SAMPLES_FILE } from '../output/report.ts';
import { RunReportSchema, type RunReport } from '../output/report-schema.ts';
import { HEATMAP_FILE, writeReport } from '../output/run-outputs.ts';
import { reconstructedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeAverageLike, writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import { DEFAULTS } from './defaults.ts';
import { decompose, keyRequest } from './decompose.ts';
import { evalSpec, evaluateInto, evaluationScope, withoutEvaluation } from './evaluate.ts';
import type { WrittenFiles } from '../eval/evaluate-run.ts';
import { resolveHooks, type ResolvedHooks, type RunHooks } from './hooks.ts';
import { checkSampleFlags, loadOptionsFrom, readSamplesFile, type ReconstructRunOptions } from './options.ts';
import { decompositionKey, keyDifference, type DecompositionKey } from './provenance.ts';
import { processFacts, readRunInfo, writeRunInfo, type RunInfo } from './run-info.ts';
import { stageOutput } from './staging.ts';
import { placeScratchForRun } from '../output/run-scratch.ts';
import { pathExists } from '../io/path-exists.ts';

export interface ReconstructRun {
  out: string;
  report: RunReport;
  /** True when an existing model was used, false when the decomposition ran in this call. */
  reused: boolean;
  /** The reuse decision in words (also logged). */
  decision: string;
}

/** Files and folders the decomposition writes; `reconstruct` replaces them only when it reruns it. */
const DECOMPOSITION_FILES = [MODEL_FILE, REPORT_FILE, SAMPLES_FILE, HEATMAP_FILE, SWEEP_DIR, RUN_INFO_FILE];
const RECONSTRUCTED_DIR = 'reconstructed';


/** Why `model` does not describe the checkpoints of `set` (undefined when it does). */
export function modelMismatch(model: CmdModel, set: CheckpointSet): string | undefined {
  const tensors = set.space.tensors;
  if (model.tensors.length !== tensors.length) return `the model has ${model.tensors.length} modelled tensors, the folder ${tensors.length}`;
  for (let i = 0; i < tensors.length; i++) {
    const m = model.tensors[i];
    const t = tensors[i];
    if (m.name !== t.name || m.shape.join() !== t.shape.join() || m.dtype !== t.dtype) return `tensor ${t.name} [${t.shape}] ${t.dtype} differs from the model's ${m.name} [${m.shape}] ${m.dtype}`;
  }
  const { from, to } = model.params.window;
  const window = set.checkpoints.slice(from, to);
  if (from !== 0 || to !== set.checkpoints.length || window.length !== model.checkpoints.length) return `the model covers ${model.checkpoints.length} checkpoints, the folder has ${set.checkpoints.length} selected`;
  for (let i = 0; i < window.length; i++) {
    const m = model.checkpoints[i];
    const c = window[i];
    if (m.name !== c.name || m.step !== c.step || m.bytes !== c.bytes) return `checkpoint ${c.name} (step ${c.step}, ${c.bytes} bytes) differs from the model's ${m.name} (step ${m.step}, ${m.bytes} bytes)`;
  }
  return undefined;
}

export function choosePositions(spec: string, checkpoints: { step: number }[]): number[] {
  const T = checkpoints.length;
  if (spec === 'last') return [T - 1];
  if (spec === 'all') return checkpoints.map((_, i) => i);
  return spec.split(',').map((s) => {
    const step = Number(s.trim());
    const i = checkpoints.findIndex((c) => c.step === step);
    if (!Number.isFinite(step) || i < 0) throw new UsageError(`--checkpoints: no checkpoint with step ${s.trim()} (steps: ${checkpoints.map((c) => c.step).join(', ')})`);
    return i;
  });
}

const inside = (child: string, parent: string) => {
  const rel = path.relative(path.resolve(parent), path.resolve(child));
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/**
 * The report that describes `modelFile`: report.json beside it, or — for a model of a mode sweep
 * (`<run>/sweep/cmd-model-M<k>.safetensors`) — the run's report narrowed to that model.
 */
async function reportForModel(modelFile: string, model: CmdModel): Promise<{ report: RunReport; home: string }> {
  const beside = path.join(path.dirname(modelFile), REPORT_FILE);
  if (path.basename(modelFile) === MODEL_FILE && (await pathExists(beside))) return { report: await readReport(beside), home: path.dirname(modelFile) };
  const home = path.dirname(path.dirname(modelFile));
  const runReport = path.join(home, REPORT_FILE);
  const parent = (await pathExists(runReport)) ? await readReport(runReport) : undefined;
  const entry = parent?.modeSweep?.find((m) => path.resolve(home, m.model) === path.resolve(modelFile));
  if (!parent || !entry) throw new InputError(modelFile, `has no readable ${REPORT_FILE} beside it and is not a model of the mode sweep in ${runReport}; rerun cmd analyze`, 'missing-report');
  return { report: sweepModelReport(parent, entry, model), home };
}

/** The run report narrowed to one model of its mode sweep: its M, errors, storage and modes. */
function sweepModelReport(parent: RunReport, entry: NonNullable<RunReport['modeSweep']>[number], model: CmdModel): RunReport {
  const { modeSweep: _s, baselines: _b, provenance: _p, ...rest } = withoutEvaluation(parent);
  const counts = new Map<number, number>();
  // Mode sizes among the samples and overall are read from the model itself (one pass over `mode`).
  const assigned = new Array<number>(model.references.length).fill(0);
  const buf = new Float64Array(1 << 16);
  for (const t of model.tensors) {
    const n = t.shape.reduce((a, b) => a * b, 1);
    for (let s = 0; s < n; s += buf.length) {
      const c = Math.min(buf.length, n - s);
      model.read(t.name, 'mode', s, c, buf);
      for (let i = 0; i < c; i++) assigned[buf[i]]++;
    }
  }
  const modeOf = (g: number): number => {
    const t = model.tensors.find((x, i) => g >= x.offset && (i === model.tensors.length - 1 || g < model.tensors[i + 1].offset))!;
    const one = new Float64Array(1);
    model.read(t.name, 'mode', g - t.offset, 1, one);
    return one[0];
  };
  for (const g of model.sampleIndex) counts.set(modeOf(g), (counts.get(modeOf(g)) ?? 0) + 1);
  return RunReportSchema.parse({
    ...rest,
    method: { ...parent.method, modesRequested: entry.modesRequested, modes: entry.modes },
    modes: model.references.map(([tensor, element], m) => ({ mode: m, sampledCount: counts.get(m) ?? 0, assignedCount: assigned[m], reference: { tensor, element, index: model.referenceIndex[m] }, meanR2: 'NaN' })),
    checkpoints: entry.checkpoints,
    // Per-tensor errors are measured for the sweep's main model only.
    tensors: [],
    storage: { ...parent.storage, modelBytes: entry.modelBytes, compressionVsTrajectory: entry.compressionVsTrajectory, compressionVsFinalCheckpoint: parent.storage.oneCheckpointBytes / entry.modelBytes },
  });
}

interface Decision {
  /** The model to use; undefined: run the decomposition. */
  reuse?: string;
  why: string;
  key?: DecompositionKey;
}

/** Options the user left unset take the recorded decomposition's values (`analyze -m 5` then `reconstruct`). */
function adoptRecorded(o: ReconstructRunOptions, recorded: DecompositionKey | undefined): ReconstructRunOptions {
  if (!recorded || o.samplesFrom) return o;
  return {
    ...o,
    modes: o.modes ?? recorded.modesRequested,
    samples: o.samples ?? (recorded.samplesFile === null ? (recorded.samplesRequested ?? undefined) : undefined),
    seed: o.seed ?? (recorded.samplesFile === null ? (recorded.seed ?? undefined) : undefined),
    ...(recorded.variant === 'online' && o.warmup === undefined && o.online ? { warmup: recorded.warmup ?? undefined } : {}),
  };
}

async function decide(o: ReconstructRunOptions, out: string, set: CheckpointSet, load: LoadOptions, samplesFrom: [string, number][] | undefined): Promise<Decision> {
  if (o.model) {
    const m = await openCmdModel(o.model);
    try {
      const why = modelMismatch(m, set);
      if (why) throw new InputError(o.model, `does not match ${set.dir}: ${why}`, 'model-mismatch');
      // Its recorded inputs (when there are any) must also match the checkpoints' values now.
      const home = path.basename(path.dirname(o.model)) === SWEEP_DIR ? path.dirname(path.dirname(o.model)) : path.dirname(o.model);
      const recorded = (await readRunInfo(home).catch(() => undefined))?.decomposition?.key as DecompositionKey | undefined;
      if (recorded) {
        const now = await decompositionKey(set, { ...recorded, load: load, samplesFrom: undefined }, m.sampleIndex);
        const changed = keyDifference({ ...recorded, selection: {}, tensorTable: null }, { ...now, variant: recorded.variant, modesRequested: recorded.modesRequested, samplesRequested: recorded.samplesRequested, seed: recorded.seed, samplesFile: recorded.samplesFile, warmup: recorded.warmup, skipNonfinite: recorded.skipNonfinite, selection: {}, tensorTable: null });
        if (changed && !changed.includes('was modified after')) throw new InputError(o.model, `was fitted on other checkpoints than ${set.dir} holds now: ${changed}`, 'model-mismatch');
        return { reuse: o.model, why: `--model given; its recorded inputs match the checkpoints${changed ? ' (file times differ, contents do not)' : ''}`, key: recorded };
      }
      return { reuse: o.model, why: '--model given (no recorded inputs beside it: checked names, steps, sizes and tensors only)' };
    } finally {
      m.close();
    }
  }
  const outModel = path.join(out, MODEL_FILE);
  if (!(await pathExists(outModel))) return { why: `no model in ${out} yet` };
  const info = await readRunInfo(out).catch(() => undefined);
  const recorded = info?.decomposition?.key as DecompositionKey | undefined;
  if (!recorded) return { why: `${out} has no record of the inputs its model was computed from (run-info.json)` };
  const m = await openCmdModel(outModel);
  let want: DecompositionKey;
  try {
    const adopted = adoptRecorded(o, recorded);
    want = await decompositionKey(set, keyRequest(adopted, load, samplesFrom, set), m.sampleIndex);
  } finally {
    m.close();
  }
  const diff = keyDifference(recorded, want);
  if (diff) return { why: `the model in ${out} was computed from other inputs: ${diff}` };
  return { reuse: outModel, why: `the model in ${out} was computed from the same checkpoints (names, sizes, times, sampled values) and options`, key: recorded };
}

/** Copies every entry of `from` into `to` except the names in `skip`. */
async function carryOver(from: string, to: string, skip: string[]): Promise<void> {
  let names: string[];
  try {
    names = await fsp.readdir(from);
  } catch {
    return;
  }
  for (const n of names) {
    if (skip.includes(n) || n.startsWith('.')) continue;
    await fsp.cp(path.join(from, n), path.join(to, n), { recursive: true, preserveTimestamps: true });
  }
}

export async function reconstruct(dirArg: string | undefined, options: ReconstructRunOptions = {}, runHooks?: RunHooks): Promise<ReconstructRun> {
  const hooks = resolveHooks(runHooks);
  const started = performance.now();
  const out = options.out ?? DEFAULTS.out;
  checkSampleFlags(options);
  const spec = evalSpec(options);
  const samplesFrom = options.samplesFrom ? await readSamplesFile(options.samplesFrom) : undefined;
  const outModel = path.join(out, MODEL_FILE);
  let dir = dirArg;
  if (!dir) {
    const from = options.model ?? ((await pathExists(outModel)) ? outModel : undefined);
    if (!from) throw new UsageError(`no checkpoint folder given and no ${outModel} to take it from`);
    const m = await openCmdModel(from);
    dir = m.source.dir;
    m.close();
  }
  const load = await loadOptionsFrom(options);
  await placeScratchForRun(out, dir);
  const set = await loadCheckpointSet(dir, load);
  for (const n of set.notes) hooks.log(`note: ${n}`);
  if (options.online) return (await import('./online.ts')).reconstructOnline(set, options, load, samplesFrom, spec, hooks);

  const decision = await decide(options, out, set, load, samplesFrom);
  hooks.log(decision.reuse ? `using the existing model ${decision.reuse}: ${decision.why}` : `running the decomposition: ${decision.why}`);
  const reusedInPlace = decision.reuse !== undefined && inside(decision.reuse, out);
  if (reusedInPlace && path.resolve(decision.reuse!) !== path.resolve(outModel)) {
    throw new UsageError(`${decision.reuse} is a model of the mode sweep in ${out}, whose report describes its main model; write its reconstruction elsewhere: -o <another folder>`);
  }
  const outIsRun = await pathExists(outModel);
  const previous: RunInfo | undefined = outIsRun ? await readRunInfo(out).catch(() => undefined) : undefined;
  const staged = await stageOutput(out, Boolean(options.force) || outIsRun, set, [options.samplesFrom, options.tensorTable, options.evalData], options.html);
  try {
    let report: RunReport;
    let info: RunInfo;
    const own = [RECONSTRUCTED_DIR];
    if (decision.reuse) {
      const m = await openCmdModel(decision.reuse);
      let home: string;
      try {
        ({ report, home } = await reportForModel(decision.reuse, m));
      } finally {
        m.close();
      }
      if (reusedInPlace) {
        // Everything of the folder but what this command owns stays as it was, byte for byte.
        await carryOver(out, staged.path, own);
        info = { ...(previous ?? {}) };
      } else {
        await carryOver(out, staged.path, [...own, ...DECOMPOSITION_FILES]);
        await fsp.copyFile(decision.reuse, staged.file(MODEL_FILE));
        for (const f of [SAMPLES_FILE, HEATMAP_FILE]) if (await pathExists(path.join(home, f))) await fsp.copyFile(path.join(home, f), staged.file(f));
        if (path.basename(decision.reuse) === MODEL_FILE && (await pathExists(path.join(home, SWEEP_DIR)))) await fsp.cp(path.join(home, SWEEP_DIR), staged.file(SWEEP_DIR), { recursive: true });
        info = decision.key ? { decomposition: { command: 'analyze', key: decision.key } } : {};
      }
      if (report.evaluation && !spec) hooks.log(`note: the evaluation in the earlier report.json is not carried over (it was measured by an earlier run); add --eval-data or --eval-cmd to evaluate`);
      report = withoutEvaluation(report);
    } else {
      // The folder's other files stay; the old decomposition's files are replaced by this one's.
      await carryOver(out, staged.path, [...own, ...DECOMPOSITION_FILES]);
      const d = await decompose(set, adoptRecorded(options, undefined), load, staged.path, samplesFrom, hooks);
      report = d.report;
      info = { decomposition: { command: 'reconstruct', key: d.key } };
      info.reconstructDecomposition = d.facts;
    }
    if (hooks.signal.aborted) throw new CancelledError();
    const model = await openCmdModel(staged.file(MODEL_FILE));
    try {
      const positions = choosePositions(options.checkpoints ?? DEFAULTS.checkpoints, model.checkpoints);
      const recDir = staged.file(RECONSTRUCTED_DIR);
      await fsp.mkdir(recDir, { recursive: true });
      const written: string[] = [];
      const files: WrittenFiles = { cmd: new Map() };
      const first = model.params.window.from;
      const format = options.outputFormat ?? 'same';
      for (const p of positions) {
        if (hooks.signal.aborted) throw new CancelledError();
        const c = set.checkpoints[first + p];
        const file = await writeCheckpointLike(c, recDir, reconstructedTensors(set, model, c, p), format);
        files.cmd.set(p, file);
        written.push(path.relative(staged.path, file));
      }
      const window = set.checkpoints.slice(first, model.params.window.to);
      const k = Math.min(options.avgLast ?? DEFAULTS.avgLast, window.length);
      const averaged = k > 0 ? window.slice(window.length - k) : [];
      if (averaged.length) {
        files.avg = await writeAverageLike(averaged, recDir, format);
        written.push(path.relative(staged.path, files.avg));
      }
      report = { ...report, outputs: { ...report.outputs, reconstructed: written } };
      if (spec) {
        const sweep: { modesRequested: number; model: CmdModel }[] = [];
        try {
          for (const m of report.modeSweep ?? []) {
            if (m.modesRequested === report.method.modesRequested) continue;
            const file = staged.file(m.model);
            if (await pathExists(file)) sweep.push({ modesRequested: m.modesRequested, model: await openCmdModel(file) });
          }
          const evalPositions = evaluationScope(positions, model.checkpoints.length, options.evalEvery);
          // An eval command scores the files just written when they are in the input's format
          // (the form it was given for the originals); other formats get scratch copies.
          report = await evaluateInto(report, { set, model, positions: evalPositions, averaged, spec, stagingDir: staged.path, written, files: format === 'same' ? files : undefined }, hooks, sweep);
        } finally {
          for (const sw of sweep) sw.model.close();
        }
      }
      if (hooks.signal.aborted) throw new CancelledError();
      report = RunReportSchema.parse(report);
      await writeReport(staged.path, report);
    } finally {
      model.close();
    }
    info.reconstruct = { seconds: (performance.now() - started) / 1000, reused: Boolean(decision.reuse), decision: decision.why, ...processFacts() };
    await writeRunInfo(staged.path, info);
    if (hooks.signal.aborted) throw new CancelledError();
    await staged.commit();
    return { out, report, reused: Boolean(decision.reuse), decision: decision.why };
  } catch (e) {
    await staged.abort();
    throw e;
  }
}

export type { ResolvedHooks };
