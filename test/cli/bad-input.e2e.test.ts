/**
 * Bad input through the built CLI: exit 2, exactly one stderr line naming the file and the
 * broken rule, no stack trace, and no output folder left behind.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { copyInto, fixture, tempDir } from '../helpers/tmp.ts';
import { runCli } from '../helpers/cli.ts';

const resnet = fixture('resnet20-bn-safetensors');
const resnetFiles = readdirSync(resnet).sort();
const lenetNpz = fixture('lenet5-fmnist', 'npz');
const npzFiles = readdirSync(lenetNpz).sort().slice(0, 3);

interface Case {
  name: string;
  /** Builds the input folder; returns the file the error must name. */
  build: (dir: string) => string | Promise<string>;
  mention?: RegExp;
}

/** Two good safetensors checkpoints plus a third written by `mutate` from the third fixture. */
function safetensorsCase(dir: string, mutate: (bytes: Buffer) => Buffer): string {
  copyInto(dir, path.join(resnet, resnetFiles[0]));
  copyInto(dir, path.join(resnet, resnetFiles[1]));
  const bad = path.join(dir, resnetFiles[2]);
  writeFileSync(bad, mutate(readFileSync(path.join(resnet, resnetFiles[2]))));
  return bad;
}

/** Rewrites the JSON header (keeping the data) with `edit`, re-padding to the same length when possible. */
function editHeader(edit: (h: Record<string, any>) => void, keepLength = true) {
  return (bytes: Buffer): Buffer => {
    const n = Number(bytes.readBigUInt64LE(0));
    const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8'));
    edit(header);
    let text = JSON.stringify(header);
    if (keepLength && text.length <= n) text = text.padEnd(n, ' ');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(Buffer.byteLength(text)));
    return Buffer.concat([len, Buffer.from(text), bytes.subarray(8 + n)]);
  };
}

function firstF32(h: Record<string, any>): string {
  return Object.keys(h).find((k) => k !== '__metadata__' && h[k].dtype === 'F32' && h[k].shape.length === 4)!;
}

