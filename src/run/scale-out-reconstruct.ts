/**
 * `cmd reconstruct --plan OUT --shard i/n|auto` and its part of `cmd merge` (docs/scale-out.md,
 * "Reconstructions"): the chosen checkpoints and the evaluated positions of a merged post-hoc run
 * are split into n contiguous ranges; a task writes its reconstructions and measures its
 * evaluations into one folder `OUT/reconstruct-shards/<i>-of-<n>`, renamed into place only when
 * everything succeeded (a failed evaluation writes no shard). The last task also writes and
 * evaluates the averaged model and the sweep and baseline models. `cmd merge` then puts the
 * files into `OUT/reconstructed/` and the evaluation into report.json, as a plain
 * `cmd reconstruct` on the merged folder writes them.
 */
import { randomBytes } from 'node:crypto';
import { promises as fsp } from 'node:fs';
import path from 'node:path';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { CancelledError, InputError, UsageError } from '../errors.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import { openCmdModel, type CmdModel } from '../output/model-reader.ts';
import { readReport, REPORT_FILE } from '../output/report.ts';
import { RunReportSchema, type RunReport } from '../output/report-schema.ts';
import { reconstructedTensors } from '../reconstruct/checkpoint-tensors.ts';
import { writeAverageLike, writeCheckpointLike } from '../reconstruct/write-checkpoint.ts';
import type { WrittenFiles } from '../eval/evaluate-run.ts';
import { assignChunks, readPlan, type Plan } from '../scale-out/plan.ts';
import { decodeExact, encodeExact } from '../scale-out/codec.ts';
import { DEFAULTS } from './defaults.ts';
import { evalSpec, evaluationScope, measure, withEvaluation, type Measured } from './evaluate.ts';
import { resolveHooks, type RunHooks } from './hooks.ts';
import type { ReconstructRunOptions } from './options.ts';
import { fileSha256, sha256 } from './provenance.ts';
import { choosePositions } from './reconstruct.ts';

export const RECONSTRUCT_SHARDS_DIR = 'reconstruct-shards';
const SHARD_JSON = 'shard.json';
const FORMAT = 'cmd-reconstruct-shard/1';
const RECONSTRUCTED_DIR = 'reconstructed';

/** The options of a reconstruct task that decide its outputs (every task of a run must give the same). */
type Request = Pick<ReconstructRunOptions, 'checkpoints' | 'avgLast' | 'outputFormat' | 'evalData' | 'evalCmd' | 'evalEvery' | 'evalJobs' | 'evalTimeout'>;

interface ReconstructShardFile {
  format: typeof FORMAT;
  planHash: string;
  /** sha256 of the model the task reconstructed from. */
  model: string;
  /** sha256 of the request, so merge can tell tasks run with other options apart. */
  requestHash: string;
  request: Request;
  shard: number;
  of: number;
  /** Written files, relative to the shard folder (reconstructed/…), in position order. */
  written: string[];
  /** The evaluation of this shard's positions (extra metrics as entry lists). */
  measured?: Omit<Measured, 'extraMetrics'> & { extraMetrics?: { sweep: [number, unknown][]; weighted: [string, unknown][]; ema?: unknown } };
}

function requestOf(o: ReconstructRunOptions): Request {
  return { checkpoints: o.checkpoints ?? DEFAULTS.checkpoints, avgLast: o.avgLast ?? DEFAULTS.avgLast, outputFormat: o.outputFormat ?? 'same', evalData: o.evalData, evalCmd: o.evalCmd, evalEvery: o.evalEvery, evalJobs: o.evalJobs, evalTimeout: o.evalTimeout };
}

/** The merged model and report of a planned post-hoc run; an online plan or a missing merge is refused. */
async function mergedRun(plan: Plan): Promise<{ modelFile: string; report: RunReport }> {
  if (plan.body.online) throw new UsageError('reconstruct --plan splits post-hoc runs; the online model differs per checkpoint (use cmd reconstruct --online)');
  const modelFile = path.join(plan.out, MODEL_FILE);
  try {
    await fsp.access(modelFile);
  } catch {
    throw new InputError(modelFile, 'not found: run cmd merge before cmd reconstruct --plan', 'no-model');
  }
  return { modelFile, report: await readReport(path.join(plan.out, REPORT_FILE)) };
}

