/**
 * The layering of docs/architecture.md: nothing below `src/cli/` imports from it, and nothing
 * below the run layer imports from `src/run/`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/tmp.ts';

const src = path.join(repoRoot, 'src');

function sources(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? sources(path.join(dir, e.name)) : e.name.endsWith('.ts') ? [path.join(dir, e.name)] : []));
}

/** Folders (under src/) that each file imports from, static or dynamic. */
function importedFolders(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:from\s+|import\()\s*'(\.[^']+)'/g)].map((m) => m[1]);
  return specs.map((s) => path.relative(src, path.resolve(path.dirname(file), s)).split(path.sep)[0]);
}

describe('layering', () => {
  const files = sources(src);
  it('nothing outside src/cli/ imports from it', () => {
    const bad = files.filter((f) => !f.startsWith(path.join(src, 'cli'))).filter((f) => importedFolders(f).includes('cli'));
    expect(bad.map((f) => path.relative(repoRoot, f))).toEqual([]);
  });
  it('nothing below the run layer imports from src/run/', () => {
    const below = ['formats', 'checkpoints', 'trajectory', 'core', 'pipeline', 'online', 'baselines', 'reconstruct', 'eval', 'output', 'io', 'remote'];
    const bad = files.filter((f) => below.includes(path.relative(src, f).split(path.sep)[0])).filter((f) => importedFolders(f).includes('run'));
    expect(bad.map((f) => path.relative(repoRoot, f))).toEqual([]);
  });
});
