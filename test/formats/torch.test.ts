/**
 * PyTorch checkpoints: the inert pickle reader, the torch layer (tensor views → spans, dtypes,
 * ZIP64, torch 2.x records, nesting rules) and the refusal of hostile files, on files written
 * by real PyTorch 1.13 (fixtures/torch/, made by test/tools/torch-fixtures.py).
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../src/errors.ts';
import { readNpzCheckpoint } from '../../src/formats/npz.ts';
import { PickleError, PyDict, PyGlobal, PyObject, PyTuple, readPickle } from '../../src/formats/pickle.ts';
import { collectTensors, readShardedTorch, readTorchCheckpoint, selectTensorTree } from '../../src/formats/torch.ts';
import type { StoredTensor } from '../../src/formats/types.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

const torchFixture = (...p: string[]) => fixture('torch', ...p);

function tensorBytes(t: StoredTensor): Buffer {
  return Buffer.concat(t.spans.map((s) => readFileSync(s.path).subarray(s.offset, s.offset + s.length)));
}

async function refusal(file: string, options = {}): Promise<InputError> {
  try {
    await readTorchCheckpoint(file, options);
  } catch (e) {
    expect(e).toBeInstanceOf(InputError);
    return e as InputError;
  }
  throw new Error(`${file} was not refused`);
}

describe('pickle reader', () => {
  const b = (...parts: (number[] | string)[]) => Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...Buffer.from(p, 'latin1')] : p)));

  it('builds dicts, tuples, memo references and integers without calling anything', () => {
    // PROTO 2, EMPTY_DICT, BINPUT 0, MARK, 'a' → (1, -2 as LONG1), 'b' → memo 1 (the tuple), SETITEMS, STOP
    const data = b([0x80, 2, 0x7d, 0x71, 0], [0x28], [0x8c, 1], 'a', [0x4b, 1, 0x8a, 1, 0xfe, 0x86, 0x71, 1], [0x8c, 1], 'b', [0x68, 1], [0x75, 0x2e]);
    const v = readPickle(data);
    expect(v).toBeInstanceOf(PyDict);
    const d = v as PyDict;
    const a = d.get('a') as PyTuple;
    expect(a.items).toEqual([1, -2]);
    expect(d.get('b')).toBe(a);
  });

  it('turns GLOBAL + REDUCE into an inert node naming the callee', () => {
    const data = b([0x80, 2], [0x63], 'functools\npartial\n', [0x29, 0x52, 0x2e]);
    const v = readPickle(data) as PyObject;
    expect(v).toBeInstanceOf(PyObject);
    expect((v.callee as PyGlobal).qualified).toBe('functools.partial');
  });

  it('refuses code-running globals as soon as they are named', () => {
    for (const [mod, name] of [['posix', 'system'], ['builtins', 'eval'], ['subprocess', 'Popen'], ['builtins', 'getattr']]) {
      expect(() => readPickle(b([0x80, 2, 0x63], `${mod}\n${name}\n`, [0x2e]))).toThrow(PickleError);
    }
    expect(readPickle(b([0x80, 2, 0x63], 'builtins\nset\n', [0x2e]))).toBeInstanceOf(PyGlobal);
  });

  it('refuses truncation, unknown opcodes and the extension registry with one line', () => {
    expect(() => readPickle(b([0x80, 2, 0x7d]))).toThrow(/without a STOP/);
    expect(() => readPickle(b([0x80, 2, 0x58, 9, 0, 0, 0], 'ab'))).toThrow(/truncated/);
    expect(() => readPickle(b([0x80, 2, 0xff]))).toThrow(/unknown pickle opcode 0xff/);
    expect(() => readPickle(b([0x80, 2, 0x82, 1, 0x2e]))).toThrow(/extension registry/);
    expect(() => readPickle(b([0x80, 2, 0x68, 7, 0x2e]))).toThrow(/memo key 7/);
  });
});

describe('torch.save archives', () => {
  it('reads a plain state_dict with names as stored, every tensor one span', async () => {
    const c = await readTorchCheckpoint(torchFixture('plain', 'epoch_1.pt'));
    expect(c.format).toBe('torch');
    expect(c.tensors.map((t) => `${t.name} ${t.dtype} [${t.shape}]`)).toEqual([
      'fc1.weight F32 [16,8]', 'fc1.bias F32 [16]', 'bn.weight F32 [16]', 'bn.bias F32 [16]', 'bn.running_mean F32 [16]',
      'bn.running_var F32 [16]', 'bn.num_batches_tracked I64 []', 'fc2.weight F32 [4,16]', 'fc2.bias F32 [4]',
    ]);
    expect(c.tensors.every((t) => t.spans.length === 1)).toBe(true);
  });

  it('gives the same bytes as the safetensors file of the same weights', async () => {
    const { readSafetensorsHeader } = await import('../../src/formats/safetensors.ts');
    const pt = await readTorchCheckpoint(torchFixture('plain', 'epoch_3.pt'));
    const st = await readSafetensorsHeader(torchFixture('plain-safetensors', 'epoch_3.safetensors'));
    for (const t of pt.tensors) expect(tensorBytes(t).equals(tensorBytes(st.tensors.find((s) => s.name === t.name)!))).toBe(true);
  });

  for (const file of ['kinds.pt', 'kinds-zip64.pt', 'kinds-torch2.pt']) {
    it(`${file}: every dtype, shared storages and strided views match torch's contiguous values`, async () => {
      const c = await readTorchCheckpoint(torchFixture(file));
      const expected = await readNpzCheckpoint(torchFixture('kinds-expected.npz'));
      expect(c.tensors.map((t) => t.name)).toEqual(expected.tensors.map((t) => t.name));
      const dtypes = Object.fromEntries(c.tensors.map((t) => [t.name, t.dtype]));
      expect(dtypes).toMatchObject({ f32: 'F32', f64: 'F64', f16: 'F16', bf16: 'BF16', i64: 'I64', i32: 'I32', i16: 'I16', i8: 'I8', u8: 'U8', bool: 'BOOL' });
      for (const t of c.tensors) {
        const e = expected.tensors.find((x) => x.name === t.name)!;
        expect(t.shape, t.name).toEqual(e.shape);
        expect(tensorBytes(t).equals(tensorBytes(e)), t.name).toBe(true);
      }
      // The views share base's storage entry.
      const base = c.tensors.find((t) => t.name === 'base')!;
      const row = c.tensors.find((t) => t.name === 'row_slice')!;
      expect(row.spans[0].offset).toBe(base.spans[0].offset + 6 * 4);
    });
  }

  it('copies a view with too many runs to C order in scratch, with the same values', async () => {
    const c = await readTorchCheckpoint(torchFixture('kinds.pt'), { maxSpans: 2 });
    const expected = await readNpzCheckpoint(torchFixture('kinds-expected.npz'));
    const t = c.tensors.find((x) => x.name === 'transposed')!;
    expect(t.spans).toHaveLength(1);
    expect(t.spans[0].path).not.toBe(torchFixture('kinds.pt'));
    expect(tensorBytes(t).equals(tensorBytes(expected.tensors.find((x) => x.name === 'transposed')!))).toBe(true);
  });

  it('nested checkpoints: model_state_dict first, --state-key ema on request, optimizer never', async () => {
    const c = await readTorchCheckpoint(torchFixture('nested.pt'));
    expect(c.tensors[0].name).toBe('module.fc1.weight');
    const ignored = (c.extras!.torch as { ignored: { name: string }[] }).ignored.map((i) => i.name);
    expect(ignored).toEqual(['epoch', 'ema', 'optimizer_state_dict']);
    const ema = await readTorchCheckpoint(torchFixture('nested.pt'), { stateKey: 'ema' });
    expect(ema.tensors[0].name).toBe('fc1.weight');
    expect((await refusal(torchFixture('nested.pt'), { stateKey: 'nope' })).message).toMatch(/--state-key nope: no such key/);
    const none = await refusal(torchFixture('no-rule.pt'));
    expect(none.message).toMatch(/candidates: encoder, decoder/);
    const enc = await readTorchCheckpoint(torchFixture('no-rule.pt'), { stateKey: 'encoder' });
    expect(enc.tensors.map((t) => t.name)).toEqual(['w']);
  });

  it('Lightning 2.x checkpoints: state_dict read, hyper_parameters placeholders ignored, steps as metadata', async () => {
    const c = await readTorchCheckpoint(torchFixture('lightning', 'checkpoints', 'epoch=1-step=200.ckpt'));
    expect(c.tensors).toHaveLength(9);
    expect(c.tensors[0].name).toBe('model.fc1.weight');
    expect(c.metadata).toEqual({ global_step: '200', epoch: '1' });
    const ignored = (c.extras!.torch as { ignored: { name: string }[] }).ignored.map((i) => i.name);
    expect(ignored).toEqual(expect.arrayContaining(['hyper_parameters', 'optimizer_states', 'loops', 'callbacks', 'lr_schedulers']));
  });

  it('a sharded pytorch_model.bin.index.json reads every shard', async () => {
    const c = await readShardedTorch(torchFixture('hf-sharded', 'checkpoint-20', 'pytorch_model.bin.index.json'));
    const plain = await readTorchCheckpoint(torchFixture('hf', 'checkpoint-20', 'pytorch_model.bin'));
    expect(c.tensors.map((t) => t.name).sort()).toEqual(plain.tensors.map((t) => t.name).sort());
    for (const t of c.tensors) expect(tensorBytes(t).equals(tensorBytes(plain.tensors.find((p) => p.name === t.name)!))).toBe(true);
  });

  it('refuses the legacy format and TorchScript with a clear line', async () => {
    expect((await refusal(torchFixture('refused', 'legacy.pt'))).rule).toBe('torch-legacy');
    expect((await refusal(torchFixture('refused', 'torchscript.pt'))).rule).toBe('torch-torchscript');
  });
});

describe('hostile torch files', () => {
  const cases: [string, string, RegExp][] = [
    ['system.pt', 'pickle-global-forbidden', /posix\.system/],
    ['eval-in-hparams.pt', 'pickle-global-forbidden', /eval/],
    ['unknown-global.pt', 'torch-global-refused', /'fc1\.bias': __main__\.LitConfig/],
    ['truncated-pkl.pt', 'pickle-truncated', /truncated/],
    ['truncated-file.pt', 'torch-corrupt', /truncated/],
    ['missing-storage.pt', 'torch-storage-missing', /storage '0' is missing/],
    ['short-storage.pt', 'torch-storage-short', /has 256 bytes but its F32 storage needs 512/],
    ['compressed-storage.pt', 'torch-storage-compressed', /compressed/],
    ['traversal.pt', 'torch-path-traversal', /\.\.\/\.\.\/cmd-pwned/],
  ];
  for (const [file, rule, message] of cases) {
    it(`${file} is refused with one line naming the file`, async () => {
      const e = await refusal(torchFixture('hostile', file));
      expect(e.rule).toBe(rule);
      expect(e.message).toMatch(message);
      expect(e.message.startsWith(torchFixture('hostile', file))).toBe(true);
      expect(e.message).not.toContain('\n');
    });
  }

  it.skipIf(!haveTools('python3-torch'))('the payloads are real: Python unpickling system.pt and eval-in-hparams.pt creates the file', () => {
    for (const file of ['system.pt', 'eval-in-hparams.pt']) {
      const cwd = tempDir();
      // Plain Python unpickling, with storages made the way torch.load's persistent_load makes them.
      const py = [
        'import io, pickle, zipfile, sys, torch',
        'class U(pickle.Unpickler):',
        '    def persistent_load(self, pid): return pid[1](pid[4])',
        'z = zipfile.ZipFile(sys.argv[1])',
        "U(io.BytesIO(z.read([n for n in z.namelist() if n.endswith('data.pkl')][0]))).load()",
      ].join('\n');
      spawnSync(PYTHON, ['-c', py, torchFixture('hostile', file)], { cwd, encoding: 'utf8' });
      expect(existsSync(path.join(cwd, 'cmd-pwned')), file).toBe(true);
    }
  });
});

describe('recognised by content, never by extension', () => {
  it('a torch.save zip with any name is a torch checkpoint; a non-zip .bin is not', async () => {
    const { discoverCheckpoints } = await import('../../src/checkpoints/discover.ts');
    const { copyFileSync, writeFileSync } = await import('node:fs');
    const dir = tempDir();
    for (let i = 1; i <= 3; i++) copyFileSync(torchFixture('plain', `epoch_${i}.pt`), path.join(dir, `run_${i}.weights`));
    writeFileSync(path.join(dir, 'group1-shard1of1.bin'), Buffer.alloc(64, 1));
    const found = await discoverCheckpoints(dir);
    expect(found.format).toBe('torch');
    expect(found.sources.map((s) => s.name)).toEqual(['run_1.weights', 'run_2.weights', 'run_3.weights']);
    expect(found.ignored.map((i) => i.name)).toEqual(['group1-shard1of1.bin']);
  });
});

describe('pickle reader under corruption', () => {
  it('every mutated data.pkl is read or refused with a PickleError or InputError, never anything else', async () => {
    const { openTorchArchive } = await import('../../src/formats/torch-zip.ts');
    const archive = await openTorchArchive(torchFixture('lightning', 'checkpoints', 'epoch=0-step=100.ckpt'));
    const original = archive.pickle;
    archive.close();
    let seed = 12345;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed % n;
    };
    let refused = 0;
    for (let k = 0; k < 2000; k++) {
      const data = Uint8Array.from(original);
      const edits = 1 + rand(4);
      for (let e = 0; e < edits; e++) data[rand(data.length)] = rand(256);
      const cut = rand(4) === 0 ? data.subarray(0, rand(data.length)) : data;
      try {
        // The torch layer must turn any surviving tree into tensors or an InputError, nothing else.
        const { tree, key } = selectTensorTree('x.ckpt', readPickle(cut), {});
        collectTensors('x.ckpt', tree, key === '');
      } catch (err) {
        if (!(err instanceof PickleError) && !(err instanceof InputError)) throw new Error(`mutation ${k}: ${String(err)}`);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(0);
  });
});

describe('cyclic trees', () => {
  it('a dict that contains itself (via the memo) is refused, not recursed forever', () => {
    // PROTO 2, EMPTY_DICT, BINPUT 0, 'a', BINGET 0, SETITEM, STOP  →  d = {}; d['a'] = d
    const data = Uint8Array.from([0x80, 2, 0x7d, 0x71, 0, 0x8c, 1, 0x61, 0x68, 0, 0x73, 0x2e]);
    const root = readPickle(data);
    expect(() => selectTensorTree('cycle.pt', root, {})).toThrow(InputError);
    expect(() => selectTensorTree('cycle.pt', root, { stateKey: 'a.a.a' })).not.toThrow();
    const { tree } = selectTensorTree('cycle.pt', root, { stateKey: 'a' });
    expect(() => collectTensors('cycle.pt', tree, false)).not.toThrow();
  });
});
