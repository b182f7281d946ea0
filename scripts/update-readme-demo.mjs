#!/usr/bin/env node
// Runs `npm run demo`'s script and puts its real output into README.md between the
// demo-output markers (test/demo.test.ts checks that the two agree).
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const r = spawnSync(process.execPath, [path.join(root, 'scripts', 'demo.mjs')], { cwd: root, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' } });
if (r.status !== 0) {
  process.stderr.write(r.stderr);
  process.exit(r.status ?? 2);
}
const readme = path.join(root, 'README.md');
const text = readFileSync(readme, 'utf8');
const start = '<!-- demo-output:start -->';
const end = '<!-- demo-output:end -->';
const block = `${start}\n\`\`\`text\n${r.stdout.trim()}\n\`\`\`\n${end}`;
writeFileSync(readme, text.slice(0, text.indexOf(start)) + block + text.slice(text.indexOf(end) + end.length));
console.error('README demo block updated');