const cases: Case[] = [
  { name: 'empty folder', build: (d) => d, mention: /no checkpoints found/ },
  {
    name: 'mixed formats',
    build: (d) => {
      copyInto(d, path.join(resnet, resnetFiles[0]));
      copyInto(d, path.join(lenetNpz, npzFiles[0]));
      return d;
    },
    mention: /mixed checkpoint formats/,
  },
  { name: 'zero-byte file', build: (d) => safetensorsCase(d, () => Buffer.alloc(0)) },
  { name: 'truncated file', build: (d) => safetensorsCase(d, (b) => b.subarray(0, b.length - 100)) },
  { name: 'header length beyond the file', build: (d) => safetensorsCase(d, (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(BigInt(b.length)); return c; }) },
  { name: 'huge header length', build: (d) => safetensorsCase(d, (b) => { const c = Buffer.from(b); c.writeBigUInt64LE(2n ** 62n); return c; }) },
  { name: 'non-JSON header', build: (d) => safetensorsCase(d, (b) => { const c = Buffer.from(b); c.write('{"oops', 8); return c; }) },
  { name: 'overlapping offsets', build: (d) => safetensorsCase(d, editHeader((h) => { const k = firstF32(h); h[k].data_offsets[0] -= 4; h[k].data_offsets[1] -= 4; })) },
  { name: 'out-of-bounds offsets', build: (d) => safetensorsCase(d, editHeader((h) => { const keys = Object.keys(h).filter((k) => k !== '__metadata__'); const last = keys.reduce((a, b) => (h[a].data_offsets[1] > h[b].data_offsets[1] ? a : b)); h[last].data_offsets[1] += 1024; })) },
  { name: 'gap before data', build: (d) => safetensorsCase(d, editHeader((h) => { for (const k of Object.keys(h)) if (k !== '__metadata__') { h[k].data_offsets[0] += 8; h[k].data_offsets[1] += 8; } })) },
  { name: 'unknown dtype', build: (d) => safetensorsCase(d, editHeader((h) => { h[firstF32(h)].dtype = 'F33'; })), mention: /dtype/ },
  { name: 'byte length differs from shape', build: (d) => safetensorsCase(d, editHeader((h) => { const k = firstF32(h); h[k].shape[0] += 1; })) },
  { name: 'negative dimension', build: (d) => safetensorsCase(d, editHeader((h) => { const k = firstF32(h); h[k].shape[0] = -h[k].shape[0]; })) },
  { name: 'metadata value not a string', build: (d) => safetensorsCase(d, editHeader((h) => { h.__metadata__ = { epoch: 3 }; })), mention: /epoch/ },
  {
    name: 'npy bad magic',
    build: (d) => {
      const src = fixture('lenet5-fmnist', 'flat');
      for (const f of readdirSync(src).sort().slice(0, 2)) copyInto(d, path.join(src, f));
      const bad = path.join(d, 'epoch_003.npy');
      const b = Buffer.from(readFileSync(path.join(src, 'epoch_003.npy')));
      b.write('XNUMPY', 0, 'latin1');
      writeFileSync(bad, b);
      return bad;
    },
  },
  {
    name: 'npy truncated',
    build: (d) => {
      const src = fixture('lenet5-fmnist', 'flat');
      for (const f of readdirSync(src).sort().slice(0, 2)) copyInto(d, path.join(src, f));
      const bad = path.join(d, 'epoch_003.npy');
      writeFileSync(bad, readFileSync(path.join(src, 'epoch_003.npy')).subarray(0, 5000));
      return bad;
    },
  },
  {
    name: 'npz truncated member',
    build: (d) => {
      for (const f of npzFiles.slice(0, 2)) copyInto(d, path.join(lenetNpz, f));
      const bad = path.join(d, npzFiles[2]);
      const b = readFileSync(path.join(lenetNpz, npzFiles[2]));
      writeFileSync(bad, b.subarray(0, b.length - 2000));
      return bad;
    },
  },
  {
    name: 'npz corrupt member',
    build: (d) => {
      for (const f of npzFiles.slice(0, 2)) copyInto(d, path.join(lenetNpz, f));
      const bad = path.join(d, npzFiles[2]);
      const b = Buffer.from(readFileSync(path.join(lenetNpz, npzFiles[2])));
      b.write('XXXX', 0, 'latin1'); // first local header signature
      b.write('\x93NUMPZ', b.indexOf('\x93NUMPY', 0, 'latin1'), 'latin1');
      writeFileSync(bad, b);
      return bad;
    },
  },
  {
    name: 'npy object array (pickle) refused',
    build: (d) => {
      for (const e of ['epoch_1', 'epoch_2', 'epoch_3']) {
        mkdirSync(path.join(d, e));
        const header = "{'descr': '|O', 'fortran_order': False, 'shape': (2,), }";
        const padded = header.padEnd(118 - 1, ' ') + '\n';
        const h = Buffer.alloc(10);
        h.write('\x93NUMPY', 0, 'latin1');
        h[6] = 1;
        h.writeUInt16LE(padded.length, 8);
        writeFileSync(path.join(d, e, 'w.npy'), Buffer.concat([h, Buffer.from(padded, 'latin1'), Buffer.from('\x80\x04K\x01.', 'latin1')]));
      }
      return path.join(d, 'epoch_1', 'w.npy');
    },
    mention: /pickle|object/i,
  },
  ...tfjsCases(),
  {
    name: 'unreadable file',
    build: (d) => {
      copyInto(d, path.join(resnet, resnetFiles[0]));
      copyInto(d, path.join(resnet, resnetFiles[1]));
      const bad = path.join(d, resnetFiles[2]);
      symlinkSync(path.join(d, 'does-not-exist'), bad);
      return bad;
    },
  },
  {
    name: 'fewer than 3 checkpoints',
    build: (d) => {
      copyInto(d, path.join(resnet, resnetFiles[0]));
      copyInto(d, path.join(resnet, resnetFiles[1]));
      return d;
    },
    mention: /at least 3/,
  },
  {
    name: 'index.json shard path outside the folder refused',
    build: (d) => {
      for (const [i, f] of resnetFiles.entries()) {
        const sub = path.join(d, `checkpoint-${i + 1}`);
        mkdirSync(sub);
        copyInto(sub, path.join(resnet, f), 'model-00001-of-00001.safetensors');
        const header = JSON.parse(readFileSync(path.join(resnet, f)).subarray(8, 8 + Number(readFileSync(path.join(resnet, f)).readBigUInt64LE(0))).toString());
        const map = Object.fromEntries(Object.keys(header).filter((k) => k !== '__metadata__').map((k) => [k, i === 2 ? '../../outside.safetensors' : 'model-00001-of-00001.safetensors']));
        writeFileSync(path.join(sub, 'model.safetensors.index.json'), JSON.stringify({ metadata: {}, weight_map: map }));
      }
      return path.join(d, 'checkpoint-3', 'model.safetensors.index.json');
    },
    mention: /outside|escape/i,
  },
];

