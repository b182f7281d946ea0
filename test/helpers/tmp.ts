import { mkdtempSync, rmSync, cpSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach } from 'vitest';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const fixture = (...parts: string[]) => path.join(repoRoot, 'fixtures', ...parts);

const made: string[] = [];
/** A fresh temp folder, removed after the current test. */
export function tempDir(prefix = 'cmd-test-'): string {
  const d = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(d);
  return d;
}
afterEach(() => {
  while (made.length) rmSync(made.pop() as string, { recursive: true, force: true });
});

export function copyInto(dir: string, src: string, name = path.basename(src)): string {
  const dst = path.join(dir, name);
  cpSync(src, dst, { recursive: true });
  return dst;
}
