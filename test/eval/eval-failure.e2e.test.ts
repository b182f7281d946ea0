/**
 * Issue 9, defect 1: a failed evaluation is a runtime failure, not a result. `cmd reconstruct`
 * with an --eval-cmd that crashes (a real Python traceback) or prints a NaN accuracy exits 2
 * with one stderr line and writes nothing; a NaN loss, as Python's json.dumps prints it, is
 * read and kept in report.json as "NaN".
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { PYTHON } from '../helpers/optional-tools.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

const EVAL_PY = `import json, sys
mode = sys.argv[1]
if mode == "crash":
    import not_a_module_cmd_test
elif mode == "nan-loss":
    print(json.dumps({"accuracy": 0.1, "loss": float("nan")}))
elif mode == "nan-accuracy":
    print(json.dumps({"accuracy": float("nan"), "loss": 2.3}))
`;

function evalScript(dir: string): string {
  const file = path.join(dir, 'eval.py');
  writeFileSync(file, EVAL_PY);
  return file;
}

const reconstruct = (out: string, evalCmd: string, extra: string[] = []) =>
  runCli(['reconstruct', fixture('lenet5-fmnist', 'npz'), '--to', '3', '-o', out, '--samples', '200', '--modes', '3', '--avg-last', '2', '--eval-cmd', evalCmd, '-q', ...extra]);

/** Every file under `dir` with its sha256, to prove a folder was left as it was. */
function hashTree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = path.join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out[path.relative(dir, p)] = createHash('sha256').update(readFileSync(p)).digest('hex');
    }
  };
  walk(dir);
  return out;
}

describe('cmd reconstruct --eval-cmd when the evaluation fails', () => {
  // One successful run (NaN losses) shared by the two tests that need an evaluated folder.
  let shared: string;
  let nanRun: { out: string; script: string; status: number | null; stderr: string };
  beforeAll(() => {
    shared = mkdtempSync(path.join(os.tmpdir(), 'cmd-eval-fail-'));
    const script = evalScript(shared);
    const out = path.join(shared, 'out');
    const r = reconstruct(out, `${PYTHON} ${script} nan-loss {checkpoint}`);
    nanRun = { out, script, status: r.status, stderr: r.stderr };
  });
  afterAll(() => {
    if (shared) rmSync(shared, { recursive: true, force: true });
  });

  it('a crashing eval script: exit 2, one line naming the checkpoint, the command and its last stderr line; nothing written', () => {
    const tmp = tempDir();
    const script = evalScript(tmp);
    const out = path.join(tmp, 'out');
    const r = reconstruct(out, `${PYTHON} ${script} crash {checkpoint}`);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    const lines = r.stderr.trim().split('\n');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^cmd: evaluation of \S+epoch_00[1-3]\.npz failed: exited with status 1; command: \S*python3 \S+eval\.py crash '\S+epoch_00[1-3]\.npz'; last stderr line: ModuleNotFoundError: No module named 'not_a_module_cmd_test'$/);
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(tmp)).toEqual(['eval.py']); // no staging folder left either
  });

  it('leaves an existing output folder byte-identical', () => {
    const { out, script } = nanRun;
    expect(nanRun.status, nanRun.stderr).toBe(0);
    const before = hashTree(out);
    const r = reconstruct(out, `${PYTHON} ${script} crash {checkpoint}`, ['--force']);
    expect(r.status).toBe(2);
    expect(hashTree(out)).toEqual(before);
    expect(readdirSync(shared).sort()).toEqual(['eval.py', 'out']);
  });

  it('a NaN accuracy is a failed evaluation (exit 2), not a result', () => {
    const tmp = tempDir();
    const script = evalScript(tmp);
    const r = reconstruct(path.join(tmp, 'out'), `${PYTHON} ${script} nan-accuracy {checkpoint}`);
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/failed: accuracy NaN is not a fraction in \[0, 1\]; command: /);
    expect(existsSync(path.join(tmp, 'out'))).toBe(false);
  });

  it("reads Python's {\"accuracy\": 0.1, \"loss\": NaN} and keeps the NaN loss in report.json", () => {
    const { out } = nanRun;
    expect(nanRun.status, nanRun.stderr).toBe(0);
    const text = readFileSync(path.join(out, 'report.json'), 'utf8');
    const report = JSON.parse(text);
    expect(report.evaluation.final.cmd).toEqual({ accuracy: 0.1, loss: 'NaN' });
    expect(report.evaluation.final.original).toEqual({ accuracy: 0.1, loss: 'NaN' });
    expect(report.evaluation.average.metrics).toEqual({ accuracy: 0.1, loss: 'NaN' });
    expect(text).not.toContain('"error"');
    // …and the gate then fails on it as non-finite (exit 1), not as a missing value.
    const gate = runCli(['report', out, '--max-acc-drop', '5']);
    expect(gate.status).toBe(1);
    expect(gate.stderr).toContain('max-acc-drop (non-finite: original loss was NaN (non-finite), CMD loss was NaN (non-finite); threshold 5 pts)');
  });
});
