/**
 * A post-hoc run split over processes or scheduler tasks (docs/scale-out.md): `planRun` does
 * pass 1 and the clustering once and writes `<out>/plan/`; `runShard` fits one shard's chunks
 * into `<out>/shards/<i>-of-<n>`; `mergeRun` folds the shards' chunk results in chunk order
 * with the in-process run's merge code and streams their a, b, mode into the model file, so
 * the outputs are analyze's, byte for byte. What only the plan or the merge needs (run-info and
 * its schema library) is imported where used: every shard task pays for what it loads.
 */
import { randomBytes } from 'node:crypto';
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadCheckpointSet, type CheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { activeKernel, setKernel } from '../core/kernel-choice.ts';
import { CancelledError, InputError, RuntimeError, UsageError } from '../errors.ts';
import { ChunkTotals, baselineTaskOf, createModelFiles, decompose as decomposePassOne, fitChunks, passTwoChunks, type AnalyzeOptions } from '../pipeline/analyze.ts';
import { chunkElements, planChunks } from '../pipeline/chunks.ts';
import type { Decomposition } from '../pipeline/analyze.ts';
import type { OnlinePass } from '../online/engine.ts';
import type { TaskResult as OnlineChunkResult } from '../online/online-tasks.ts';
import { MODEL_FILE, modeDtypeFor, syncFile } from '../pipeline/model-file.ts';
import { createPool, defaultWorkerCount, inlinePool, type WorkerPool } from '../pipeline/pool.ts';
import type { FitResult, PoolData, TensorSlots } from '../pipeline/worker.ts';
import { planTrajectory } from '../trajectory/plan-trajectory.ts';
import { placeScratchForRun } from '../output/run-scratch.ts';
import { DEFAULTS } from './defaults.ts';
import { finish as writeReportWithProvenance, keyRequest, knownValueHashes, postHocOptions, reportSampling, writePostHocOutputs } from './decompose.ts';
import { resolveHooks, type RunHooks } from './hooks.ts';
import { checkSampleFlags, loadOptionsFrom, readSamplesFile, type AnalyzeRunOptions } from './options.ts';
import { decompositionKey, sampledValueHashes, type DecompositionKey } from './provenance.ts';
import type { RunReport } from '../output/report-schema.ts';
import { assignChunks, decompositionOf, newPlanBody, PLAN_DIR, PLAN_FILE, planDecomposition, planText, readPlan, SHARDS_DIR, samplesWithin, shardParameters, type Plan, type PlannedKey, type PlannedOptions } from '../scale-out/plan.ts';
import { abandonShard, commitShard, COPY_BLOCK, listDrafts, removeDeadDrafts, DAMAGED, decodeShardResults, openShard, readShard, shardHeader, shardName, shardSlots, startShard, verifyShard, type ShardDraft, type ShardFile, type ShardHeader } from '../scale-out/shard-file.ts';
import { writeFullySync } from '../io/atomic-file.ts';
import { pathExists } from '../io/path-exists.ts';
import { windowValueHashes } from '../trajectory/sampled-values.ts';

/** The test hook of docs/scale-out.md: a shard task SIGKILLs itself after this many fitted chunks. */
export const KILL_AFTER_CHUNKS_ENV = 'CMD_TEST_KILL_AFTER_CHUNKS';

/** The embedded-CMD simulation picks parameters over all N at each step: no shard sees them all. */
export function refuseEmbedSplit(o: Pick<AnalyzeRunOptions, 'embedWindow' | 'embedPerc' | 'embedRelative'>, how: string): void {
  if (o.embedWindow !== undefined || o.embedPerc !== undefined || o.embedRelative) {
    throw new UsageError(`--embed-* selects parameters globally at each step and cannot be split over shards (${how})`);
  }
}

function poolFor(set: CheckpointSet, workers: number | undefined, signal: AbortSignal): WorkerPool {
  const float64 = set.space.tensors.some((t) => t.dtype === 'F64');
  return createPool({ plan: planTrajectory(set), float64 } satisfies PoolData, Math.max(1, workers ?? defaultWorkerCount()), signal);
}