function tfjsCases(): Case[] {
  const src = fixture('fmnist-mlp', 'checkpoints');
  const epochs = readdirSync(src).sort().slice(0, 3);
  const build = (mutate: (dir: string) => string) => (d: string) => {
    for (const e of epochs) copyInto(d, path.join(src, e));
    return mutate(path.join(d, epochs[2]));
  };
  return [
    { name: 'model.json not JSON', build: build((e) => { writeFileSync(path.join(e, 'model.json'), '{"format": "layers-model",'); return path.join(e, 'model.json'); }) },
    { name: 'model.json names a missing shard', build: build((e) => { const j = JSON.parse(readFileSync(path.join(e, 'model.json'), 'utf8')); j.weightsManifest[0].paths = ['nope.bin']; writeFileSync(path.join(e, 'model.json'), JSON.stringify(j)); return path.join(e, 'nope.bin'); }) },
    { name: 'model.json names a short shard', build: build((e) => { const w = path.join(e, 'weights.bin'); writeFileSync(w, readFileSync(w).subarray(0, 1000)); return w; }) },
    {
      name: 'model.json shard path outside the folder refused',
      build: build((e) => { const j = JSON.parse(readFileSync(path.join(e, 'model.json'), 'utf8')); j.weightsManifest[0].paths = ['../../../etc/passwd']; writeFileSync(path.join(e, 'model.json'), JSON.stringify(j)); return path.join(e, 'model.json'); }),
      mention: /outside|escape/i,
    },
  ];
}

/** A real checkpoint re-encoded by our writer with one tensor changed. */
async function rewritten(dir: string, edit: (ts: { name: string; dtype: any; shape: number[]; data: Uint8Array }[]) => void): Promise<string> {
  const { readSafetensorsHeader, writeSafetensors } = await import('../../src/formats/safetensors.ts');
  copyInto(dir, path.join(resnet, resnetFiles[0]));
  copyInto(dir, path.join(resnet, resnetFiles[1]));
  const src = path.join(resnet, resnetFiles[2]);
  const c = await readSafetensorsHeader(src);
  const buf = readFileSync(src);
  const ts = c.tensors.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape], data: new Uint8Array(buf.subarray(t.spans[0].offset, t.spans[0].offset + t.spans[0].length)) }));
  edit(ts);
  const bad = path.join(dir, resnetFiles[2]);
  await writeSafetensors(bad, ts, c.metadata);
  return bad;
}

function tensorCases(): Case[] {
  return [
    { name: 'tensor missing in one checkpoint', build: (d) => rewritten(d, (ts) => ts.splice(ts.findIndex((t) => t.name.endsWith('running_mean')), 1)), mention: /running_mean.*missing/ },
    {
      name: 'shape mismatch across checkpoints',
      build: (d) => rewritten(d, (ts) => { const t = ts.find((x) => x.dtype === 'F32' && x.shape.length === 4)!; t.shape = [t.shape[0] * t.shape[1], t.shape[2], t.shape[3]]; }),
      mention: /\[.*\] F32 but \[.*\] F32/,
    },
  ];
}

describe('bad input through the CLI', () => {
  for (const c of [...cases, ...tensorCases()]) {
    it(`${c.name}: exit 2, one stderr line naming the file, no output`, async () => {
      const dir = tempDir();
      const input = path.join(dir, 'ckpts');
      mkdirSync(input);
      const file = await c.build(input);
      const out = path.join(dir, 'out');
      const r = runCli(['analyze', input, '-o', out, '--samples', '100', '--modes', '3']);
      expect(r.status, r.stderr).toBe(2);
      const lines = r.stderr.split('\n').filter(Boolean);
      expect(lines, r.stderr).toHaveLength(1);
      expect(lines[0]).not.toMatch(/\bat .*\.(js|ts):\d+/);
      expect(lines[0]).toContain(file === input ? input : path.basename(file));
      if (c.mention) expect(lines[0]).toMatch(c.mention);
      expect(r.stdout).toBe('');
      expect(existsSync(out)).toBe(false);
      expect(readdirSync(dir).filter((f) => f.includes('partial'))).toEqual([]);
    });
  }

  it('a usage error exits 2', () => {
    const r = runCli(['analyze']);
    expect(r.status).toBe(2);
    const bad = runCli(['analyze', lenetNpz, '--modes', 'zero']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toMatch(/--modes/);
  });

  it('never modifies the input files', () => {
    const dir = tempDir();
    for (const f of npzFiles) copyInto(dir, path.join(lenetNpz, f));
    const before = npzFiles.map((f) => readFileSync(path.join(dir, f)));
    const out = path.join(tempDir(), 'o');
    expect(runCli(['analyze', dir, '-o', out, '--samples', '200', '--modes', '4', '-q']).status).toBe(0);
    npzFiles.forEach((f, i) => expect(readFileSync(path.join(dir, f)).equals(before[i])).toBe(true));
    expect(readdirSync(dir).sort()).toEqual([...npzFiles].sort());
  });
});
