import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CancelledError, RuntimeError, UsageError } from '../../src/errors.ts';
import { evaluationFailure, parseEvalOutput, parseJsonAllowingNonFinite, renderEvalCommand, runEvalCommands, type EvalCheckpoint } from '../../src/eval/eval-cmd.ts';

const FAKE = join(import.meta.dirname, '../fixtures-scripts/fake-eval.mjs');
const NODE = process.execPath;
const tmp = mkdtempSync(join(tmpdir(), 'eval-cmd-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** Checkpoint files holding the accuracy the fake evaluator should report. */
function checkpoints(values: number[], sub = 'ckpts'): EvalCheckpoint[] {
  const dir = join(tmp, sub);
  mkdirSync(dir, { recursive: true });
  return values.map((v, i) => {
    const path = join(dir, `epoch_${i + 1}.txt`);
    writeFileSync(path, String(v));
    return { index: i, step: i + 1, name: `epoch_${i + 1}`, path };
  });
}

/** A zombie counts as dead: in containers PID 1 may never reap orphans. */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  if (!existsSync('/proc/self/stat')) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}

/**
 * Polls `cond` every 20 ms until it holds or `ms` pass; returns whether it held. A guard for a
 * machine under load (a process may take a while to start or to be reaped), not a timing assertion.
 */
async function waitFor(cond: () => boolean, ms = 10_000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) return false;
    await new Promise((res) => setTimeout(res, 20));
  }
  return true;
}

describe('renderEvalCommand', () => {
  const ck = { index: 0, step: 7, name: "it's", path: '/a b/c' };
  it('quotes path and name for sh and replaces surrounding quotes', () => {
    expect(renderEvalCommand('run {checkpoint} --step {step} --name {name}', ck)).toBe(`run '/a b/c' --step 7 --name 'it'\\''s'`);
    expect(renderEvalCommand(`run "{checkpoint}" '{checkpoint}'`, ck)).toBe(`run '/a b/c' '/a b/c'`);
  });
});

describe('parseEvalOutput', () => {
  it('reads the last non-empty line as JSON or a bare number', () => {
    expect(parseEvalOutput('x\n{"accuracy": 0.8, "loss": 0.3}\n\n')).toEqual({ accuracy: 0.8, loss: 0.3 });
    expect(parseEvalOutput('{"loss": 2.5}')).toEqual({ loss: 2.5 });
    expect(parseEvalOutput('0.75\n')).toEqual({ accuracy: 0.75 });
  });
  it('rejects percentages, non-numbers and empty output', () => {
    expect(parseEvalOutput('89.5')).toEqual({ error: 'accuracy 89.5 is not a fraction in [0, 1]' });
    expect(parseEvalOutput('{"accuracy": "0.9"}')).toMatchObject({ error: expect.stringContaining('expected a number') });
    expect(parseEvalOutput('{"acc": 0.9}')).toMatchObject({ error: expect.stringContaining('neither') });
    expect(parseEvalOutput('[0.9]')).toMatchObject({ error: expect.stringContaining('not a JSON object') });
    expect(parseEvalOutput('\n \n')).toMatchObject({ error: expect.stringContaining('printed nothing') });
  });
});

describe('non-finite metrics (issue 9, defect 1)', () => {
  it("reads Python json.dumps' NaN / Infinity tokens as numbers, never inside strings", () => {
    expect(parseJsonAllowingNonFinite('{"accuracy": 0.1, "loss": NaN}')).toEqual({ accuracy: 0.1, loss: NaN });
    expect(parseJsonAllowingNonFinite('[Infinity, -Infinity, 1]')).toEqual([Infinity, -Infinity, 1]);
    expect(parseJsonAllowingNonFinite('{"note": "NaN \\" Infinity", "x": NaN}')).toEqual({ note: 'NaN " Infinity', x: NaN });
    expect(() => parseJsonAllowingNonFinite('{"x": NaNa}')).toThrow(SyntaxError);
    expect(() => parseJsonAllowingNonFinite('{"x": nan}')).toThrow(SyntaxError);
  });
  it('keeps a NaN loss as a result (a diverged reconstruction) but refuses a non-finite accuracy', () => {
    expect(parseEvalOutput('{"accuracy": 0.1, "loss": NaN}')).toEqual({ accuracy: 0.1, loss: NaN });
    expect(parseEvalOutput('{"accuracy": 0.1, "loss": Infinity}')).toEqual({ accuracy: 0.1, loss: Infinity });
    expect(parseEvalOutput('{"accuracy": NaN, "loss": 2.3}')).toEqual({ error: 'accuracy NaN is not a fraction in [0, 1]' });
    expect(parseEvalOutput('NaN')).toEqual({ error: 'accuracy NaN is not a fraction in [0, 1]' });
    expect(parseEvalOutput('{"accuracy": "NaN"}')).toMatchObject({ error: expect.stringContaining('expected a number') });
  });
  it('a failure is one RuntimeError line naming the model, the command and the last stderr line cut at 200 characters', () => {
    const long = `ModuleNotFoundError: ${'x'.repeat(400)}`;
    const e = evaluationFailure('/ck/epoch_3.pt', 'python eval.py /ck/epoch_3.pt', 'exited with status 1', ['Traceback (most recent call last):', long, '']);
    expect(e).toBeInstanceOf(RuntimeError);
    expect(e.exitCode).toBe(2);
    expect(e.message).not.toContain('\n');
    expect(e.message).toMatch(/^evaluation of \/ck\/epoch_3\.pt failed: exited with status 1; command: python eval\.py \/ck\/epoch_3\.pt; last stderr line: ModuleNotFoundError: x+\.\.\.$/);
    expect(e.message.split('last stderr line: ')[1]).toHaveLength(200);
    expect(evaluationFailure('m', 'cmd', 'timed out after 5 ms').message).toBe('evaluation of m failed: timed out after 5 ms; command: cmd');
  });
});