/** A shard task's pool: with one thread the fit runs inline, sparing a worker's start-up (same kernels, same bytes). */
async function shardPool(set: CheckpointSet, workers: number | undefined, signal: AbortSignal): Promise<WorkerPool> {
  if (Math.max(1, workers ?? defaultWorkerCount()) > 1) return poolFor(set, workers, signal);
  const { inlineTasks } = await import('../pipeline/worker.ts');
  return inlinePool(inlineTasks({ plan: planTrajectory(set), float64: set.space.tensors.some((t) => t.dtype === 'F64') }), signal);
}

/**
 * The hashes a shard task checks (the sampled values inside its parameter range `p`, per
 * checkpoint): from pass 1's values when it read every checkpoint (a post-hoc plan), else read.
 */
function shardSampleHashes(set: CheckpointSet, d: Pick<Decomposition, 'indices' | 'K' | 'sampleValues'>, p: [number, number]): string[] {
  const T = set.checkpoints.length;
  if (!d.sampleValues || d.sampleValues.length !== d.K * T) return sampledValueHashes(set, samplesWithin(d.indices, p));
  const rows: number[] = [];
  for (let j = 0; j < d.K; j++) if (d.indices[j] >= p[0] && d.indices[j] < p[1]) rows.push(j);
  return windowValueHashes(d.sampleValues, d.K, T, rows);
}

