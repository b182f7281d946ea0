/** The output guard's path resolution and overlap rule (issue 12 point 1), in-process. */
import { mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { overlap, physicalPath, refuseInputOverlap } from '../../src/output/input-guard.ts';
import { UsageError } from '../../src/errors.ts';
import { tempDir } from '../helpers/tmp.ts';

describe('physicalPath', () => {
  it('applies .. after following a symlink, as the kernel does (not lexically)', async () => {
    const root = tempDir();
    mkdirSync(path.join(root, 'a', 'deep'), { recursive: true });
    mkdirSync(path.join(root, 'ck'));
    symlinkSync(path.join(root, 'a', 'deep'), path.join(root, 'ck', 'jump'));
    const real = await physicalPath(root);
    // Lexically ck/jump/.. is ck; physically it is a/.
    expect(await physicalPath(path.join(root, 'ck') + '/jump/..')).toBe(path.join(real, 'a'));
    expect(await physicalPath(`${root}/ck/./../ck/new/child`)).toBe(path.join(real, 'ck', 'new', 'child'));
  });
});

describe('refuseInputOverlap', () => {
  it('refuses the input, a parent, anything inside it or inside a checkpoint, through symlinks and ..', async () => {
    const root = tempDir();
    const ck = path.join(root, 'ck');
    mkdirSync(ck);
    writeFileSync(path.join(ck, 'epoch_001.safetensors'), 'x');
    symlinkSync(ck, path.join(root, 'link'));
    mkdirSync(path.join(root, 'other'));
    const inputs = [ck, path.join(ck, 'epoch_001.safetensors')];
    for (const o of ['ck', '.', '..', 'ck/out', 'ck/epoch_001.safetensors', 'ck/epoch_001.safetensors/x', 'link', 'link/out', 'ck/../ck', 'link/../ck', 'other/../ck/sub', 'ck/.', 'link/.']) {
      await expect(refuseInputOverlap(path.join(root, o), inputs), o).rejects.toThrow(UsageError);
    }
    for (const o of ['out', 'other/out', 'ck-out', 'link/../out', 'ck/../out']) {
      await expect(refuseInputOverlap(path.join(root, o), inputs), o).resolves.toBeTypeOf('string');
    }
  });

  it('says how the output overlaps, in one line', () => {
    expect(overlap('/a/b', '/a/b')).toBe('is');
    expect(overlap('/a', '/a/b')).toBe('contains');
    expect(overlap('/a/b/c', '/a/b')).toBe('lies inside');
    expect(overlap('/a/bc', '/a/b')).toBeUndefined();
  });
});
