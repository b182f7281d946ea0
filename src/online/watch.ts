/**
 * `cmd watch`: online CMD alongside a training run. Polls the checkpoint folder, takes each
 * new checkpoint once it is complete, adds it to the online model and rewrites the model and
 * report atomically. The running state (state.ts) lives in `<out>/.online-state`, so a restart
 * resumes at the last committed checkpoint without opening any earlier one.
 *
 * "Complete" means: its entry's size and mtime did not change between two polls (a file renamed
 * into place passes this too), and its header validates (a half-written npz has no central
 * directory, a half-written safetensors file is shorter than its header says). Checkpoints are
 * taken in step order; one whose step is not above the last processed step is never added.
 */
import fs, { promises as fsp } from 'node:fs';
import path from 'node:path';
import { loadCheckpointSet } from '../checkpoints/checkpoint-set.ts';
import { discoverCheckpoints, stepsFromNames, type OrderedSource } from '../checkpoints/discover.ts';
import { openCheckpoint } from '../checkpoints/open-checkpoint.ts';
import { CancelledError, InputError, UsageError } from '../errors.ts';
import type { FormatName, StoredTensor } from '../formats/types.ts';
import { MODEL_FILE } from '../pipeline/model-file.ts';
import { refuseInputOverlap } from '../output/input-guard.ts';
import { placeScratchBeside } from '../formats/scratch.ts';
import { RunLock } from '../output/run-lock.ts';
import { writeHeatmap, writeReport, writeSamples } from '../output/run-outputs.ts';
import { OnlineEngine, type NewCheckpoint, type OnlineOptions, type WarmUp } from './engine.ts';
import { STATE_DIR } from './run-online.ts';
import type { CheckpointSet } from '../checkpoints/checkpoint-set.ts';

export interface WatchOptions {
  dir: string;
  out: string;
  warmup: number;
  /** Stop once the checkpoint with a step ≥ this one is processed. */
  until?: number;
  pollMs: number;
  modes: number;
  samples?: number;
  seed?: number;
  samplesFrom?: [string, number][];
  workers?: number;
  chunkSize?: number;
  format?: FormatName;
  force?: boolean;
  signal: AbortSignal;
  log: (line: string) => void;
}

export type WatchEnd = { reason: 'until'; step: number; checkpoints: number };

const MODEL_TMP = '.cmd-model.safetensors.tmp';

