/**
 * PyTorch folders through the built CLI: inspect/analyze/reconstruct on torch.save state_dicts,
 * Lightning and Hugging Face layouts; the post-hoc result on `.pt` files equals the one on the
 * same weights as safetensors; outputs load into the torch model with
 * `load_state_dict(strict=True)`; hostile files refused with one line, nothing executed, no output.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { haveTools, PYTHON } from '../helpers/optional-tools.ts';
import { fixture, repoRoot, tempDir } from '../helpers/tmp.ts';

const torchFixture = (...p: string[]) => fixture('torch', ...p);

/** A safetensors file's metadata and its data section (everything after the header). */
function splitSafetensors(file: string): { metadata: Record<string, string>; header: Record<string, unknown>; data: Buffer } {
  const b = readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
  const metadata = header.__metadata__ as Record<string, string>;
  delete header.__metadata__;
  return { metadata, header, data: b.subarray(8 + n) };
}

/** Drops what describes the input files rather than the result: folder, format, file names and sizes. */
function withoutSource(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(withoutSource);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) {
      if (['dir', 'format', 'bytes', 'storage', 'provenance'].includes(k)) continue;
      out[k] = k === 'name' && typeof x === 'string' ? x.replace(/\.(pt|safetensors)$/, '') : withoutSource(x);
    }
    return out;
  }
  return v;
}

