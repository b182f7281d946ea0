/**
 * External evaluation (`--eval-cmd`): runs a user command once per checkpoint through
 * `/bin/sh -c`, with bounded parallelism and a per-command timeout, and reads its metrics.
 *
 * Template placeholders: `{checkpoint}` (the checkpoint path), `{name}` (its display name) and
 * `{step}` (its step number). Path and name are substituted single-quoted for sh, so they may
 * hold spaces or quotes; a placeholder already wrapped in quotes ('{checkpoint}' or
 * "{checkpoint}") has those quotes replaced. The same values are exported as CMD_CHECKPOINT,
 * CMD_NAME and CMD_STEP.
 *
 * Output contract: the LAST non-empty stdout line is either a JSON object
 * `{"accuracy": a, "loss": l}` (either key may be missing, not both) or a bare number meaning
 * the accuracy. Accuracy is a finite fraction in [0, 1] (percentages are rejected, not
 * guessed). Loss is any number, NaN and ±Infinity included: Python's `json.dumps` prints them
 * as the bare tokens NaN / Infinity / -Infinity, and a diverged reconstruction legitimately
 * has a NaN loss, so they are read as results (docs/report.md, "Evaluation"). A non-zero exit,
 * a timeout or output breaking this contract becomes a failure entry with the last lines of
 * stderr; it never throws for one checkpoint. Callers that need every result turn the first
 * failure into a RuntimeError with `evaluationFailure`.
 */
import { spawn } from 'node:child_process';
import { CancelledError, RuntimeError, UsageError } from '../errors.ts';

/** One checkpoint to evaluate. */
export interface EvalCheckpoint {
  index: number;
  step: number;
  name: string;
  path: string;
}

/** Outcome of one command. Exactly one of (accuracy/loss) or error is meaningful. */
export interface EvalCommandResult {
  index: number;
  name: string;
  path: string;
  /** The command as run by /bin/sh (placeholders substituted). */
  command: string;
  accuracy?: number;
  loss?: number;
  /** Why the checkpoint has no metrics (one line). */
  error?: string;
  /** Last lines of stderr (at most `stderrLines`), on failure. */
  stderrTail?: string[];
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
}

export interface EvalCommandOptions {
  /** Shell command template, e.g. `python eval.py {checkpoint}`. */
  template: string;
  checkpoints: readonly EvalCheckpoint[];
  /** Commands running at once. @default 1 */
  concurrency?: number;
  /** Per-command limit; the whole process group is killed when it passes. @default 600000 */
  timeoutMs?: number;
  /** Aborting kills every running command and rejects with CancelledError. */
  signal?: AbortSignal;
  /** Lines of stderr kept for a failure. @default 5 */
  stderrLines?: number;
  cwd?: string;
  /** Called as each command finishes (in completion order). */
  onResult?: (result: EvalCommandResult) => void;
  /**
   * Stop every running command at the first failed evaluation and reject with its
   * RuntimeError (evalFailureError), instead of returning failure entries. @default false
   */
  stopOnFailure?: boolean;
}

/** Characters of the evaluator's last stderr line kept in a failure message. */
export const STDERR_LINE_CHARS = 200;

/**
 * The one-line error of a failed evaluation: which checkpoint, which command, why, and the
 * last line the command wrote to stderr (cut at STDERR_LINE_CHARS characters).
 */
export function evalFailureError(r: EvalCommandResult): RuntimeError {
  const oneLine = (s: string) => s.replace(/\s*[\r\n]+\s*/g, ' ');
  const last = r.stderrTail?.at(-1);
  const stderr = last === undefined ? 'stderr was empty' : `last stderr line: ${oneLine(last.length > STDERR_LINE_CHARS ? `${last.slice(0, STDERR_LINE_CHARS)}…` : last)}`;
  return new RuntimeError(`evaluation of ${r.path} failed (${oneLine(r.error ?? 'no metrics')}): command: ${oneLine(r.command)}; ${stderr}`);
}

/** Bytes of each stream kept in memory: enough for the last line and the stderr tail. */
const KEEP_BYTES = 64 * 1024;
/** Grace between SIGTERM and SIGKILL when a command is stopped. */
const KILL_GRACE_MS = 1000;

