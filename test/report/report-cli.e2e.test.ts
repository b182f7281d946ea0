/** `cmd report` end to end: the built CLI on a real analyze run and modified copies of its report. */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyzeLenet, CLI, cmd, setEvaluation, variant, type AnalyzedRun } from './run-fixture.ts';

let run: AnalyzedRun;
let lastError: number;
beforeAll(() => {
  run = analyzeLenet();
  lastError = run.report.checkpoints[run.report.checkpoints.length - 1].relativeError as number;
});
afterAll(() => run?.cleanup());

const evalOf = (orig: number, cmdAcc: number) => (r: Parameters<typeof setEvaluation>[0]) => setEvaluation(r, [orig - 0.05, orig], [cmdAcc - 0.05, cmdAcc], { lastK: 2, accuracy: cmdAcc + 0.001 });
const oneLine = (s: string) => s.trimEnd().split('\n');

describe('cmd report on a real run', () => {
  it('prints modes, per-checkpoint errors and storage, exit 0 without gates', () => {
    const r = cmd(['report', run.reportFile]);
    expect(r.status).toBe(0);
    expect(r.stderr).toBe('');
    for (const m of run.report.modes) expect(r.stdout).toContain(`${m.reference.tensor}[${m.reference.element}]`);
    for (const c of run.report.checkpoints) expect(r.stdout).toContain(c.name);
    expect(r.stdout).toContain(`last ${((lastError as number) * 100).toFixed(2)}%`);
    expect(r.stdout).toMatch(/storage: model .* checkpoints/);
    expect(r.stdout).toContain('evaluation: none');
    expect(r.stdout).toContain('gates: none requested');
  });

  it('reads ./cmd-out/report.json by default and accepts an output folder', () => {
    const cwd = path.join(run.root, 'cwd');
    mkdirSync(path.join(cwd, 'cmd-out'), { recursive: true });
    writeFileSync(path.join(cwd, 'cmd-out', 'report.json'), readFileSync(run.reportFile));
    const byDefault = cmd(['report', '--format', 'json'], { cwd });
    expect(byDefault.status).toBe(0);
    expect(JSON.parse(byDefault.stdout).report.file).toBe(path.join('cmd-out', 'report.json'));
    const byFolder = cmd(['report', run.dir, '--format', 'json']);
    expect(byFolder.status).toBe(0);
    expect(JSON.parse(byFolder.stdout).report.file).toBe(run.reportFile);
  });

  it('--max-recon-error passes at or above the last error and fails below it', () => {
    const pass = cmd(['report', run.reportFile, '--max-recon-error', String(lastError)]);
    expect(pass.status).toBe(0);
    expect(pass.stdout).toMatch(/max-recon-error .*PASS/);
    const fail = cmd(['report', run.reportFile, '--max-recon-error', String(lastError * 0.99)]);
    expect(fail.status).toBe(1);
    expect(fail.stdout).toMatch(/max-recon-error .*FAIL/); // the product is still printed
    expect(oneLine(fail.stderr)).toHaveLength(1);
    expect(fail.stderr).toMatch(/^cmd: 1 of 1 gate failed: max-recon-error/);
  });

  it('a NaN reconstruction error fails the gate, says it was non-finite, and is written as "NaN" in JSON', () => {
    const file = variant(run, 'nan-error', (r) => {
      r.checkpoints[r.checkpoints.length - 1].relativeError = 'NaN';
    });
    const r = cmd(['report', file, '--max-recon-error', '1', '--format', 'json']);
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout);
    const last = run.report.checkpoints.at(-1)!.name;
    expect(doc.gates).toEqual([{ name: 'max-recon-error', description: expect.any(String), threshold: 1, thresholdText: '1 (100%)', value: 'NaN', passed: false, nonFinite: `the error at ${last} was NaN (non-finite)` }]);
    expect(r.stderr).toBe(`cmd: 1 of 1 gate failed: max-recon-error (non-finite: the error at ${last} was NaN (non-finite); threshold 1 (100%))\n`);
  });

  it('--max-recon-error takes 5% or a fraction and refuses a bare 5 with a hint (issue 9, defect 9)', () => {
    const pct = Number((lastError * 100).toFixed(4)) + 0.001; // just above the last error, in percent
    const pass = cmd(['report', run.reportFile, '--max-recon-error', `${pct}%`, '--format', 'json']);
    expect(pass.status, pass.stderr).toBe(0);
    expect(JSON.parse(pass.stdout).gates[0].threshold).toBeCloseTo(pct / 100, 12);
    const fail = cmd(['report', run.reportFile, '--max-recon-error', '1%']);
    expect(fail.status).toBe(lastError > 0.01 ? 1 : 0);
    expect(fail.stdout).toMatch(/max-recon-error .*≤ 0\.01 \(1%\)/);
    const five = cmd(['report', run.reportFile, '--max-recon-error', '5']);
    expect(five.status).toBe(2);
    expect(five.stdout).toBe('');
    expect(five.stderr).toBe('cmd: --max-recon-error 5 is ambiguous: it takes a fraction (0.05 = 5%); write 5% or 0.05\n');
  });

  it('a never-measured accuracy is exit 2 naming it; a recorded NaN loss fails the gate as non-finite (issue 9, defect 1)', () => {
    const failed = variant(run, 'eval-failed', (r) => {
      evalOf(0.9, 0.88)(r);
      r.evaluation!.final!.cmd = { error: 'exited with status 1 | ModuleNotFoundError: torch' };
    });
    const missing = cmd(['report', failed, '--max-acc-drop', '0.5']);
    expect(missing.status).toBe(2);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toBe(`cmd: ${failed}: --max-acc-drop needs the analysed report's CMD accuracy, but it was never measured (its evaluation failed: exited with status 1 | ModuleNotFoundError: torch)\n`);
    const nanLoss = variant(run, 'eval-nan-loss', (r) => {
      evalOf(0.9, 0.9)(r);
      r.evaluation!.final!.cmd = { accuracy: 0.9, loss: 'NaN' };
    });
    const r = cmd(['report', nanLoss, '--max-acc-drop', '0.5', '--format', 'json']);
    expect(r.status).toBe(1);
    const g = JSON.parse(r.stdout).gates[0];
    expect(g).toMatchObject({ name: 'max-acc-drop', value: 0, passed: false, thresholdText: '0.5 pts', nonFinite: 'CMD loss was NaN (non-finite)' });
    expect(r.stderr).toContain('max-acc-drop (non-finite: CMD loss was NaN (non-finite); threshold 0.5 pts)');
  });

  it('--max-acc-drop compares CMD final accuracy with the original', () => {
    const file = variant(run, 'eval-drop-2pts', evalOf(0.9, 0.88));
    const fail = cmd(['report', file, '--max-acc-drop', '0.5', '--format', 'json']);
    expect(fail.status).toBe(1);
    const gate = JSON.parse(fail.stdout).gates[0];
    expect(gate.name).toBe('max-acc-drop');
    expect(gate.value).toBeCloseTo(2, 10);
    expect(gate.passed).toBe(false);
    const pass = cmd(['report', file, '--max-acc-drop', '2.5']);
    expect(pass.status).toBe(0);
    expect(pass.stdout).toContain('original acc');
    expect(pass.stdout).toContain('average of last 2');
    expect(pass.stdout).toContain('88.10%'); // the averaged model's accuracy
  });

  it('--max-acc-drop with --baseline also compares with the baseline CMD accuracy', () => {
    const file = variant(run, 'eval-current', evalOf(0.9, 0.89));
    const better = variant(run, 'eval-baseline-better', evalOf(0.9, 0.95));
    const worse = variant(run, 'eval-baseline-worse', evalOf(0.9, 0.885));
    const fail = cmd(['report', file, '--baseline', better, '--max-acc-drop', '3', '--format', 'json']);
    expect(fail.status).toBe(1);
    const gates = JSON.parse(fail.stdout).gates;
    expect(gates.map((g: { name: string; passed: boolean }) => [g.name, g.passed])).toEqual([
      ['max-acc-drop', true],
      ['max-acc-drop-vs-baseline', false],
    ]);
    expect(gates[1].value).toBeCloseTo(6, 10);
    expect(fail.stderr).toContain('max-acc-drop-vs-baseline');
    expect(cmd(['report', file, '--baseline', worse, '--max-acc-drop', '3']).status).toBe(0);
  });

  it('--max-acc-drop on a report without evaluation is a usage error (2)', () => {
    const r = cmd(['report', run.reportFile, '--max-acc-drop', '0.5']);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(oneLine(r.stderr)).toHaveLength(1);
    expect(r.stderr).toContain('no evaluation section');
    const withEval = variant(run, 'eval-ok', evalOf(0.9, 0.9));
    const noEvalBaseline = cmd(['report', withEval, '--baseline', run.reportFile, '--max-acc-drop', '0.5']);
    expect(noEvalBaseline.status).toBe(2);
    expect(noEvalBaseline.stderr).toContain('baseline report');
  });

  it('--max-slowdown compares run-info.json seconds with the baseline', () => {
    const slow = variant(run, 'slow', () => undefined, 10);
    const fast = variant(run, 'fast', () => undefined, 4);
    const fail = cmd(['report', slow, '--baseline', fast, '--max-slowdown', '2', '--format', 'json']);
    expect(fail.status).toBe(1);
    const gate = JSON.parse(fail.stdout).gates[0];
    expect([gate.name, gate.value, gate.passed]).toEqual(['max-slowdown', 2.5, false]);
    expect(cmd(['report', slow, '--baseline', fast, '--max-slowdown', '2.5']).status).toBe(0);
    expect(cmd(['report', fast, '--baseline', slow, '--max-slowdown', '1']).status).toBe(0);
  });

  it('--max-slowdown needs a baseline and both runtimes (2)', () => {
    const noBaseline = cmd(['report', run.reportFile, '--max-slowdown', '2']);
    expect(noBaseline.status).toBe(2);
    expect(noBaseline.stderr).toContain('--baseline');
    const noInfo = variant(run, 'no-run-info', () => undefined, null);
    const r = cmd(['report', noInfo, '--baseline', run.reportFile, '--max-slowdown', '2']);
    expect(r.status).toBe(2);
    expect(r.stderr).toContain('run-info.json');
  });

  it('all gates together: exit 0 when all hold, 1 when any fails', () => {
    const cur = variant(run, 'all-cur', evalOf(0.9, 0.898), 5);
    const base = variant(run, 'all-base', evalOf(0.9, 0.899), 5);
    const args = ['report', cur, '--baseline', base, '--max-acc-drop', '0.5', '--max-slowdown', '1.2'];
    expect(cmd([...args, '--max-recon-error', '0.5']).status).toBe(0);
    const r = cmd([...args, '--max-recon-error', '0.001', '--format', 'json']);
    expect(r.status).toBe(1);
    const doc = JSON.parse(r.stdout);
    expect(doc.passed).toBe(false);
    expect(doc.gates.map((g: { name: string; passed: boolean }) => `${g.name}:${g.passed}`)).toEqual(['max-acc-drop:true', 'max-acc-drop-vs-baseline:true', 'max-recon-error:false', 'max-slowdown:true']);
  });

  it('--format json is one JSON document with the summary and gates', () => {
    const r = cmd(['report', run.reportFile, '--format', 'json', '--max-recon-error', '0.5']);
    expect(r.status).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.report.modes).toBe(run.report.method.modes);
    expect(doc.report.lastRelativeError).toBe(lastError);
    expect(doc.report.modeSizes.map((m: { sampled: number }) => m.sampled)).toEqual(run.report.modes.map((m) => m.sampledCount));
    expect(doc.report.seconds).toBe(run.seconds);
    expect(doc.report.finalAccuracy).toBeNull();
    expect(doc.gates).toEqual([{ name: 'max-recon-error', description: expect.any(String), threshold: 0.5, thresholdText: '0.5 (50%)', value: lastError, passed: true }]);
    expect(doc.passed).toBe(true);
  });

  it('--format markdown starts with a headline giving each gate verdict', () => {
    const file = variant(run, 'md', evalOf(0.9, 0.899));
    const r = cmd(['report', file, '--format', 'markdown', '--max-acc-drop', '0.5', '--max-recon-error', '0.001']);
    expect(r.status).toBe(1);
    const first = r.stdout.split('\n')[0];
    expect(first).toMatch(/^\*\*CMD report: ❌ 1 of 2 gates failed\*\*/);
    expect(first).toContain('✅ `max-acc-drop`');
    expect(first).toContain('❌ `max-recon-error`');
    expect(r.stdout).toContain('| gate | value | threshold | result |');
    expect(r.stdout).toContain('Final accuracy (final evaluation, test-constructed values (not measured)): original 90.00%, CMD 89.90%');
    const ok = cmd(['report', file, '--format', 'markdown', '--max-acc-drop', '0.5']);
    expect(ok.status).toBe(0);
    expect(ok.stdout.split('\n')[0]).toMatch(/^\*\*CMD report: ✅ the gate passed\*\*/);
  });

  it('bad input is exit 2 with one line on stderr naming the file', () => {
    const missing = path.join(run.root, 'nope', 'report.json');
    const notJson = path.join(run.root, 'not-json.json');
    const notReport = path.join(run.root, 'not-report.json');
    writeFileSync(notJson, '{"schemaVersion": 1,');
    writeFileSync(notReport, JSON.stringify({ schemaVersion: 1, tool: { name: 'x' } }));
    for (const [file, what] of [
      [missing, 'cannot read report'],
      [notJson, 'is not JSON'],
      [notReport, 'is not a cmd report'],
    ]) {
      const r = cmd(['report', file]);
      expect(r.status, file).toBe(2);
      expect(r.stdout).toBe('');
      expect(oneLine(r.stderr)).toHaveLength(1);
      expect(r.stderr).toContain(`${file}: ${what}`);
    }
    expect(cmd(['report', run.reportFile, '--baseline', notReport]).status).toBe(2);
  });

  it('bad flag values are usage errors (2)', () => {
    for (const args of [
      ['--max-acc-drop', 'abc'],
      ['--max-recon-error', '-1'],
      ['--max-slowdown', '0', '--baseline', run.reportFile],
      ['--format', 'yaml'],
    ]) {
      const r = cmd(['report', run.reportFile, ...args]);
      expect(r.status, args.join(' ')).toBe(2);
      expect(r.stdout).toBe('');
    }
  });

  it('colours only on a terminal without NO_COLOR; markdown and JSON never', () => {
    const esc = '\u001b[';
    expect(cmd(['report', run.reportFile, '--max-recon-error', '1']).stdout).not.toContain(esc);
    expect(cmd(['report', run.reportFile, '--max-recon-error', '1'], { env: { FORCE_COLOR: '1' } }).stdout).toContain(esc);
    expect(cmd(['report', run.reportFile, '--format', 'markdown', '--max-recon-error', '1'], { env: { FORCE_COLOR: '1' } }).stdout).not.toContain(esc);
    expect(cmd(['report', run.reportFile, '--format', 'json'], { env: { FORCE_COLOR: '1' } }).stdout).not.toContain(esc);
    // A real terminal via script(1): colour by default, none with NO_COLOR.
    const onTty = (noColor: boolean) => {
      const env = { ...process.env, FORCE_COLOR: undefined, CI: '1' } as NodeJS.ProcessEnv;
      delete env.FORCE_COLOR;
      if (noColor) env.NO_COLOR = '1';
      else delete env.NO_COLOR;
      const line = `${JSON.stringify(process.execPath)} ${JSON.stringify(CLI)} report ${JSON.stringify(run.reportFile)} --max-recon-error 1`;
      const r = spawnSync('script', ['-qec', line, '/dev/null'], { env, encoding: 'utf8' });
      expect(r.status).toBe(0);
      expect(r.stdout).toContain('max-recon-error');
      return r.stdout;
    };
    expect(onTty(false)).toContain(esc);
    expect(onTty(true)).not.toContain(esc);
  });

  it('--html writes the page even when a gate fails, and leaves no temp files', () => {
    const out = path.join(run.root, 'html-out');
    mkdirSync(out);
    const r = cmd(['report', run.reportFile, '--max-recon-error', '0', '--html', path.join(out, 'report.html')]);
    expect(r.status).toBe(1);
    expect(readdirSync(out)).toEqual(['report.html']);
    const html = readFileSync(path.join(out, 'report.html'), 'utf8');
    expect(html).toContain('1 of 1 gate failed');
    expect(cmd(['report', run.reportFile, '--html', path.join(run.root, 'no-such-dir', 'r.html')]).status).toBe(2);
  });
});