describe('PyTorch folders end to end', () => {
  it('inspect lists Lightning checkpoints, last.ckpt and the non-tensor entries as ignored', () => {
    const r = runCli(['inspect', torchFixture('lightning', 'checkpoints')]);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/\(torch, 3 checkpoints/);
    expect(r.stdout).toMatch(/last\.ckpt {2}\(Lightning's copy of the latest checkpoint/);
    expect(r.stdout).toMatch(/epoch=0-step=100\.ckpt: hyper_parameters {2}\(outside the tensor tree\)/);
    expect(r.stdout).toMatch(/epoch=0-step=100\.ckpt: optimizer_states {2}\(training state, never model weights\)/);
    expect(r.stdout).toMatch(/model\.fc1\.weight +\[16, 8\] +F32/);
  });

  it('analyze on .pt files gives the same model data and report as on the same weights in safetensors', () => {
    const out = tempDir();
    for (const [dir, o] of [[torchFixture('plain'), 'pt'], [torchFixture('plain-safetensors'), 'st']]) {
      const r = runCli(['analyze', dir, '-o', path.join(out, o), '--modes', '3', '--seed', '0', '--quiet']);
      expect(r.status, r.stderr).toBe(0);
    }
    const pt = splitSafetensors(path.join(out, 'pt', 'cmd-model.safetensors'));
    const st = splitSafetensors(path.join(out, 'st', 'cmd-model.safetensors'));
    expect(pt.data.equals(st.data)).toBe(true);
    expect(pt.header).toEqual(st.header);
    const { 'cmd.source': ptSource, 'cmd.checkpoints': ptCk, ...ptRest } = pt.metadata;
    const { 'cmd.source': stSource, 'cmd.checkpoints': stCk, ...stRest } = st.metadata;
    expect(ptRest).toEqual(stRest);
    expect(JSON.parse(ptSource).format).toBe('torch');
    expect(JSON.parse(stSource).format).toBe('safetensors');
    expect(withoutSource(JSON.parse(ptCk))).toEqual(withoutSource(JSON.parse(stCk)));
    for (const f of ['samples.json', 'sampled-corr.npy']) {
      expect(readFileSync(path.join(out, 'pt', f)).equals(readFileSync(path.join(out, 'st', f))), f).toBe(true);
    }
    const report = (o: string) => withoutSource(JSON.parse(readFileSync(path.join(out, o, 'report.json'), 'utf8')));
    expect(report('pt')).toEqual(report('st'));
  });

  it('reconstruct writes safetensors named for from_pretrained (plain, HF, sharded HF), loadable with load_state_dict(strict=True)', () => {
    const out = tempDir();
    const names: Record<string, string[]> = {};
    for (const [dir, o] of [[torchFixture('plain'), 'plain'], [torchFixture('hf'), 'hf'], [torchFixture('hf-sharded'), 'sharded']]) {
      let r = runCli(['analyze', dir, '-o', path.join(out, o), '--modes', '2', '--quiet']);
      expect(r.status, r.stderr).toBe(0);
      r = runCli(['reconstruct', '-o', path.join(out, o), '--modes', '2', '--checkpoints', 'all', '--quiet']);
      expect(r.status, r.stderr).toBe(0);
      names[o] = readdirSync(path.join(out, o, 'reconstructed'), { recursive: true }).map(String).sort();
    }
    expect(names.plain).toEqual(['avg-last-4.safetensors', 'epoch_1.safetensors', 'epoch_2.safetensors', 'epoch_3.safetensors', 'epoch_4.safetensors']);
    expect(names.hf).toEqual(expect.arrayContaining(['checkpoint-10', path.join('checkpoint-10', 'model.safetensors')]));
    expect(names.sharded).toEqual(
      expect.arrayContaining([
        path.join('checkpoint-20', 'model-00001-of-00002.safetensors'),
        path.join('checkpoint-20', 'model-00002-of-00002.safetensors'),
        path.join('checkpoint-20', 'model.safetensors.index.json'),
      ]),
    );
    expect(names.sharded.some((n) => n.endsWith('.bin'))).toBe(false);
    if (!haveTools('python3-torch')) return;
    // The sharded output loads into the torch model with load_state_dict(strict=True).
    const py = `
import json, struct, sys, numpy as np, torch
sys.path.insert(0, 'test/tools')
from importlib import import_module
Mlp = import_module('torch-fixtures').Mlp
def load(path):
    b = open(path, 'rb').read(); n = struct.unpack('<Q', b[:8])[0]; h = json.loads(b[8:8 + n]); h.pop('__metadata__', None)
    dt = {'F32': np.float32, 'I64': np.int64}
    return {k: torch.from_numpy(np.frombuffer(b[8 + n + v['data_offsets'][0]:8 + n + v['data_offsets'][1]], dtype=dt[v['dtype']]).reshape(v['shape']).copy()) for k, v in h.items()}
folder = sys.argv[1]
index = json.load(open(folder + '/model.safetensors.index.json'))
sd = {}
for shard in sorted(set(index['weight_map'].values())): sd.update(load(folder + '/' + shard))
assert set(sd) == set(index['weight_map'])
m = Mlp(); m.load_state_dict(sd, strict=True)
ref = torch.load('fixtures/torch/hf-sharded/checkpoint-20/pytorch_model-00001-of-00002.bin')
for k, v in ref.items(): assert torch.allclose(sd[k].double(), v.double(), atol=1e-4), k
print('ok', len(sd))
`;

    const p = spawnSync(PYTHON, ['-c', py, path.join(out, 'sharded', 'reconstructed', 'checkpoint-20')], { encoding: 'utf8', cwd: repoRoot });
    expect(p.stderr).toBe('');
    expect(p.stdout.trim()).toBe('ok 9');
  });

  it('--state-key picks a nested dict; without a rule the candidates are listed', () => {
    const dir = tempDir();
    for (let i = 1; i <= 3; i++) cpSync(torchFixture('nested.pt'), path.join(dir, `run_${i}.pt`));
    let r = runCli(['inspect', dir, '--state-key', 'ema']);
    expect(r.status, r.stderr).toBe(0);
    expect(r.stdout, r.stderr).toMatch(/^fc1\.weight /m);
    r = runCli(['inspect', dir]);
    expect(r.stdout, r.stderr).toMatch(/^module\.fc1\.weight /m);
    const bad = tempDir();
    for (let i = 1; i <= 3; i++) cpSync(torchFixture('no-rule.pt'), path.join(bad, `run_${i}.pt`));
    r = runCli(['inspect', bad]);
    expect(r.status, r.stderr).toBe(2);
    expect(r.stderr.trim().split('\n')).toHaveLength(1);
    expect(r.stderr).toMatch(/run_1\.pt: .*--state-key \(candidates: encoder, decoder\)/);
  });
});

describe('hostile PyTorch files through the CLI', () => {
  const files = readdirSync(torchFixture('hostile')).filter((f) => f.endsWith('.pt'));
  it('has every hostile case', () => {
    expect(files.sort()).toEqual(['compressed-storage.pt', 'eval-in-hparams.pt', 'missing-storage.pt', 'short-storage.pt', 'system.pt', 'traversal.pt', 'truncated-file.pt', 'truncated-pkl.pt', 'unknown-global.pt']);
  });
  for (const file of files) {
    it(`${file}: exit 2, one line naming it, nothing executed, no output`, () => {
      const dir = tempDir();
      const input = path.join(dir, 'run');
      cpSync(torchFixture('plain', 'epoch_1.pt'), path.join(input, 'epoch_1.pt'));
      cpSync(torchFixture('plain', 'epoch_2.pt'), path.join(input, 'epoch_2.pt'));
      cpSync(torchFixture('hostile', file), path.join(input, 'epoch_3.pt'));
      const r = runCli(['analyze', input, '-o', path.join(dir, 'out'), '--quiet'], { cwd: dir });
      expect(r.status).toBe(2);
      const lines = r.stderr.trim().split('\n');
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain('epoch_3.pt');
      expect(r.stdout).toBe('');
      expect(existsSync(path.join(dir, 'out'))).toBe(false);
      expect(existsSync(path.join(dir, 'cmd-pwned'))).toBe(false);
      expect(existsSync(path.join(input, 'cmd-pwned'))).toBe(false);
    });
  }
});