/** `cmd analyze <dir> -o OUT --plan-only --shards n`: pass 1 and the clustering, once, into OUT/plan/. */
export async function planRun(dir: string, o: AnalyzeRunOptions & { shards: number }, runHooks?: RunHooks): Promise<Plan> {
  const hooks = resolveHooks(runHooks);
  refuseEmbedSplit(o, '--plan-only');
  if (!Number.isInteger(o.shards) || o.shards < 1) throw new UsageError(`--shards must be a positive integer, got ${o.shards}`);
  const out = o.out ?? DEFAULTS.out;
  checkSampleFlags(o);
  const samplesFrom = o.samplesFrom ? await readSamplesFile(o.samplesFrom) : undefined;
  const load = await loadOptionsFrom(o);
  await placeScratchForRun(out, dir);
  const set = await loadCheckpointSet(dir, load);
  for (const n of set.notes) hooks.log(`note: ${n}`);
  const planDir = path.join(out, PLAN_DIR);
  if (await pathExists(planDir)) {
    if (!o.force) throw new UsageError(`${planDir} exists; use --force to plan again (its shards are then removed)`);
  }
  const options = postHocOptions(set, o, samplesFrom, hooks);
  const T = set.checkpoints.length;
  let chunkSize = o.chunkSize ?? chunkElements(T);
  let d: Pick<Decomposition, 'indices' | 'sampling' | 'K' | 'clusterings' | 'heatmap' | 'bytesRead' | 'windowValueHashes' | 'sampleValues'>;
  let chunkCounts: number[];
  let online: OnlinePass | undefined;
  let warmup: number | undefined;
  if (o.online) {
    // The warm-up decomposition and every later checkpoint's reference sums are the plan.
    if (o.skipNonfinite) throw new UsageError('--skip-nonfinite is not supported with --online');
    if (o.sweepModes?.length) throw new UsageError('--online fits one mode count; a --modes list (sweep) is post-hoc only');
    const { onlineOptions, resolveWarmup, newCheckpoint } = await import('../online/run-online.ts');
    const { OnlineEngine } = await import('../online/engine.ts');
    warmup = resolveWarmup(o.warmup, T);
    const rest = set.checkpoints.slice(warmup + 1).map((c) => newCheckpoint(set, c));
    const pass = await OnlineEngine.warmUp(set, { ...onlineOptions(o, warmup, samplesFrom, set.space.total), signal: hooks.signal, progress: hooks.progress, onNote: hooks.warn }, Math.max(1, o.workers ?? defaultWorkerCount()), rest);
    // Timings vary from run to run; the plan holds only what decides the result.
    online = { ...pass, warm: { ...pass.warm, timings: {} } };
    chunkSize = pass.meta.chunkSize;
    chunkCounts = planChunks(pass.meta.tensors, chunkSize).map((c) => c.count);
    d = { indices: pass.warm.sampleIndices, sampling: pass.warm.sampling, K: pass.meta.K, clusterings: [], heatmap: pass.warm.heatmap, bytesRead: pass.warm.bytesRead };
  } else {
    const pool = poolFor(set, o.workers, hooks.signal);
    try {
      d = await decomposePassOne(set, options, pool);
    } finally {
      await pool.destroy();
    }
    chunkCounts = passTwoChunks(set, { ...options, chunkSize }).map((c) => c.count);
  }
  const chunks = chunkCounts.length;
  const ranges = assignChunks(chunks, o.shards);
  const parameters = shardParameters(chunkCounts, ranges);
  const key = await decompositionKey(set, keyRequest(o, load, samplesFrom, set, warmup), Array.from(d.indices), knownValueHashes({ window: options.window, windowValueHashes: d.windowValueHashes }));
  const { signal: _s, progress: _p, onNote: _n, workers: _w, ...planned } = options;
  const body = newPlanBody({
    kernel: activeKernel(),
    dir: set.dir,
    load,
    options: { ...planned, chunkSize } satisfies PlannedOptions,
    report: reportSampling(o, samplesFrom),
    key: key as unknown as PlannedKey,
    chunks,
    shards: { n: o.shards, ranges, parameters },
    // Each task checks the sampled values its own output depends on; all shards together check every one.
    sampleChecks: parameters.map((p) => shardSampleHashes(set, d, p)),
    decomposition: planDecomposition(d),
    ...(online ? { online } : {}),
  });
  const text = planText(body);
  await fsp.mkdir(out, { recursive: true });
  // The plan folder appears whole: written beside, then renamed into place.
  const staging = path.join(out, `.plan.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fsp.mkdir(staging);
  try {
    const { writeFileAtomic } = await import('../io/atomic-file.ts');
    await writeFileAtomic(path.join(staging, PLAN_FILE), text);
    if (o.force) {
      await fsp.rm(planDir, { recursive: true, force: true });
      await fsp.rm(path.join(out, SHARDS_DIR), { recursive: true, force: true });
      await fsp.rm(path.join(out, 'reconstruct-shards'), { recursive: true, force: true });
    }
    await fsp.rename(staging, planDir);
  } catch (e) {
    await fsp.rm(staging, { recursive: true, force: true });
    throw e;
  }
  hooks.log(`plan: ${chunks} chunk${chunks === 1 ? '' : 's'} over ${o.shards} shard${o.shards === 1 ? '' : 's'} in ${planDir}`);
  return readPlan(out);
}

/** The shard index of `--shard i/n` or `--shard auto` (index from the scheduler; n always from the plan). */
export function resolveShard(spec: string, n: number, env: NodeJS.ProcessEnv = process.env): number {
  let i: number;
  if (spec === 'auto') {
    const name = env.SLURM_ARRAY_TASK_ID !== undefined ? 'SLURM_ARRAY_TASK_ID' : env.JOB_COMPLETION_INDEX !== undefined ? 'JOB_COMPLETION_INDEX' : undefined;
    if (!name) throw new UsageError('--shard auto: neither SLURM_ARRAY_TASK_ID nor JOB_COMPLETION_INDEX is set');
    const v = env[name]!.trim();
    if (!/^\d+$/.test(v)) throw new UsageError(`--shard auto: ${name}=${JSON.stringify(env[name])} is not a shard index`);
    i = Number(v);
    if (i >= n) throw new UsageError(`--shard auto: ${name}=${i} but the plan has ${n} shards (0..${n - 1})`);
    return i;
  }
  const m = /^(\d+)\/(\d+)$/.exec(spec.trim());
  if (!m) throw new UsageError(`--shard takes i/n or auto, got ${JSON.stringify(spec)}`);
  i = Number(m[1]);
  if (Number(m[2]) !== n) throw new UsageError(`--shard ${spec}: the plan has ${n} shards, not ${m[2]}`);
  if (i >= n) throw new UsageError(`--shard ${spec}: index ${i} is not below ${n}`);
  return i;
}

/**
 * Which sampled values a command re-reads to check the checkpoints against the plan (names,
 * sizes and mtimes are always checked): a shard task those inside its parameter range, which
 * are all its output depends on; `all` every one (a reconstruct task reads whole checkpoints);
 * `none` for the merge, whose output depends only on the plan and the shards that checked them.
 */
export type SampleCheck = { shard: number } | 'all' | 'none';

/** Loads the planned checkpoints and refuses any that changed since planning, naming the file. */
export async function planCheckpoints(plan: Plan, check: SampleCheck): Promise<CheckpointSet> {
  const { body } = plan;
  if (body.kernel === 'js') setKernel('js');
  else if (activeKernel() !== body.kernel) throw new RuntimeError(`${path.join(plan.out, PLAN_DIR, PLAN_FILE)}: planned with the ${body.kernel} kernels, which this engine cannot run`);
  await placeScratchForRun(plan.out, body.dir);
  const set = await loadCheckpointSet(body.dir, body.load);
  checkUnchanged(set, body, check);
  return set;
}

function checkUnchanged(set: CheckpointSet, body: Plan['body'], check: SampleCheck): void {
  const planned = body.key.checkpoints;
  for (let i = 0; i < Math.max(planned.length, set.checkpoints.length); i++) {
    const c = set.checkpoints[i];
    const p = planned[i];
    if (!c) throw new InputError(path.join(set.dir, p.name), 'planned checkpoint is gone; plan again', 'changed-since-plan');
    if (!p) throw new InputError(c.path, 'checkpoint appeared after planning; plan again', 'changed-since-plan');
    if (c.name !== p.name) throw new InputError(c.path, `checkpoint ${i} was ${p.name} when planned; plan again`, 'changed-since-plan');
    if (c.bytes !== p.bytes) throw new InputError(c.path, `has ${c.bytes} bytes, ${p.bytes} when planned; plan again`, 'changed-since-plan');
  }
  const indices = body.decomposition.indices;
  let hashes: string[] | undefined;
  let wanted: string[] | undefined;
  if (check === 'all') {
    hashes = sampledValueHashes(set, Array.from(indices));
    wanted = planned.map((p) => p.sampledValues);
  } else if (check !== 'none') {
    hashes = sampledValueHashes(set, samplesWithin(indices, body.shards.parameters[check.shard]));
    wanted = body.sampleChecks[check.shard];
  }
  // mtimes: a file touched after planning might hold other values anywhere, not only at the samples.
  for (const [i, c] of set.checkpoints.entries()) {
    if (hashes && hashes[i] !== wanted![i]) throw new InputError(c.path, 'holds other values than when planned; plan again', 'changed-since-plan');
    const files = c.contents.files?.length ? c.contents.files : [c.entry];
    const mtime = Math.max(...files.map((f) => fs.statSync(f).mtimeMs));
    if (mtime !== planned[i].mtimeMs) throw new InputError(c.path, 'was modified after planning; plan again', 'changed-since-plan');
  }
}

/** `cmd analyze --plan OUT --shard i/n|auto`: fits one shard's chunks into OUT/shards/<i>-of-<n>. */
export async function runShard(out: string, spec: string, o: { workers?: number }, runHooks?: RunHooks): Promise<{ file: string; shard: number; of: number }> {
  const hooks = resolveHooks(runHooks);
  const plan = await readPlan(out);
  const n = plan.body.shards.n;
  const shard = resolveShard(spec, n);
  const set = await planCheckpoints(plan, { shard });
  if (plan.body.online) return runOnlineShard(plan, set, shard, o, hooks);
  const options: AnalyzeOptions = plan.body.options;
  const chunks = passTwoChunks(set, options);
  if (chunks.length !== plan.body.chunks) throw new InputError(path.join(out, PLAN_DIR, PLAN_FILE), `plans ${plan.body.chunks} chunks, the checkpoints give ${chunks.length}`, 'changed-since-plan');
  const d = decompositionOf(plan.body);
  const range = plan.body.shards.ranges[shard];
  const modeBytes = d.clusterings.map((c) => (modeDtypeFor(c.M, options.skipNonFinite) === 'U8' ? 1 : 2) as 1 | 2);
  const header = shardHeader(plan.hash, shard, n, chunks, range, modeBytes);
  const pool = await shardPool(set, o.workers, hooks.signal);
  return writeShard(out, header, range, hooks, () => pool.destroy(), async (draft, onChunk) => {
    const models = d.clusterings.map((c, k) => ({ stats: c.stats, modelPath: draft.temp, modeBytes: modeBytes[k], slots: shardSlots(header, k, draft.payloadStart, set.space.tensors) }));
    const progress = hooks.progress;
    progress?.start('fit', chunks.slice(range[0], range[1]).reduce((s, c) => s + c.count, 0));
    const results = await fitChunks(pool, set, { ...options, progress, signal: hooks.signal }, chunks, { c0: range[0], c1: range[1] }, models, onChunk);
    progress?.stop();
    return results;
  });
}

/**
 * Writes shard `header.shard` of the plan in `out` to `shards/<i>-of-<n>`: `fit` fills a private
 * draft, which is renamed into place only when it succeeded (a failure or a kill leaves no shard,
 * docs/scale-out.md "Reruns and concurrency"); `close` releases the workers either way.
 */
async function writeShard(
  out: string,
  header: ShardHeader,
  range: [number, number],
  hooks: ReturnType<typeof resolveHooks>,
  close: () => Promise<void>,
  fit: (draft: ShardDraft, onChunk: () => void) => Promise<readonly FitResult[] | readonly OnlineChunkResult[]>,
): Promise<{ file: string; shard: number; of: number }> {
  const { shard, of: n } = header;
  const shardsDir = path.join(out, SHARDS_DIR);
  await fsp.mkdir(shardsDir, { recursive: true });
  const target = path.join(shardsDir, shardName(shard, n));
  const removed = await removeDeadDrafts(shardsDir, shardName(shard, n));
  if (removed.length) hooks.log(`note: removed ${removed.length === 1 ? 'the draft' : `${removed.length} drafts`} of shard ${shard} left by a task that no longer runs (${removed.join(', ')})`);
  let draft: ShardDraft | undefined;
  try {
    draft = await startShard(target, header);
    await commitShard(draft, await fit(draft, killHook()));
  } catch (e) {
    if (draft) await abandonShard(draft);
    throw e;
  } finally {
    hooks.progress?.stop();
    await close();
  }
  hooks.log(shardLine(shard, n, range, target));
  return { file: target, shard, of: n };
}

/** The shard of an `--online` plan: the online chunk tasks on its chunks, into its shard file. */
async function runOnlineShard(plan: Plan, set: CheckpointSet, shard: number, o: { workers?: number }, hooks: ReturnType<typeof resolveHooks>): Promise<{ file: string; shard: number; of: number }> {
  const pass = plan.body.online!;
  const n = plan.body.shards.n;
  const { OnlineEngine } = await import('../online/engine.ts');
  const chunks = planChunks(pass.meta.tensors, pass.meta.chunkSize);
  if (chunks.length !== plan.body.chunks) throw new InputError(path.join(plan.out, PLAN_DIR, PLAN_FILE), `plans ${plan.body.chunks} chunks, the checkpoints give ${chunks.length}`, 'changed-since-plan');
  const range = plan.body.shards.ranges[shard];
  const header = shardHeader(plan.hash, shard, n, chunks, range, [pass.meta.modeBytes]);
  const engine = OnlineEngine.fromPass(set, pass, o.workers ?? defaultWorkerCount(), hooks.signal);
  return writeShard(plan.out, header, range, hooks, () => engine.close(), (draft, onChunk) => {
    const modelOut = { path: draft.temp, slots: shardSlots(header, 0, draft.payloadStart, set.space.tensors) };
    return engine.passChunks(pass, range[0], range[1], modelOut, (p) => set.checkpoints[p], hooks.progress, onChunk);
  });
}

/** The test hook (docs/scale-out.md): counts fitted chunks and SIGKILLs this process after the k-th. */
function killHook(): () => void {
  const k = Number(process.env[KILL_AFTER_CHUNKS_ENV] ?? 0);
  let fitted = 0;
  return () => {
    fitted++;
    if (k > 0 && fitted === k) process.kill(process.pid, 'SIGKILL');
  };
}

function shardLine(shard: number, n: number, range: [number, number], target: string): string {
  return `shard ${shard} of ${n}: ${range[1] > range[0] ? `chunks ${range[0]}..${range[1] - 1}` : 'no chunks (the plan has fewer chunks than shards)'} → ${target}`;
}

const SHARD_NAME = /^(\d+)-of-(\d+)$/;

/**
 * Every shard of the plan, its framing checked (the checksums are checked as the merge reads
 * them, `readShards`); or an InputError listing the shards to rerun and why — then every
 * framed shard is hashed first, so the one line names the damaged ones too.
 */
async function gatherShards(plan: Plan): Promise<ShardFile[]> {
  const dir = path.join(plan.out, SHARDS_DIR);
  const n = plan.body.shards.n;
  let names: string[] = [];
  try {
    names = await fsp.readdir(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new InputError(dir, `cannot read (${(e as NodeJS.ErrnoException).code})`, 'unreadable');
  }
  const byIndex = new Map<number, ShardFile[]>();
  const bad = new Map<number, string>();
  const framed: { nameIndex: number; nameOf: number; shard: ShardFile }[] = [];
  for (const name of names.sort()) {
    const m = SHARD_NAME.exec(name);
    if (!m) continue;
    const nameIndex = Number(m[1]);
    const file = path.join(dir, name);
    const opened = await openShard(file);
    if ('problem' in opened) {
      if (Number(m[2]) === n && nameIndex < n) bad.set(nameIndex, `half-written: ${opened.problem}`);
      continue;
    }
    framed.push({ nameIndex, nameOf: Number(m[2]), shard: opened });
  }
  const sort = (verify: boolean) => {
    byIndex.clear();
    const buf = verify ? Buffer.allocUnsafe(COPY_BLOCK) : undefined;
    for (const { nameIndex, nameOf, shard: s } of framed) {
      const damaged = buf && verifyShard(s, buf);
      if (damaged) {
        if (nameOf === n && nameIndex < n) bad.set(nameIndex, `half-written: ${damaged}`);
        continue;
      }
      const h = s.header;
      if (h.planHash !== plan.hash || h.of !== n) {
        if (nameIndex < n) bad.set(nameIndex, 'foreign (another plan)');
        continue;
      }
      byIndex.set(h.shard, [...(byIndex.get(h.shard) ?? []), s]);
    }
    return shardProblems(n, byIndex, bad);
  };
  if (sort(false).rerun.length) {
    const { rerun, problems } = sort(true);
    throw new InputError(dir, `rerun shard${rerun.length === 1 ? '' : 's'} ${rerun.join(', ')} (${problems.join('; ')})`, 'shards-incomplete');
  }
  return Array.from({ length: n }, (_, i) => byIndex.get(i)![0]);
}

/** The shards to rerun and why, given the well-formed shards found for each index and the bad ones. */
function shardProblems(n: number, byIndex: Map<number, ShardFile[]>, bad: Map<number, string>): { rerun: number[]; problems: string[] } {
  const problems: string[] = [];
  const rerun: number[] = [];
  for (let i = 0; i < n; i++) {
    const found = byIndex.get(i) ?? [];
    if (found.length > 1) problems.push(`${i} duplicate (${found.map((f) => path.basename(f.file)).join(', ')})`);
    else if (found.length === 1 && path.basename(found[0].file) !== shardName(i, n)) problems.push(`${i} duplicate (${path.basename(found[0].file)} holds it)`);
    else if (found.length === 1) continue;
    else problems.push(`${i} ${bad.get(i) ?? 'missing'}`);
    rerun.push(i);
  }
  return { rerun, problems };
}

/** The products `cmd merge` writes into the output folder (what a plain analyze writes). */
async function moveProducts(staging: string, out: string): Promise<void> {
  for (const name of await fsp.readdir(staging)) {
    const to = path.join(out, name);
    if ((await fsp.lstat(path.join(staging, name))).isDirectory()) await fsp.rm(to, { recursive: true, force: true });
    await fsp.rename(path.join(staging, name), to);
  }
}

/**
 * Reads the shards once each, in order, writing their a, b and mode bytes into the model files
 * (one per model) by position straight from the read buffer, and returns their accumulators in
 * chunk order (shards are contiguous chunk ranges). A shard whose checksum fails is named with
 * every other failing one in one InputError after all were read; the caller writes into a staging
 * folder, so nothing stays behind.
 */
function readShards<R>(plan: Plan, shards: ShardFile[], fds: number[], slotsOf: TensorSlots[][], signal: AbortSignal, onResult: (r: R) => void): void {
  const buf = Buffer.allocUnsafe(COPY_BLOCK);
  const damaged: number[] = [];
  for (const [i, s] of shards.entries()) {
    if (signal.aborted) throw new CancelledError();
    const segments = payloadSegments(s, fds, slotsOf);
    let next = 0;
    const { ok, accumulators } = readShard(s, buf, (bytes, offset) => {
      // Segments tile the payload in order; a block may end inside one and start the next.
      const end = offset + bytes.length;
      while (next < segments.length && segments[next].from + segments[next].length <= offset) next++;
      for (let q = next; q < segments.length && segments[q].from < end; q++) {
        const g = segments[q];
        const a = Math.max(offset, g.from);
        const b = Math.min(end, g.from + g.length);
        writeFullySync(g.fd, bytes.subarray(a - offset, b - offset), g.to + (a - g.from));
      }
    });
    if (!ok) damaged.push(i);
    // One shard's accumulators at a time (bounded memory); after a damaged shard only the checksums matter.
    else if (!damaged.length) for (const r of decodeShardResults<R>(accumulators)) onResult(r);
  }
  if (signal.aborted) throw new CancelledError();
  if (damaged.length) {
    const n = plan.body.shards.n;
    throw new InputError(path.join(plan.out, SHARDS_DIR), `rerun shard${damaged.length === 1 ? '' : 's'} ${damaged.join(', ')} (${damaged.map((i) => `${i} half-written: ${DAMAGED}`).join('; ')})`, 'shards-incomplete');
  }
}

/** Where a shard's payload goes: its a, b and mode runs, in payload order, each with its model file position. */
function payloadSegments(s: ShardFile, fds: number[], slotsOf: TensorSlots[][]): { from: number; length: number; fd: number; to: number }[] {
  const out: { from: number; length: number; fd: number; to: number }[] = [];
  s.header.models.forEach((m, k) => {
    const slots = slotsOf[k];
    for (const r of m.regions) {
      out.push({ from: r.a, length: 4 * r.count, fd: fds[k], to: slots[r.tensor].a + 4 * r.start });
      out.push({ from: r.b, length: 4 * r.count, fd: fds[k], to: slots[r.tensor].b + 4 * r.start });
      out.push({ from: r.mode, length: m.modeBytes * r.count, fd: fds[k], to: slots[r.tensor].mode + m.modeBytes * r.start });
    }
  });
  return out.filter((g) => g.length > 0).sort((x, y) => x.from - y.from);
}

/** The merge of an `--online` plan: what a plain `cmd analyze --online` writes, byte for byte. */
async function mergeOnline(plan: Plan, set: CheckpointSet, shards: ShardFile[], hooks: ReturnType<typeof resolveHooks>, started: number): Promise<{ report: RunReport; out: string }> {
  const out = plan.out;
  const pass = plan.body.online!;
  const { OnlineEngine } = await import('../online/engine.ts');
  const { writeHeatmap, writeSamples } = await import('../output/run-outputs.ts');
  const staging = path.join(out, `.merge.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fsp.mkdir(staging);
  // One thread, inline: the merge runs no chunk task.
  const engine = OnlineEngine.fromPass(set, pass, 1, hooks.signal);
  try {
    const modelFile = path.join(staging, MODEL_FILE);
    const model = await engine.preparePassModel(pass, modelFile);
    const fd = fs.openSync(modelFile, 'r+');
    const results: OnlineChunkResult[] = [];
    try {
      readShards<OnlineChunkResult>(plan, shards, [fd], [model.slots], hooks.signal, (r) => results.push(r));
    } finally {
      fs.closeSync(fd);
    }
    if (results.length !== plan.body.chunks) throw new InputError(path.join(out, SHARDS_DIR), `the shards hold ${results.length} chunks, the plan ${plan.body.chunks}`, 'shards-incomplete');
    await engine.finishPass(pass, results, modelFile);
    const built = await engine.buildReport();
    await writeSamples(staging, set, pass.warm.sampleIndices);
    await writeHeatmap(staging, pass.warm);
    const key = plan.body.key as unknown as DecompositionKey;
    const report = await writeReportWithProvenance(staging, built, key);
    const seconds = (performance.now() - started) / 1000;
    const { processFacts, writeRunInfo } = await import('./run-info.ts');
    await writeRunInfo(staging, {
      decomposition: { command: 'analyze', key },
      analyze: { seconds, mode: 'sharded', variant: 'online', warmup: pass.meta.warmup, shards: plan.body.shards.n, plan: plan.hash, bytesRead: engine.commit.bytesRead, checkpointBytes: report.storage.checkpointsBytes, ...processFacts() },
    });
    await moveProducts(staging, out);
    return { report, out };
  } finally {
    await engine.close();
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

/** `cmd merge OUT`: the shards into analyze's outputs, byte-identical to a one-process run. */
export async function mergeRun(out: string, runHooks?: RunHooks): Promise<{ report: RunReport; out: string }> {
  const hooks = resolveHooks(runHooks);
  const started = performance.now();
  const plan = await readPlan(out);
  const shards = await gatherShards(plan);
  const set = await planCheckpoints(plan, 'none');
  const merged = plan.body.online ? await mergeOnline(plan, set, shards, hooks, started) : await mergePostHoc(plan, set, shards, hooks, started);
  await noteDrafts(path.join(out, SHARDS_DIR), hooks);
  return merged;
}

/**
 * Drafts that tasks on other hosts left (a task removes its own host's dead ones when it reruns
 * its shard): merge cannot tell whether their writer still runs, so it names them and leaves them.
 */
async function noteDrafts(dir: string, hooks: ReturnType<typeof resolveHooks>): Promise<void> {
  const drafts = await listDrafts(dir);
  if (!drafts.length) return;
  const bytes = drafts.reduce((sum, d) => sum + d.bytes, 0);
  const shown = drafts.slice(0, 3).map((d) => d.name).join(', ') + (drafts.length > 3 ? `, … (${drafts.length - 3} more)` : '');
  hooks.warn(`${dir} holds ${drafts.length} draft${drafts.length === 1 ? '' : 's'} of shard tasks that did not finish (${(bytes / 1e6).toFixed(1)} MB: ${shown}); delete them once no shard task runs`);
}

async function mergePostHoc(plan: Plan, set: CheckpointSet, shards: ShardFile[], hooks: ReturnType<typeof resolveHooks>, started: number): Promise<{ report: RunReport; out: string }> {
  const out = plan.out;
  const options: AnalyzeOptions = plan.body.options;
  const d = decompositionOf(plan.body);
  const T = set.checkpoints.length;
  const staging = path.join(out, `.merge.partial-${process.pid}-${randomBytes(4).toString('hex')}`);
  await fsp.mkdir(staging);
  try {
    const targets = await createModelFiles(set, staging, options, d);
    const totals = new ChunkTotals(set, d.clusterings, T, baselineTaskOf(options));
    const fds = targets.map((t) => fs.openSync(t.modelPath, 'r+'));
    try {
      readShards<FitResult>(plan, shards, fds, targets.map((t) => t.slots), hooks.signal, (r) => totals.add(r));
    } finally {
      for (const fd of fds) fs.closeSync(fd);
    }
    if (totals.chunks !== plan.body.chunks) throw new InputError(path.join(out, SHARDS_DIR), `the shards hold ${totals.chunks} chunks, the plan ${plan.body.chunks}`, 'shards-incomplete');
    for (const t of targets) await syncFile(t.modelPath);
    const result = await totals.finish(set, options, d, targets, 1, {});
    let report = await writePostHocOutputs(staging, set, result, plan.body.report, plan.body.key as unknown as DecompositionKey);
    const seconds = (performance.now() - started) / 1000;
    // Reconstruct shards (cmd reconstruct --plan), when there are any: their files and evaluation.
    const { gatherReconstructions } = await import('./scale-out-reconstruct.ts');
    const rec = await gatherReconstructions(plan, staging, set, report);
    if (rec) {
      report = rec.report;
      await (await import('../output/run-outputs.ts')).writeReport(staging, report);
    }
    const { processFacts, writeRunInfo } = await import('./run-info.ts');
    await writeRunInfo(staging, {
      decomposition: { command: 'analyze', key: plan.body.key as unknown as DecompositionKey },
      analyze: { seconds, mode: 'sharded', shards: plan.body.shards.n, plan: plan.hash, bytesRead: result.bytesRead, checkpointBytes: report.storage.checkpointsBytes, ...processFacts() },
      ...(rec ? { reconstruct: { seconds, mode: 'sharded', shards: rec.shards, reused: true, ...processFacts() } } : {}),
    });
    await moveProducts(staging, out);
    return { report, out };
  } finally {
    await fsp.rm(staging, { recursive: true, force: true });
  }
}

