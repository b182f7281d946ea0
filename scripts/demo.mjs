#!/usr/bin/env node
// `npm run demo`: the whole job on the bundled real fixture (a small MLP trained with tfjs on
// Fashion-MNIST, one checkpoint per epoch): analyze → reconstruct + evaluate → report.
// Prints each command before its output, so the transcript doubles as a tutorial.
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const cli = path.join(root, 'bin', 'cmd.js');
const out = process.env.CMD_DEMO_OUT ?? 'demo-out';

const steps = [
  ['analyze', 'fixtures/fmnist-mlp/checkpoints', '--modes', '10', '--seed', '0', '--baselines', 'all', '-o', out, '--force', '--quiet'],
  ['reconstruct', '-o', out, '--eval-data', 'fixtures/fmnist-mlp/test', '--eval-every', '5', '--quiet'],
  ['report', out, '--format', 'markdown', '--html', path.join(out, 'report.html')],
];

for (const args of steps) {
  process.stdout.write(`\n$ cmd ${args.join(' ')}\n`);
  const r = spawnSync(process.execPath, [cli, ...args], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'], env: { ...process.env, NO_COLOR: '1' } });
  if (r.status !== 0) {
    process.stderr.write(`demo: cmd ${args[0]} exited with ${r.status ?? r.signal}\n`);
    process.exit(r.status ?? 2);
  }
}