/** Quotes `s` as one sh word. */
export function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Substitutes the placeholders of `template` for one checkpoint. */
export function renderEvalCommand(template: string, ckpt: EvalCheckpoint): string {
  const values: Record<string, string> = {
    checkpoint: shellQuote(ckpt.path),
    name: shellQuote(ckpt.name),
    step: String(ckpt.step),
  };
  return template.replace(/(['"]?)\{(checkpoint|name|step)\}\1/g, (_m, _q: string, key: string) => values[key]);
}

/** Stand-ins for Python's bare non-finite tokens while JSON.parse reads the line (never valid JSON text themselves). */
const NON_FINITE: Record<string, number> = { '\u0000NaN': NaN, '\u0000Infinity': Infinity, '\u0000-Infinity': -Infinity };

/**
 * JSON.parse that also reads Python's `NaN`, `Infinity` and `-Infinity` tokens (outside
 * strings) as numbers. Throws SyntaxError like JSON.parse.
 */
export function parseJsonAllowingNonFinite(text: string): unknown {
  let out = '';
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      out += c;
      if (c === '\\') out += text[++i] ?? '';
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      out += c;
      continue;
    }
    const token = /^(?:NaN|-?Infinity)(?![A-Za-z0-9_])/.exec(text.slice(i, i + 10));
    if (token) {
      out += JSON.stringify(`\u0000${token[0]}`);
      i += token[0].length - 1;
      continue;
    }
    out += c;
  }
  return JSON.parse(out, (_key, value: unknown) => (typeof value === 'string' && value in NON_FINITE ? NON_FINITE[value] : value));
}

/** Parses the metrics line of an evaluator's stdout; returns an error string when it breaks the contract. */
export function parseEvalOutput(stdout: string): { accuracy?: number; loss?: number } | { error: string } {
  const lines = stdout.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0);
  const last = lines.at(-1);
  if (last === undefined) return { error: 'printed nothing on stdout (expected {"accuracy": …, "loss": …} as the last line)' };
  const shown = last.length > 120 ? `${last.slice(0, 117)}...` : last;
  let parsed: unknown;
  try {
    parsed = parseJsonAllowingNonFinite(last);
  } catch {
    return { error: `last stdout line is not JSON or a number: ${shown}` };
  }
  const out: { accuracy?: number; loss?: number } = {};
  if (typeof parsed === 'number') {
    out.accuracy = parsed;
  } else if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) {
    const obj = parsed as Record<string, unknown>;
    for (const key of ['accuracy', 'loss'] as const) {
      if (obj[key] === undefined) continue;
      if (typeof obj[key] !== 'number') return { error: `"${key}" is ${JSON.stringify(obj[key])}, expected a number: ${shown}` };
      out[key] = obj[key];
    }
    if (out.accuracy === undefined && out.loss === undefined) return { error: `last stdout line has neither "accuracy" nor "loss": ${shown}` };
  } else {
    return { error: `last stdout line is not a JSON object or a number: ${shown}` };
  }
  // A non-finite accuracy is a broken evaluation, not a result: no model scores NaN on a test set.
  if (out.accuracy !== undefined && !(out.accuracy >= 0 && out.accuracy <= 1)) {
    return { error: `accuracy ${out.accuracy} is not a fraction in [0, 1]` };
  }
  return out;
}

/** Longest command or stderr line quoted in a failure message. */
const QUOTE_CHARS = 200;

function cut(text: string): string {
  const one = text.replace(/\s*\n\s*/g, ' ').trim();
  return one.length > QUOTE_CHARS ? `${one.slice(0, QUOTE_CHARS - 3)}...` : one;
}

/**
 * The one-line RuntimeError for a failed evaluation: which checkpoint (or model), the command,
 * why, and the command's last stderr line, each quote cut at 200 characters.
 */
export function evaluationFailure(what: string, command: string, reason: string, stderrTail: readonly string[] = []): RuntimeError {
  const lastErr = stderrTail.filter((l) => l.trim()).at(-1);
  return new RuntimeError(`evaluation of ${what} failed: ${reason}; command: ${cut(command)}${lastErr ? `; last stderr line: ${cut(lastErr)}` : ''}`);
}

/** Keeps the tail of a stream without holding all of it. */
class Tail {
  private chunks: Buffer[] = [];
  private size = 0;
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - this.chunks[0].length >= KEEP_BYTES) this.size -= this.chunks.shift()!.length;
  }
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }
}

function lastLines(text: string, n: number): string[] {
  return text.split(/\r?\n/).map((l) => l.trimEnd()).filter((l) => l.length > 0).slice(-n);
}