describe('runEvalCommands', () => {
  it('collects JSON metrics in checkpoint order', async () => {
    const ck = checkpoints([0.25, 0.5, 0.875]);
    const results = await runEvalCommands({ template: `${NODE} ${FAKE} json {checkpoint}`, checkpoints: ck, concurrency: 2 });
    expect(results.map((r) => [r.index, r.accuracy, r.loss, r.error])).toEqual([
      [0, 0.25, 0.75, undefined],
      [1, 0.5, 0.5, undefined],
      [2, 0.875, 0.125, undefined],
    ]);
  });

  it('reads a bare number as the accuracy', async () => {
    const [r] = await runEvalCommands({ template: `${NODE} ${FAKE} bare {checkpoint}`, checkpoints: checkpoints([0.625], 'bare') });
    expect(r).toMatchObject({ accuracy: 0.625, exitCode: 0, timedOut: false });
    expect(r.loss).toBeUndefined();
  });

  it('passes paths with spaces and quotes intact', async () => {
    const ck = checkpoints([0.125], "dir with spaces/it's here");
    expect(ck[0].path).toContain(' ');
    const [r] = await runEvalCommands({ template: `${NODE} ${FAKE} json {checkpoint}`, checkpoints: ck });
    expect(r.error).toBeUndefined();
    expect(r.accuracy).toBe(0.125);
  });

  it('reports malformed output as a failure', async () => {
    const [r] = await runEvalCommands({ template: `${NODE} ${FAKE} malformed {checkpoint}`, checkpoints: checkpoints([0.5], 'mal') });
    expect(r.accuracy).toBeUndefined();
    expect(r.error).toBe('last stdout line is not JSON or a number: accuracy=0.9');
  });

  it('reports a non-zero exit with the stderr tail, without throwing', async () => {
    const ck = checkpoints([0.5, 0.75], 'fail');
    const results = await runEvalCommands({ template: `${NODE} ${FAKE} fail {checkpoint}`, checkpoints: ck });
    for (const r of results) {
      expect(r.error).toBe('exited with status 3');
      expect(r.exitCode).toBe(3);
      expect(r.accuracy).toBeUndefined();
      expect(r.stderrTail).toEqual(['error line 4', 'error line 5', 'error line 6', 'error line 7', 'error line 8']);
    }
  });

  // The hang command sleeps 60 s; the 30 s test timeout is the guard that it was really stopped
  // (no assertion on wall-clock time), and a signal, not an exit status, ended it.
  it('kills the whole process group on timeout', { timeout: 30_000 }, async () => {
    const pidFile = join(tmp, 'grandchild.pid');
    const ck = [{ index: 0, step: 1, name: 'hang', path: pidFile }];
    // 3 s: time enough for the command to start its grandchild even on a loaded machine.
    const [r] = await runEvalCommands({ template: `${NODE} ${FAKE} hang {checkpoint}`, checkpoints: ck, timeoutMs: 3000 });
    expect(r.exitCode).toBeNull();
    expect(r.timedOut).toBe(true);
    expect(r.error).toBe('timed out after 3000 ms');
    expect(r.stderrTail).toEqual(['hanging']);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(await waitFor(() => !isAlive(grandchild))).toBe(true);
  });

  it('never runs more than `concurrency` commands at once', async () => {
    const logFile = join(tmp, 'overlap.log');
    writeFileSync(logFile, '');
    const ck = Array.from({ length: 6 }, (_, i) => ({ index: i, step: i, name: `c${i}`, path: logFile }));
    const results = await runEvalCommands({ template: `${NODE} ${FAKE} overlap {checkpoint}`, checkpoints: ck, concurrency: 2 });
    expect(results.every((r) => r.accuracy === 0.5)).toBe(true);
    let now = 0;
    let peak = 0;
    for (const line of readFileSync(logFile, 'utf8').trim().split('\n')) {
      now += line === 'start' ? 1 : -1;
      peak = Math.max(peak, now);
    }
    expect(peak).toBe(2);
  });

  it('kills running commands and rejects when aborted', { timeout: 30_000 }, async () => {
    const controller = new AbortController();
    const pidFile = join(tmp, 'abort.pid');
    const ck = [{ index: 0, step: 1, name: 'hang', path: pidFile }];
    // Aborted once the command is running (its grandchild's pid is on disk).
    void waitFor(() => existsSync(pidFile) && readFileSync(pidFile, 'utf8') !== '', 20_000).then(() => controller.abort());
    await expect(runEvalCommands({ template: `${NODE} ${FAKE} hang {checkpoint}`, checkpoints: ck, signal: controller.signal })).rejects.toBeInstanceOf(CancelledError);
    const grandchild = Number(readFileSync(pidFile, 'utf8'));
    expect(await waitFor(() => !isAlive(grandchild))).toBe(true);
  });

  it('rejects a template without {checkpoint}', async () => {
    await expect(runEvalCommands({ template: 'echo 0.5', checkpoints: [] })).rejects.toBeInstanceOf(UsageError);
  });
});
