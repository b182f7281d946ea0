/**
 * Bundles the command-line program into dist/bundle/ (after `tsc` has built dist/ for the
 * library API). Why: loading ~180 small ES modules (zod alone is 95) cost the CLI ≈ 0.15 s of
 * wall time and ≈ 0.35 CPU seconds per run, in the main thread and again in every worker thread
 * (docs/performance.md, "Start-up"). One file per entry point loads in a fraction of that.
 *
 * Entry points: the CLI and the two worker modules, which src/pipeline/pool.ts finds beside the
 * code that creates the pool (`./worker.js`, `./online-worker.js`), so they are named flat in one
 * folder. Shared code goes into chunks there. Kept external: packages that locate files of their
 * own at run time (piscina's worker script, the tfjs and h5wasm WebAssembly binaries) and the
 * Hub client, loaded only for hf:// inputs.
 */
import { build } from 'esbuild';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export async function bundleCli() {
  // Chunk names carry a content hash: without a clean folder every build would leave the last
  // build's chunks behind.
  fs.rmSync(path.join(root, 'dist', 'bundle'), { recursive: true, force: true });
  await build({
    absWorkingDir: root,
    entryPoints: ['src/cli/main.ts', 'src/pipeline/worker.ts', 'src/online/online-worker.ts'],
    outdir: 'dist/bundle',
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    bundle: true,
    splitting: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    sourcemap: 'linked',
    external: ['piscina', '@tensorflow/*', 'h5wasm', '@huggingface/hub'],
    // CommonJS dependencies (commander, cli-progress, …) call require(); ES modules have none.
    banner: { js: "import { createRequire as __cmdCreateRequire } from 'node:module'; const require = __cmdCreateRequire(import.meta.url);" },
    logLevel: 'warning',
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await bundleCli();