/** Positions [range) of `all` for shard s of n (contiguous, balanced, like the chunks). */
function part<T>(all: T[], s: number, n: number): T[] {
  const [a, b] = assignChunks(all.length, n)[s];
  return all.slice(a, b);
}

/** `cmd reconstruct --plan OUT --shard i/n|auto`: this task's reconstructions and evaluations into its shard folder. */
export async function reconstructShard(out: string, spec: string, o: ReconstructRunOptions, runHooks?: RunHooks): Promise<{ dir: string; shard: number; of: number }> {
  const hooks = resolveHooks(runHooks);
  const { resolveShard, planCheckpoints } = await import('./scale-out.ts');
  const plan = await readPlan(out);
  const n = plan.body.shards.n;
  const shard = resolveShard(spec, n);
  const { modelFile, report } = await mergedRun(plan);
  const set = await planCheckpoints(plan, 'all');
  const request = requestOf(o);
  const evaluation = evalSpec(o);
  const dir = path.join(out, RECONSTRUCT_SHARDS_DIR);
  await fsp.mkdir(dir, { recursive: true });
  const target = path.join(dir, `${shard}-of-${n}`);
  const staging = path.join(dir, `.${shard}-of-${n}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  await fsp.mkdir(staging);
  const model = await openCmdModel(modelFile);
  const sweep: { modesRequested: number; model: CmdModel }[] = [];
  try {
    const last = shard === n - 1;
    const positions = choosePositions(request.checkpoints!, model.checkpoints);
    const recDir = path.join(staging, RECONSTRUCTED_DIR);
    await fsp.mkdir(recDir, { recursive: true });
    const written: string[] = [];
    const files: WrittenFiles = { cmd: new Map() };
    const first = model.params.window.from;
    const format = request.outputFormat!;
    for (const p of part(positions, shard, n)) {
      if (hooks.signal.aborted) throw new CancelledError();
      const c = set.checkpoints[first + p];
      const file = await writeCheckpointLike(c, recDir, reconstructedTensors(set, model, c, p), format);
      files.cmd.set(p, file);
      written.push(path.relative(staging, file));
    }
    const window = set.checkpoints.slice(first, model.params.window.to);
    const k = Math.min(request.avgLast!, window.length);
    const averaged = last && k > 0 ? window.slice(window.length - k) : [];
    if (averaged.length) {
      files.avg = await writeAverageLike(averaged, recDir, format);
      written.push(path.relative(staging, files.avg));
    }
    let measured: ReconstructShardFile['measured'];
    const mine = evaluation ? part(evaluationScope(positions, model.checkpoints.length, request.evalEvery), shard, n) : [];
    if (evaluation && mine.length) {
      if (last) {
        for (const m of report.modeSweep ?? []) {
          if (m.modesRequested === report.method.modesRequested) continue;
          sweep.push({ modesRequested: m.modesRequested, model: await openCmdModel(path.join(out, m.model)) });
        }
      }
      const { extraMetrics, ...rest } = await measure(report, { set, model, positions: mine, averaged, spec: evaluation, stagingDir: staging, written, files: format === 'same' ? files : undefined }, hooks, sweep, last);
      measured = { ...rest, ...(extraMetrics ? { extraMetrics: { sweep: [...extraMetrics.sweep], weighted: [...extraMetrics.weighted], ...(extraMetrics.ema ? { ema: extraMetrics.ema } : {}) } } : {}) };
    }
    if (hooks.signal.aborted) throw new CancelledError();
    const body: ReconstructShardFile = { format: FORMAT, planHash: plan.hash, model: await fileSha256(modelFile), requestHash: sha256(encodeExact(request)), request, shard, of: n, written, ...(measured ? { measured } : {}) };
    await fsp.writeFile(path.join(staging, SHARD_JSON), encodeExact(body));
    // A rerun replaces the shard: the old folder is moved aside, the new one renamed in, the old removed.
    const old = `${staging}.old`;
    const hadOld = await fsp.rename(target, old).then(() => true, () => false);
    await fsp.rename(staging, target);
    if (hadOld) await fsp.rm(old, { recursive: true, force: true });
  } catch (e) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw e;
  } finally {
    model.close();
    for (const s of sweep) s.model.close();
  }
  hooks.log(`reconstruct shard ${shard} of ${n} → ${target}`);
  return { dir: target, shard, of: n };
}

/**
 * The merge's part for reconstruct shards, when `OUT/reconstruct-shards/` holds any: checks that
 * every shard is there, made for this plan and model with the same options, then copies their
 * files into `<staging>/reconstructed/` and returns the report with the outputs and evaluation a
 * plain `cmd reconstruct` writes. Undefined when there are no reconstruct shards.
 */
export async function gatherReconstructions(plan: Plan, staging: string, set: CheckpointSet, report: RunReport): Promise<{ report: RunReport; shards: number } | undefined> {
  const dir = path.join(plan.out, RECONSTRUCT_SHARDS_DIR);
  const names = (await fsp.readdir(dir).catch(() => [] as string[])).filter((f) => /^\d+-of-\d+$/.test(f));
  if (!names.length) return undefined;
  const n = plan.body.shards.n;
  const model = await fileSha256(path.join(staging, MODEL_FILE));
  const found = new Map<number, ReconstructShardFile>();
  const problems = new Map<number, string>();
  for (const name of names) {
    const i = Number(name.split('-')[0]);
    let body: ReconstructShardFile;
    try {
      body = decodeExact<ReconstructShardFile>(await fsp.readFile(path.join(dir, name, SHARD_JSON), 'utf8'));
    } catch {
      problems.set(i, 'unreadable');
      continue;
    }
    if (body.format !== FORMAT || body.planHash !== plan.hash || body.of !== n || body.shard !== i || body.model !== model) problems.set(i, 'foreign (another plan or model)');
    else found.set(i, body);
  }
  // The options: those of the most tasks; a task run with others is rerun.
  const votes = new Map<string, number>();
  for (const b of found.values()) votes.set(b.requestHash, (votes.get(b.requestHash) ?? 0) + 1);
  const want = [...votes.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
  const rerun: string[] = [];
  for (let i = 0; i < n; i++) {
    const b = found.get(i);
    if (b && b.requestHash === want) continue;
    rerun.push(`${i} ${b ? 'run with other options' : (problems.get(i) ?? 'missing')}`);
  }
  if (rerun.length) throw new InputError(dir, `rerun reconstruct shard${rerun.length === 1 ? '' : 's'} ${rerun.map((r) => r.split(' ')[0]).join(', ')} (${rerun.join('; ')})`, 'shards-incomplete');
  const shards = Array.from({ length: n }, (_, i) => found.get(i)!);
  const written: string[] = [];
  for (const [i, s] of shards.entries()) {
    for (const w of s.written) {
      await fsp.cp(path.join(dir, `${i}-of-${n}`, w), path.join(staging, w), { recursive: true, preserveTimestamps: true });
      written.push(w);
    }
  }
  let merged: RunReport = { ...report, outputs: { ...report.outputs, reconstructed: written } };
  const request = shards[0].request;
  const spec = evalSpec(request);
  if (spec) {
    const parts = shards.filter((s) => s.measured).map((s) => s.measured!);
    const lastPart = parts[parts.length - 1];
    if (!lastPart) throw new InputError(dir, 'the reconstruct shards hold no evaluation; rerun them', 'shards-incomplete');
    // The last part's final, average and extra metrics; every part's rows, in position order.
    const x = lastPart.extraMetrics;
    const measured = {
      ...lastPart,
      checkpoints: parts.flatMap((p) => p.checkpoints),
      extraMetrics: x ? { sweep: new Map(x.sweep), weighted: new Map(x.weighted), ...(x.ema ? { ema: x.ema } : {}) } : undefined,
    } as Measured;
    merged = await withEvaluation(merged, measured, { spec, stagingDir: staging, written, modelPath: path.join(staging, MODEL_FILE) });
  }
  return { report: RunReportSchema.parse(merged), shards: n };
}
