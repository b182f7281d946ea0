/**
 * Issue 12, point 9: a write that the system refuses (here the file-size limit of `ulimit -f`,
 * EFBIG — real, and needs no root) ends the run with one line naming the output file, exit 2,
 * and no output folder or staging left behind.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const flat = fixture('lenet5-fmnist', 'flat');

function runLimited(args: string[], kib: number) {
  // Node ignores SIGXFSZ, so an oversized write fails with EFBIG instead of killing the process.
  const cmd = `ulimit -f ${kib} && exec "${process.execPath}" "${path.join(repoRoot, 'bin', 'cmd.js')}" "$@"`;
  return spawnSync('/bin/sh', ['-c', cmd, 'sh', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000 });
}

describe('disk errors through the CLI', () => {
  for (const [label, extra] of [['analyze', []], ['analyze --online', ['--online', '--warmup', '2']], ['analyze, 2 workers', ['--workers', '2']]] as const) {
    it(`${label}: one line naming the model file, exit 2, nothing left`, () => {
      const root = tempDir();
      const ck = path.join(root, 'ck');
      mkdirSync(ck);
      for (const f of readdirSync(flat).sort().slice(0, 3)) copyInto(ck, path.join(flat, f));
      const r = runLimited(['analyze', ck, '-o', path.join(root, 'out'), '-k', '60', '-m', '2', '-q', ...extra], 100);
      expect(r.status, r.stderr).toBe(2);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).toMatch(/^cmd: .*cmd-model\.safetensors: cannot write: file too large .*\(EFBIG\)$/);
      expect(lines[0]).not.toMatch(/internal error/);
      expect(readdirSync(root)).toEqual(['ck']);
    });
  }
});
