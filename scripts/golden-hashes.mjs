/**
 * Golden hashes of `cmd analyze` outputs (issue 13): pass 2 may get faster, never different.
 *
 * `digestOutputs(outDir, inputDir)` hashes `cmd-model.safetensors` and `report.json` byte for
 * byte, except for one thing that legitimately varies: both record the absolute input folder
 * (report `input.dir`, model metadata `cmd.source`), so every occurrence of that path is replaced
 * by `<input>` first. In the model file the replacement is made in the header only (the header
 * length prefix and its padding follow the path's length, so they are left out); the tensor data
 * after the header is hashed unchanged.
 *
 * `node scripts/golden-hashes.mjs --write` reruns every case of test/pipeline/golden-hashes.json
 * with the built CLI and rewrites its hashes (only when the results are meant to change; the
 * e2e test test/pipeline/golden-hashes.e2e.test.ts recomputes and compares them).
 */
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const goldenFile = path.join(root, 'test', 'pipeline', 'golden-hashes.json');

function replaceAll(text, from, to) {
  return text.split(from).join(to);
}

/** sha256 of the model (header with the input path replaced, then the data) and of the report. */
export function digestOutputs(outDir, inputDir) {
  const abs = path.resolve(inputDir);
  const buf = fs.readFileSync(path.join(outDir, 'cmd-model.safetensors'));
  const n = Number(buf.readBigUInt64LE(0));
  const header = replaceAll(buf.subarray(8, 8 + n).toString('utf8').trimEnd(), abs, '<input>');
  const model = createHash('sha256').update(header).update('\0').update(buf.subarray(8 + n)).digest('hex');
  const reportText = replaceAll(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8'), abs, '<input>');
  const report = createHash('sha256').update(reportText).digest('hex');
  return { model, report };
}

/** Runs `cmd analyze` on `input` (relative to the repo) with `args` into `out`; throws on failure. */
export function runAnalyze(input, args, out) {
  const cli = path.join(root, 'bin', 'cmd.js');
  const r = spawnSync(process.execPath, [cli, 'analyze', path.join(root, input), '-o', out, '--quiet', '--force', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) throw new Error(`cmd analyze ${input} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  return digestOutputs(out, path.join(root, input));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv.includes('--write')) {
  const golden = JSON.parse(fs.readFileSync(goldenFile, 'utf8'));
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmd-golden-'));
  try {
    for (const c of golden.cases) {
      const d = runAnalyze(c.input, c.args, path.join(tmp, c.name));
      c.model = d.model;
      c.report = d.report;
      process.stderr.write(`${c.name}: model ${d.model.slice(0, 12)} report ${d.report.slice(0, 12)}\n`);
    }
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.writeFileSync(goldenFile, `${JSON.stringify(golden, null, 2)}\n`);
}