/** Appends opened checkpoint paths to the file named by CMD_TRACE_OPENS (tests count re-reads with it). */
function traceOpens(paths: string[]): void {
  const file = process.env.CMD_TRACE_OPENS;
  if (file && paths.length) fs.appendFileSync(file, paths.map((p) => `${p}\n`).join(''));
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Size and mtime of an entry (recursively for folders): equal across two polls = not being written. */
async function signature(entry: string): Promise<string | undefined> {
  try {
    const st = await fsp.stat(entry);
    if (!st.isDirectory()) return `${st.size}:${st.mtimeMs}`;
    const parts: string[] = [];
    for (const name of (await fsp.readdir(entry)).sort()) parts.push(`${name}=${await signature(path.join(entry, name))}`);
    return parts.join(',');
  } catch {
    return undefined;
  }
}

/** The folder's checkpoints in step order; none yet (or a listing that fails mid-write) is an empty list. */
async function listSources(dir: string, format: FormatName | undefined, log: (s: string) => void, seen: Set<string>): Promise<OrderedSource[]> {
  try {
    const found = await discoverCheckpoints(dir, { format });
    return stepsFromNames(found.sources, found.dir);
  } catch (e) {
    if (!(e instanceof InputError)) throw e;
    if (e.rule !== 'empty-folder' && !seen.has(e.message)) {
      seen.add(e.message);
      log(`waiting: ${e.message}`);
    }
    return [];
  }
}

/** Opens a new checkpoint's header and lines its tensors up with the run's parameter space. */
async function openNew(source: OrderedSource, engine: OnlineEngine): Promise<NewCheckpoint> {
  traceOpens([source.path]);
  const contents = await openCheckpoint(source);
  const byName = new Map(contents.tensors.map((t) => [t.name, t]));
  const known = new Set([...engine.meta.tensors.map((t) => t.name), ...engine.meta.carried.map((t) => t.name)]);
  for (const t of contents.tensors) if (!known.has(t.name)) throw new InputError(source.path, `tensor ${t.name} is not in the warm-up checkpoints`, 'extra-tensor');
  const stored: StoredTensor[] = engine.meta.tensors.map((m) => {
    const t = byName.get(m.name);
    if (!t) throw new InputError(source.path, `tensor ${m.name} is missing (present in the warm-up checkpoints)`, 'missing-tensor');
    if (t.dtype !== m.dtype || t.shape.join() !== m.shape.join()) throw new InputError(source.path, `tensor ${m.name} is [${t.shape.join(', ')}] ${t.dtype} but [${m.shape.join(', ')}] ${m.dtype} in the warm-up checkpoints`, 'shape-mismatch');
    return t;
  });
  let bytes = 0;
  for (const f of contents.files) bytes += (await fsp.stat(f)).size;
  return { step: source.step, name: source.name, bytes, path: source.path, stored };
}

async function publishModel(out: string, write: (file: string) => Promise<void>): Promise<void> {
  const tmp = path.join(out, MODEL_TMP);
  await write(tmp);
  await fsp.rename(tmp, path.join(out, MODEL_FILE));
}

async function prepareOut(o: WatchOptions, stateDir: string): Promise<void> {
  if (o.force) await fsp.rm(o.out, { recursive: true, force: true });
  await fsp.mkdir(o.out, { recursive: true });
  const entries = (await fsp.readdir(o.out)).filter((e) => e !== STATE_DIR && e !== MODEL_TMP);
  const hasState = await fsp.access(path.join(stateDir, 'meta.json')).then(() => true, () => false);
  if (!hasState && entries.length > 0) throw new UsageError(`${o.out} is not empty and holds no online state to resume; use another -o or --force`);
}

/**
 * Why the state in `o.out` is not the run these options ask for (undefined: resume). Options
 * are compared by value and the samples by content (a samples file of the same length with other
 * pairs is another run); committed checkpoints still in the folder must have their sizes (ones rotated away are fine). Their
 * values are not re-read: resuming never opens an earlier checkpoint (see the header).
 */
async function sameRunDifference(engine: OnlineEngine, o: WatchOptions): Promise<string | undefined> {
  const m = engine.meta;
  const want = { warmup: o.warmup, modes: o.modes, seed: o.samplesFrom ? null : (o.seed ?? 0), samples: o.samplesFrom ? o.samplesFrom.length : (o.samples ?? 1000), sampling: o.samplesFrom ? 'file' : 'drawn' };
  const have = { warmup: m.warmup, modes: m.modesRequested, seed: m.seed, samples: m.samplesRequested, sampling: m.sampling === 'file' ? 'file' : 'drawn' };
  for (const k of Object.keys(want) as (keyof typeof want)[]) if (want[k] !== have[k]) return `it holds an online run with ${k} ${have[k]}, not ${want[k]}`;
  if (o.samplesFrom) {
    const index = o.samplesFrom.map(([tensor, element]) => {
      const t = m.tensors.find((x) => x.name === tensor);
      return t && element < t.count ? t.offset + element : -1;
    });
    if (index.length !== m.sampleIndex.length || index.some((g, i) => g !== m.sampleIndex[i])) return 'its samples are not the pairs of the given samples file (same count, other content)';
  }
  for (const c of engine.checkpoints) {
    let bytes: number | undefined;
    try {
      bytes = await entryBytes(path.join(o.dir, c.name));
    } catch {
      // Training jobs rotate old checkpoints away; the state holds all that was needed of them.
      continue;
    }
    if (bytes !== undefined && bytes !== c.bytes) return `its committed checkpoint ${c.name} now has ${bytes} bytes, ${c.bytes} when it was added`;
  }
  return undefined;
}

/** Bytes of a folder entry (a file, or a checkpoint folder's files); undefined when not comparable. */
async function entryBytes(entry: string): Promise<number | undefined> {
  const st = await fsp.stat(entry);
  if (!st.isDirectory()) return st.size;
  return undefined;
}

/**
 * Watches `o.dir` until `o.until` is processed (returns) or the signal fires (throws
 * CancelledError with the state at the last committed checkpoint).
 */
export async function watchCheckpoints(o: WatchOptions): Promise<WatchEnd> {
  // The watched folder is the input: -o is refused when it is, holds or lies inside it (--force too).
  const out = await refuseInputOverlap(o.out, [o.dir]);
  placeScratchBeside(out);
  const lock = await RunLock.acquire(out, o.log);
  try {
    return await watchLocked(o, out);
  } finally {
    lock.release();
  }
}

async function watchLocked(o: WatchOptions, out: string): Promise<WatchEnd> {
  const stateDir = path.join(out, STATE_DIR);
  await prepareOut({ ...o, out }, stateDir);
  let engine = await OnlineEngine.resume(stateDir, { workers: o.workers, signal: o.signal });
  if (engine) {
    const why = await sameRunDifference(engine, o);
    if (why) {
      await engine.close();
      throw new UsageError(`${o.out} cannot be resumed: ${why}; use the same options to resume, another -o, or --force to start over`);
    }
    const last = engine.checkpoints[engine.checkpoints.length - 1];
    o.log(`resuming after ${last.name} (step ${last.step}, ${engine.checkpoints.length} checkpoints committed): same options, samples and committed checkpoints (names, sizes of those still present)`);
    // The outputs may lag the state after a crash between commit and rename: rewrite them from the state alone.
    await publishModel(out, (f) => engine!.writeModel(f));
    await writeReport(out, await engine.buildReport());
  } else {
    await fsp.rm(stateDir, { recursive: true, force: true });
    o.log(`starting a new online run: no committed state in ${o.out}`);
  }
  const F = o.warmup;
  const previous = new Map<string, string>();
  const said = new Set<string>();
  const say = (line: string) => {
    if (said.has(line)) return;
    said.add(line);
    o.log(line);
  };
  const done = (): WatchEnd | undefined => {
    if (!engine || o.until === undefined) return undefined;
    const last = engine.checkpoints[engine.checkpoints.length - 1];
    return last.step >= o.until ? { reason: 'until', step: last.step, checkpoints: engine.checkpoints.length } : undefined;
  };
  try {
    for (;;) {
      const end = done();
      if (end) return end;
      if (o.signal.aborted) throw new CancelledError();
      const sources = await listSources(o.dir, o.format, o.log, said);
      const current = new Map<string, string>();
      for (const s of sources) {
        const sig = await signature(path.join(o.dir, s.name));
        if (sig !== undefined) current.set(s.name, sig);
      }
      const stable = (s: OrderedSource) => current.has(s.name) && previous.get(s.name) === current.get(s.name);
      if (!engine) {
        if (sources.length < F + 1) say(`waiting for warm-up checkpoints: ${sources.length} of ${F + 1}`);
        else if (sources.slice(0, F + 1).every(stable)) engine = await tryWarmup(o, out, stateDir, sources.slice(0, F + 1), say);
      } else {
        const last = engine.checkpoints[engine.checkpoints.length - 1];
        for (const s of sources) {
          if (s.step <= last.step) {
            if (!engine.checkpoints.some((c) => c.name === s.name)) say(`ignoring ${s.name}: its step ${s.step} is not after the last processed step ${last.step}`);
            continue;
          }
          if (!stable(s)) break;
          let c: NewCheckpoint;
          try {
            c = await openNew(s, engine);
          } catch (e) {
            // Stable size but an invalid header: still being written in bursts; retry later.
            if (e instanceof InputError && !['extra-tensor', 'missing-tensor', 'shape-mismatch'].includes(e.rule)) {
              say(`waiting: ${e.message}`);
              break;
            }
            throw e;
          }
          await engine.apply(c, path.join(out, MODEL_TMP));
          await fsp.rename(path.join(out, MODEL_TMP), path.join(out, MODEL_FILE));
          const report = await engine.buildReport();
          await writeReport(out, report);
          const err = report.checkpoints[report.checkpoints.length - 1].relativeError;
          o.log(`step ${c.step} (${c.name}): online relative error ${typeof err === 'number' ? err.toExponential(3) : err}`);
          if (done()) break;
        }
      }
      for (const [k, v] of current) previous.set(k, v);
      if (done()) continue;
      await sleep(o.pollMs, o.signal);
    }
  } finally {
    await engine?.close();
  }
}

/** Warm-up once checkpoints 0..F are stable; undefined (wait) while one of them does not open yet. */
async function tryWarmup(o: WatchOptions, out: string, stateDir: string, first: OrderedSource[], say: (s: string) => void): Promise<OnlineEngine | undefined> {
  const F = o.warmup;
  let set: CheckpointSet;
  try {
    set = await loadCheckpointSet(o.dir, { format: o.format, to: first[F].step });
  } catch (e) {
    if (e instanceof InputError) {
      say(`waiting: ${e.message}`);
      return undefined;
    }
    throw e;
  }
  if (set.checkpoints.length !== F + 1 || set.checkpoints.some((c, i) => c.name !== first[i].name)) return undefined;
  traceOpens(set.checkpoints.map((c) => c.path));
  const options: OnlineOptions = {
    warmup: F,
    modes: o.modes,
    samples: o.samplesFrom ? o.samplesFrom.length : Math.min(o.samples ?? 1000, set.space.total),
    samplesRequested: o.samplesFrom ? o.samplesFrom.length : (o.samples ?? 1000),
    seed: o.seed ?? 0,
    samplesFrom: o.samplesFrom,
    workers: o.workers,
    chunkSize: o.chunkSize,
    signal: o.signal,
  };
  const tmp = path.join(out, MODEL_TMP);
  const sideFiles = async (warm: WarmUp) => {
    await writeSamples(out, set, warm.sampleIndices);
    await writeHeatmap(out, warm);
  };
  const { engine } = await OnlineEngine.start(stateDir, set, options, { modelOut: tmp, beforeCommit: sideFiles });
  await fsp.rename(tmp, path.join(out, MODEL_FILE));
  await writeReport(out, await engine.buildReport());
  o.log(`warm-up done on ${set.checkpoints[0].name}..${set.checkpoints[F].name}: ${engine.meta.M} modes`);
  return engine;
}
