/**
 * Golden hashes of `cmd analyze` outputs (issue 13): pass 2 may get faster, never different.
 *
 * `digestOutputs(outDir, inputDir)` hashes `cmd-model.safetensors` and `report.json` byte for
 * byte, except for one thing that legitimately varies: both record the absolute input folder
 * (report `input.dir`, model metadata `cmd.source`), so every occurrence of that path is replaced
 * by `<input>` first. In the model file the replacement is made in the header only (the header
 * length prefix and its padding follow the path's length, so they are left out); the tensor data
 * after the header is hashed unchanged; the report's `provenance.model` (the model file's sha256)
 * becomes `<model-sha256>`, since the model is checked on its own. The path's *length* still shows in the report (the
 * model's size, the compression ratios, the PCA/DMD ranks of the same storage), so every run goes
 * through `stableInput`: a symlink at a path of fixed length (`/tmp/cmd-golden-XXXXXX/in`),
 * wherever the repository or the bench data lives.
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
  // The report names the model by its sha256 (provenance.model), which covers the header's path.
  const fileHash = createHash('sha256').update(buf).digest('hex');
  const reportText = replaceAll(replaceAll(fs.readFileSync(path.join(outDir, 'report.json'), 'utf8'), abs, '<input>'), fileHash, '<model-sha256>');
  const report = createHash('sha256').update(reportText).digest('hex');
  return { model, report };
}

/**
 * `dir` seen through a symlink whose absolute path has the same length on every machine (the
 * CLI records the input path as given). `remove()` deletes the symlink and its folder only.
 */
export function stableInput(dir) {
  const parent = fs.mkdtempSync('/tmp/cmd-golden-');
  const link = path.join(parent, 'in');
  fs.symlinkSync(path.resolve(dir), link);
  return { path: link, remove: () => fs.rmSync(parent, { recursive: true, force: true }) };
}

/** Runs `cmd analyze` on `input` (relative to the repo) with `args` into `out`; throws on failure. */
export function runAnalyze(input, args, out) {
  const cli = path.join(root, 'bin', 'cmd.js');
  const stable = stableInput(path.join(root, input));
  try {
    const r = spawnSync(process.execPath, [cli, 'analyze', stable.path, '-o', out, '--quiet', '--force', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
    if (r.status !== 0) throw new Error(`cmd analyze ${input} ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
    return digestOutputs(out, stable.path);
  } finally {
    stable.remove();
  }
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