function killGroup(pid: number | undefined, signal: NodeJS.Signals): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

interface Running {
  stop(): void;
}

function runOne(ckpt: EvalCheckpoint, opts: Required<Pick<EvalCommandOptions, 'template' | 'timeoutMs' | 'stderrLines'>> & { cwd?: string }, running: Set<Running>): Promise<EvalCommandResult> {
  const command = renderEvalCommand(opts.template, ckpt);
  const started = Date.now();
  return new Promise((resolve) => {
    // detached: the shell leads its own process group, so a timeout kills what it started too.
    const child = spawn('/bin/sh', ['-c', command], {
      cwd: opts.cwd,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, CMD_CHECKPOINT: ckpt.path, CMD_NAME: ckpt.name, CMD_STEP: String(ckpt.step) },
    });
    const stdout = new Tail();
    const stderr = new Tail();
    child.stdout.on('data', (c: Buffer) => stdout.push(c));
    child.stderr.on('data', (c: Buffer) => stderr.push(c));
    let timedOut = false;
    let killTimer: NodeJS.Timeout | undefined;
    const stop = (): void => {
      killGroup(child.pid, 'SIGTERM');
      killTimer ??= setTimeout(() => killGroup(child.pid, 'SIGKILL'), KILL_GRACE_MS);
    };
    const handle: Running = { stop };
    running.add(handle);
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, opts.timeoutMs);

    let spawnError: Error | undefined;
    child.on('error', (err) => {
      spawnError = err;
    });
    child.on('close', (code, sig) => {
      clearTimeout(timer);
      if (killTimer) clearTimeout(killTimer);
      // Reap anything the command left behind in its group.
      if (code === null || timedOut) killGroup(child.pid, 'SIGKILL');
      running.delete(handle);
      const base = { index: ckpt.index, name: ckpt.name, path: ckpt.path, command, exitCode: code, timedOut, durationMs: Date.now() - started };
      const fail = (error: string): EvalCommandResult => ({ ...base, error, stderrTail: lastLines(stderr.text(), opts.stderrLines) });
      if (spawnError) return resolve(fail(`could not start /bin/sh: ${spawnError.message}`));
      if (timedOut) return resolve(fail(`timed out after ${opts.timeoutMs} ms`));
      if (code !== 0) return resolve(fail(code === null ? `killed by ${sig}` : `exited with status ${code}`));
      const parsed = parseEvalOutput(stdout.text());
      if ('error' in parsed) return resolve(fail(parsed.error));
      resolve({ ...base, ...parsed });
    });
  });
}

/**
 * Runs the evaluation command for every checkpoint, at most `concurrency` at a time. Results
 * come back in the order of `checkpoints`. Rejects on a bad template, on cancellation, and
 * with `stopOnFailure` on the first failed evaluation.
 */
export async function runEvalCommands(options: EvalCommandOptions): Promise<EvalCommandResult[]> {
  const { template, checkpoints, concurrency = 1, timeoutMs = 600_000, signal, stderrLines = 5, cwd, onResult, stopOnFailure = false } = options;
  if (!/\{checkpoint\}/.test(template)) throw new UsageError(`eval command must contain {checkpoint}: ${template}`);
  if (!(Number.isInteger(concurrency) && concurrency >= 1)) throw new UsageError(`eval concurrency must be a positive integer, got ${concurrency}`);
  if (!(timeoutMs > 0)) throw new UsageError(`eval timeout must be positive, got ${timeoutMs}`);
  if (signal?.aborted) throw new CancelledError();

  const results: EvalCommandResult[] = new Array(checkpoints.length);
  const running = new Set<Running>();
  let next = 0;
  let cancelled = false;
  let failure: EvalCommandResult | undefined;
  const onAbort = (): void => {
    cancelled = true;
    for (const r of running) r.stop();
  };
  signal?.addEventListener('abort', onAbort, { once: true });
  const worker = async (): Promise<void> => {
    while (!cancelled && next < checkpoints.length) {
      const i = next++;
      const result = await runOne(checkpoints[i], { template, timeoutMs, stderrLines, cwd }, running);
      results[i] = result;
      if (cancelled) continue;
      onResult?.(result);
      if (stopOnFailure && result.error !== undefined) {
        failure = result;
        onAbort();
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, checkpoints.length) }, worker));
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
  if (failure) throw evalFailureError(failure);
  if (cancelled) throw new CancelledError();
  return results;
}
