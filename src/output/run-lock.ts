/**
 * One run per output folder: an exclusive lock file `.<out>.lock` beside the folder, naming its
 * holder (pid, host, command line). A second run on the same `-o` is refused and told who holds
 * it; a lock or staging folder left by a process of this host that no longer exists (kill -9)
 * is removed by the next run, which says so (docs/formats.md, "Inputs are never modified").
 */
import { linkSync, readFileSync, unlinkSync, promises as fsp } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { UsageError } from '../errors.ts';
import { pidAlive } from '../io/pid-alive.ts';

export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  started: string;
}

/** Notes about cleanups go to stderr unless a command routes them elsewhere. */
export type Log = (line: string) => void;
let note: Log = (line) => process.stderr.write(`cmd: note: ${line}\n`);
/** The default route of cleanup notes; `-q` replaces it with silence (src/cli/main.ts). */
export function setCleanupNote(log: Log): void {
  note = log;
}
export const stderrLog: Log = (line) => note(line);


export function lockPath(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.lock`);
}

function readHolder(file: string): LockHolder | undefined {
  try {
    const h = JSON.parse(readFileSync(file, 'utf8')) as Partial<LockHolder>;
    if (typeof h.pid === 'number' && typeof h.host === 'string') return { pid: h.pid, host: h.host, command: String(h.command ?? '?'), started: String(h.started ?? '?') };
  } catch {
    // unreadable or not ours: treated as held by an unknown process
  }
  return undefined;
}

const held = new Set<string>();
let exitHook = false;

/** An exclusive lock on an output folder, held until `release` (or process exit). */
export class RunLock {
  private constructor(readonly file: string) {}

  /** Takes the lock of the (physical, absolute) `target`, removing a stale one of a dead local pid. */
  static async acquire(target: string, log: Log = stderrLog): Promise<RunLock> {
    const file = lockPath(target);
    await fsp.mkdir(path.dirname(file), { recursive: true });
    const me: LockHolder = { pid: process.pid, host: hostname(), command: process.argv.slice(1).join(' '), started: new Date().toISOString() };
    // Written whole under a temp name, then hard-linked: the lock file never exists half-written.
    const temp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
    await fsp.writeFile(temp, `${JSON.stringify(me)}\n`, { flag: 'wx' });
    try {
      for (let attempt = 0; ; attempt++) {
        try {
          linkSync(temp, file);
          break;
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
        }
        const h = readHolder(file);
        if (attempt === 0 && h && h.host === me.host && !pidAlive(h.pid)) {
          unlinkSync(file);
          log(`removed the stale lock ${file} of process ${h.pid}, which no longer runs`);
          continue;
        }
        const who = h ? `process ${h.pid} on ${h.host} (${h.command}), since ${h.started}` : `an unknown process (remove ${file} if no cmd run uses it)`;
        throw new UsageError(`${target} is in use by another cmd run: ${who}; wait for it or choose another -o`);
      }
    } finally {
      await fsp.unlink(temp).catch(() => undefined);
    }
    held.add(file);
    if (!exitHook) {
      exitHook = true;
      // 'exit' handlers are synchronous: a run ended by process.exit (second Ctrl-C) still unlocks.
      process.on('exit', () => {
        for (const f of held) releaseSync(f);
      });
    }
    return new RunLock(file);
  }

  release(): void {
    if (held.has(this.file)) releaseSync(this.file);
  }
}

function releaseSync(file: string): void {
  held.delete(file);
  const h = readHolder(file);
  if (h && h.pid === process.pid && h.host === hostname()) {
    try {
      unlinkSync(file);
    } catch {
      // already gone
    }
  }
}

/**
 * Removes the staging folders `.<base>.partial-<pid>-<hex>` (and their `.old` swaps) beside
 * `target` whose pid is not a live process; says so through `log`.
 */
export async function removeStaleStaging(target: string, log: Log = stderrLog): Promise<void> {
  const dir = path.dirname(target);
  const base = path.basename(target).replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const re = new RegExp(`^\\.${base}\\.partial-(\\d+)-[0-9a-f]+(\\.old)?$`);
  let names: string[];
  try {
    names = await fsp.readdir(dir);
  } catch {
    return;
  }
  for (const name of names) {
    const m = re.exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    await fsp.rm(path.join(dir, name), { recursive: true, force: true });
    log(`removed ${path.join(dir, name)}, left by process ${pid} which no longer runs`);
  }
}
