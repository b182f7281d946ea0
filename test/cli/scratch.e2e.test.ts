/**
 * Issue 12, points 3 and 4: scratch space (inflated .npz members) of a run lives beside its
 * output folder, not in the system temp folder, is gone when the run ends, and scratch left by
 * a killed process (pid no longer running) is removed by the next run, which says so. A zip
 * bomb is refused without filling the disk: under a 1 MiB file-size limit the refusal is the
 * member's size, not a write failure.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const npz = fixture('lenet5-fmnist', 'npz');
const deflated = fixture('npz-bombs', 'deflated');
const bin = path.join(repoRoot, 'bin', 'cmd.js');

/** A pid that certainly no longer runs: a child that has exited. */
function deadPid(): number {
  const r = spawnSync(process.execPath, ['-e', '0']);
  return r.pid as number;
}

function run(args: string[], env: Record<string, string>, fileLimitKiB?: number) {
  const sh = `${fileLimitKiB ? `ulimit -f ${fileLimitKiB} && ` : ''}exec "${process.execPath}" "${bin}" "$@"`;
  return spawnSync('/bin/sh', ['-c', sh, 'sh', ...args], { encoding: 'utf8', env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 60_000 });
}

/** A folder of three deflated-npz checkpoints (their members are inflated to scratch). */
function deflatedCheckpoints(root: string): string {
  const ck = path.join(root, 'ck');
  mkdirSync(ck);
  for (const f of readdirSync(deflated).sort()) copyInto(ck, path.join(deflated, f));
  return ck;
}

describe('scratch space', () => {
  it('analyze keeps scratch beside -o (nothing in TMPDIR), removes a dead run\'s scratch with a note, leaves none', () => {
    const root = tempDir();
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const ck = deflatedCheckpoints(root);
    const pid = deadPid();
    const stale = path.join(root, `.out.scratch-${pid}-0badc0de`);
    mkdirSync(stale);
    writeFileSync(path.join(stale, 'inflated.npy'), Buffer.alloc(4096));
    const r = run(['analyze', ck, '-o', path.join(root, 'out'), '-k', '40', '-m', '2', '--workers', '1'], { TMPDIR: tmp });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`removed ${stale}, scratch space left by process ${pid} which no longer runs`);
    expect(existsSync(stale)).toBe(false);
    expect(readdirSync(tmp)).toEqual([]);
    expect(readdirSync(root).sort()).toEqual(['ck', 'out', 'tmp']);
  });

  it('inspect (no output folder) uses a private temp folder, removes dead processes\' scratch there, leaves none', () => {
    const root = tempDir();
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const ck = deflatedCheckpoints(root);
    const pid = deadPid();
    mkdirSync(path.join(tmp, `cmd-scratch-${pid}-AbCdEf`));
    const live = path.join(tmp, `cmd-scratch-${process.pid}-AbCdEf`); // this test's own pid is alive: kept
    mkdirSync(live);
    const r = run(['inspect', ck], { TMPDIR: tmp });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toContain(`scratch space left by process ${pid} which no longer runs`);
    expect(readdirSync(tmp)).toEqual([path.basename(live)]);
  });

  it('a zip bomb is refused by its size under a 1 MiB file-size limit: one line, exit 2, nothing left', () => {
    const root = tempDir();
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    for (const f of readdirSync(npz).sort().slice(0, 2)) copyInto(ck, path.join(npz, f));
    copyFileSync(fixture('npz-bombs', 'bomb.npz'), path.join(ck, 'epoch_003.npz'));
    const r = run(['analyze', ck, '-o', path.join(root, 'out'), '-k', '50', '-m', '2'], {}, 1024);
    expect(r.status, r.stderr).toBe(2);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/epoch_003\.npz: member 'w\.npy': declares 67109008 bytes inflated but its npy header \(shape and dtype\) needs 144$/);
    expect(readdirSync(root)).toEqual(['ck']);
  });

  it('a full scratch disk names the scratch file, not the input, and leaves nothing', () => {
    const root = tempDir();
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    for (const i of [1, 2, 3]) copyFileSync(fixture('npz-bombs', 'big.npz'), path.join(ck, `epoch_00${i}.npz`));
    const r = run(['inspect', ck], { TMPDIR: tmp }, 1024);
    expect(r.status, r.stderr).toBe(2);
    const lines = r.stderr.split('\n').filter(Boolean);
    expect(lines, r.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(/^cmd: .*\/cmd-scratch-\d+-[0-9a-f]+\/[0-9a-f]+-w\.npy: cannot write scratch space \(inflating member 'w\.npy' of .*epoch_001\.npz\): file too large .*\(EFBIG\)$/);
    expect(lines[0]).not.toMatch(/^cmd: [^ ]*epoch_001\.npz:/);
    expect(readdirSync(tmp)).toEqual([]);
  });

  it('an -o whose parent does not exist yet: scratch falls back to the temp folder, no folder made on refusal', () => {
    const root = tempDir();
    const tmp = path.join(root, 'tmp');
    mkdirSync(tmp);
    const ck = deflatedCheckpoints(root);
    const ok = run(['analyze', ck, '-o', path.join(root, 'a', 'b', 'out'), '-k', '40', '-m', '2', '-q'], { TMPDIR: tmp });
    expect(ok.status, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
    expect(readdirSync(path.join(root, 'a', 'b'))).toEqual(['out']);
    expect(readdirSync(tmp)).toEqual([]);
    // Refused for bad input after two members were inflated: the missing parent is not created.
    copyFileSync(fixture('npz-bombs', 'huge-shape.npz'), path.join(ck, 'epoch_003.npz'));
    const bad = run(['analyze', ck, '-o', path.join(root, 'c', 'd', 'out'), '-k', '40', '-m', '2', '-q'], { TMPDIR: tmp });
    expect(bad.status, bad.stderr).toBe(2);
    expect(bad.stderr).toMatch(/epoch_003\.npz: member 'w\.npy': declares 144 bytes/);
    expect(readdirSync(tmp)).toEqual([]);
    expect(existsSync(path.join(root, 'c'))).toBe(false);
  });
});
