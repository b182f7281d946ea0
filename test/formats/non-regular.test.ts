/**
 * Issue 12 point 2: every reader refuses a FIFO named like a checkpoint file without blocking
 * (before the fix, open(2) waited for a writer forever and signals were not handled).
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { readFlatNpyCheckpoint, readNpyDirCheckpoint } from '../../src/formats/npy.ts';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { readSafetensorsHeader } from '../../src/formats/safetensors.ts';
import { readTfjsCheckpoint } from '../../src/formats/tfjs.ts';
import { ElementReader } from '../../src/trajectory/element-reader.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

function fifo(p: string): string {
  const r = spawnSync('mkfifo', [p]);
  expect(r.status, String(r.stderr)).toBe(0);
  return p;
}

/** Fails (instead of hanging the test run) when `p` does not settle within 5 s. */
async function settlesRejected(p: Promise<unknown>): Promise<unknown> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise((_, reject) => (timer = setTimeout(() => reject(new Error('blocked on the FIFO')), 5000)));
  try {
    return await Promise.race([p.then(() => new Error('accepted a FIFO'), (e: unknown) => e), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

describe('readers refuse FIFOs without blocking', () => {
  const cases: [string, (f: string) => Promise<unknown>][] = [
    ['epoch_003.safetensors', (f) => readSafetensorsHeader(f)],
    ['epoch_003.npz', (f) => readNpzCheckpoint(f)],
    ['epoch_003.npy', (f) => readFlatNpyCheckpoint(f)],
  ];
  for (const [name, read] of cases) {
    it(`${name}: one-line InputError naming the file`, async () => {
      const f = fifo(path.join(tempDir(), name));
      const e = await settlesRejected(read(f));
      expect(e).toBeInstanceOf(InputError);
      expect((e as InputError).message).toContain(f);
      expect((e as InputError).message).toMatch(/regular file/);
    });
  }

  it('a FIFO member of an npy-folder checkpoint', async () => {
    const d = tempDir();
    fifo(path.join(d, 'w.npy'));
    const e = await settlesRejected(readNpyDirCheckpoint(d));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toMatch(/w\.npy.*regular file/);
  });

  it('a tfjs shard that is a FIFO', async () => {
    const d = tempDir();
    const src = fixture('fmnist-mlp', 'checkpoints', 'epoch_001');
    for (const f of readdirSync(src)) if (f !== 'weights.bin') copyFileSync(path.join(src, f), path.join(d, f));
    fifo(path.join(d, 'weights.bin'));
    const e = await settlesRejected(readTfjsCheckpoint(path.join(d, 'model.json')));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).message).toContain('weights.bin');
  });

  it('the positioned reader refuses a file swapped for a FIFO after its header was read', async () => {
    const d = tempDir();
    const f = path.join(d, 'epoch_001.safetensors');
    copyFileSync(fixture('resnet20-bn-safetensors', 'epoch_001.safetensors'), f);
    const c = await readSafetensorsHeader(f);
    unlinkSync(f);
    fifo(f);
    const reader = new ElementReader();
    const t = c.tensors.find((x) => x.dtype === 'F32')!;
    expect(() => reader.read(t, 0, 1, new Float32Array(1), 0)).toThrow(/regular file/);
    reader.close();
  });
});

describe('tfjs shard symlinks (issue 12 point 8)', () => {
  it('a shard that is a symlink leading outside the model folder is refused, as for safetensors', async () => {
    const root = tempDir();
    const d = path.join(root, 'epoch_001');
    mkdirSync(d);
    const src = fixture('fmnist-mlp', 'checkpoints', 'epoch_001');
    copyFileSync(path.join(src, 'model.json'), path.join(d, 'model.json'));
    copyFileSync(path.join(src, 'weights.bin'), path.join(root, 'outside.bin'));
    spawnSync('ln', ['-s', path.join(root, 'outside.bin'), path.join(d, 'weights.bin')]);
    const e = await settlesRejected(readTfjsCheckpoint(path.join(d, 'model.json')));
    expect(e).toBeInstanceOf(InputError);
    expect((e as InputError).rule).toBe('shard-path-escape');
    expect((e as InputError).message).toMatch(/weights\.bin.*symlink leading outside/);
  });

  it('a symlink to a shard inside the folder is still read', async () => {
    const d = tempDir();
    const src = fixture('fmnist-mlp', 'checkpoints', 'epoch_001');
    copyFileSync(path.join(src, 'model.json'), path.join(d, 'model.json'));
    copyFileSync(path.join(src, 'weights.bin'), path.join(d, 'real.bin'));
    spawnSync('ln', ['-s', 'real.bin', path.join(d, 'weights.bin')]);
    const c = await readTfjsCheckpoint(path.join(d, 'model.json'));
    expect(c.tensors.length).toBeGreaterThan(0);
  });
});
