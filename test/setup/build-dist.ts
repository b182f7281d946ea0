/**
 * Global setup of the e2e project.
 * - Compiles src/ into dist/ and bundles the CLI into dist/bundle/ (what `npm run build`
 *   does) once per vitest run, because the end-to-end tests spawn bin/cmd.js, which loads the
 *   bundle. Without it `npx vitest run` after an edit would test the previous build.
 * - Guards the rule that tests write only under temp folders: a git-ignored file or folder
 *   (cmd-out/, demo-out/, test-artifacts/, …) or an untracked one outside the source folders
 *   that appears during the run fails it. Untracked files under src/, test/, docs/ and scripts/
 *   are left out: a developer may be creating them while the tests run.
 * - Guards "inputs are never modified" (docs/formats.md) across every end-to-end run: the
 *   committed fixtures, which many tests give to the CLI as its input folder, must keep every
 *   byte, mode and mtime; a run that changed one fails the suite.
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { treeDigest } from '../helpers/tree-hash.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Written on purpose during a run: the build and the JSON results .ci/run reads. */
const expected = /^(dist\/|node_modules\/|\.vitest(-cluster)?-results\.json$|.*\.tsbuildinfo$)/;

/** Untracked and ignored paths of the work tree, or undefined outside a git checkout. */
function strayFiles(): Set<string> | undefined {
  const r = spawnSync('git', ['status', '--porcelain', '--ignored=matching', '--untracked-files=all'], { cwd: root, encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) return undefined;
  const out = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const file = line.slice(3);
    if (line.startsWith('!! ') || (line.startsWith('?? ') && !/^(src|test|docs|scripts)\//.test(file))) {
      if (!expected.test(file)) out.add(file);
    }
  }
  return out;
}

/** One hash over every path, mode, size, mtime and byte under `dir` (links by their target). */
export default async function setup(): Promise<() => void> {
  const fixtures = path.join(root, 'fixtures');
  const fixturesBefore = treeDigest(fixtures);
  const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.build.json')], { cwd: root, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`building dist/ for the e2e tests failed (tsc exit ${r.status}):\n${r.stdout}${r.stderr}`);
  const { bundleCli } = (await import(path.join(root, 'scripts', 'bundle-cli.mjs'))) as { bundleCli: () => Promise<void> };
  await bundleCli();
  const before = strayFiles();
  return () => {
    if (treeDigest(fixtures) !== fixturesBefore) throw new Error('an end-to-end run changed a file under fixtures/ (inputs are never modified: docs/formats.md)');
    const after = strayFiles();
    if (!before || !after) return;
    const added = [...after].filter((f) => !before.has(f));
    if (added.length) throw new Error(`tests wrote into the repository (use tempDir() from test/helpers/tmp.ts): ${added.slice(0, 10).join(', ')}`);
  };
}
