/**
 * `npm run demo` on the bundled real fixture: runs end to end, and its output is what the
 * README shows (numbers that depend on timing, if any ever appear, are masked).
 */
import { readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot, tempDir } from './helpers/tmp.ts';

const mask = (s: string) => s.replace(/\d+(\.\d+)?\s?(ms|s)\b/g, '<time>').trim();

describe('npm run demo', () => {
  it('runs analyze → reconstruct → evaluate → report and prints what the README shows', () => {
    // Written under a temp folder, not the repo's demo-out/; the transcript names it as the README does.
    const out = path.join(tempDir('cmd-demo-'), 'demo-out');
    const r = spawnSync(process.execPath, [path.join(repoRoot, 'scripts', 'demo.mjs')], { cwd: repoRoot, encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', CMD_DEMO_OUT: out }, timeout: 300_000 });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/CMD acc|CMD\s/);
    expect(existsSync(path.join(out, 'report.html'))).toBe(true);
    const stdout = r.stdout.split(out).join('demo-out');
    const readme = readFileSync(path.join(repoRoot, 'README.md'), 'utf8');
    const block = readme.split('<!-- demo-output:start -->')[1].split('<!-- demo-output:end -->')[0].replace(/^\s*```text\n/, '').replace(/```\s*$/, '');
    expect(mask(stdout)).toBe(mask(block));
  });
});
