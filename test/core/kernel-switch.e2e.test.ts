/**
 * The one kernel switch through the built CLI: CMD_KERNEL=js runs every kernel, in the worker
 * threads too, as JavaScript (docs/architecture.md, "WebAssembly kernels").
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.ts';
import { fixture, tempDir } from '../helpers/tmp.ts';

const args = (out: string) => ['analyze', fixture('lenet5-fmnist', 'npz'), '-o', out, '--samples', '300', '--modes', '4', '--workers', '2', '-q'];

describe('CMD_KERNEL', () => {
  it('js gives the same model file as WebAssembly; the error sums, added in the workers, differ only by rounding', () => {
    const dir = tempDir();
    const js = runCli(args(path.join(dir, 'js')), { env: { CMD_KERNEL: 'js' } });
    const wasm = runCli(args(path.join(dir, 'wasm')), { env: { CMD_KERNEL: 'wasm' } });
    expect([js.status, wasm.status], js.stderr + wasm.stderr).toEqual([0, 0]);
    expect(JSON.parse(readFileSync(path.join(dir, 'wasm', 'run-info.json'), 'utf8')).analyze.workers).toBe(2);
    const model = (k: string) => readFileSync(path.join(dir, k, 'cmd-model.safetensors'));
    expect(model('js').equals(model('wasm'))).toBe(true); // modes, a, b, refs: bit-identical by design
    const errors = (k: string) => (JSON.parse(readFileSync(path.join(dir, k, 'report.json'), 'utf8')).checkpoints as { relativeError: number }[]).map((c) => c.relativeError);
    const [e1, e2] = [errors('js'), errors('wasm')];
    expect(e1).toHaveLength(25);
    // Pass 2 ran in the worker threads with the other kernel: its sums group the parameters differently.
    expect(e1.filter((e, t) => e !== e2[t]).length).toBeGreaterThan(0);
    e1.forEach((e, t) => expect(Math.abs(e - e2[t])).toBeLessThanOrEqual(1e-12 * e2[t]));
  });

  it('--online: js (the warm-up through a chunk buffer) and WebAssembly (panels read straight into the fit kernel) write the same model', () => {
    const dir = tempDir();
    const online = (out: string) => [...args(out), '--online', '--warmup', '12'];
    const js = runCli(online(path.join(dir, 'js')), { env: { CMD_KERNEL: 'js' } });
    const wasm = runCli(online(path.join(dir, 'wasm')), { env: { CMD_KERNEL: 'wasm' } });
    expect([js.status, wasm.status], js.stderr + wasm.stderr).toEqual([0, 0]);
    const model = (k: string) => readFileSync(path.join(dir, k, 'cmd-model.safetensors'));
    expect(model('js').equals(model('wasm'))).toBe(true);
  });

  it('an unknown value is a usage error: exit 2, one line naming CMD_KERNEL, no output', () => {
    const out = path.join(tempDir(), 'out');
    const r = runCli(args(out), { env: { CMD_KERNEL: 'simd' } });
    expect(r.status).toBe(2);
    expect(r.stderr.trim().split('\n')).toEqual(["cmd: CMD_KERNEL must be auto, wasm or js, got 'simd'"]);
    expect(existsSync(out)).toBe(false);
  });
});
