import { openSync, closeSync, writeSync, ftruncateSync, readFileSync, writeFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCheckpointSet } from '../../src/checkpoints/checkpoint-set.ts';
import { planSafetensors } from '../../src/formats/safetensors.ts';
import { TrajectoryReader } from '../../src/trajectory/trajectory-reader.ts';
import { planTrajectory } from '../../src/trajectory/plan-trajectory.ts';
import { copyInto, fixture, tempDir } from '../helpers/tmp.ts';

describe('trajectory access beyond 2 GiB', () => {
  it('reads elements of a 2.4 GB (sparse) safetensors checkpoint by position', () => {
    const dir = tempDir();
    const count = 600_000_000; // 2.4 GB of F32
    for (const [i, marker] of [1.5, 2.5, 3.5].entries()) {
      const plan = planSafetensors([{ name: 'big', dtype: 'F32', shape: [count] }]);
      const file = path.join(dir, `epoch_${i + 1}.safetensors`);
      const fd = openSync(file, 'w');
      writeSync(fd, plan.header, 0, plan.header.length, 0);
      ftruncateSync(fd, plan.totalBytes); // sparse: zeros except what we write
      const v = new Float32Array([marker, marker + 1]);
      writeSync(fd, new Uint8Array(v.buffer), 0, 8, plan.header.length + (count - 2) * 4);
      closeSync(fd);
    }
    return loadCheckpointSet(dir).then((set) => {
      expect(set.checkpoints[0].bytes).toBeGreaterThan(2 ** 31);
      const r = new TrajectoryReader(planTrajectory(set));
      const out = new Float32Array(3 * 3);
      r.readRange(count - 3, count, out);
      r.close();
      expect(Array.from(out)).toEqual([0, 1.5, 2.5, 0, 2.5, 3.5, 0, 3.5, 4.5]);
    });
  });
});

describe('tfjs weight names from different processes', () => {
  it('matches names that differ only by layer counters by position, and says so once', async () => {
    const src = fixture('fmnist-mlp', 'checkpoints');
    const dir = tempDir();
    readdirSync(src).sort().slice(0, 3).forEach((e, k) => {
      const d = copyInto(dir, path.join(src, e));
      const model = JSON.parse(readFileSync(path.join(d, 'model.json'), 'utf8'));
      // As tfjs names auto-generated layers: dense_Dense<counter>, per process.
      for (const g of model.weightsManifest) for (const w of g.weights) w.name = w.name.replace(/^dense(\d)/, (_: string, i: string) => `dense_Dense${Number(i) + 3 * k}`);
      writeFileSync(path.join(d, 'model.json'), JSON.stringify(model));
    });
    const set = await loadCheckpointSet(dir);
    expect(set.notes.filter((n) => n.includes('matched them by position'))).toHaveLength(1);
    expect(set.space.tensors.map((t) => t.name)).toContain('dense_Dense1/kernel');
    expect(set.checkpoints[2].contents.tensors.map((t) => t.name)).toEqual(set.checkpoints[0].contents.tensors.map((t) => t.name));
  });

  it('still refuses real differences', async () => {
    const src = fixture('fmnist-mlp', 'checkpoints');
    const dir = tempDir();
    readdirSync(src).sort().slice(0, 3).forEach((e, k) => {
      const d = copyInto(dir, path.join(src, e));
      if (k !== 2) return;
      const model = JSON.parse(readFileSync(path.join(d, 'model.json'), 'utf8'));
      model.weightsManifest[0].weights[0].name = 'something_else/kernel';
      writeFileSync(path.join(d, 'model.json'), JSON.stringify(model));
    });
    await expect(loadCheckpointSet(dir)).rejects.toThrow(/epoch_003.*something_else\/kernel is not in the first checkpoint/);
  });
});
