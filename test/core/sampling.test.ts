import { describe, expect, it } from 'vitest';
import { chooseScheme, drawSamples, planBalancedSample } from '../../src/core/sampling.ts';

/** kuangliu CIFAR ResNet18 with track_running_stats=False: state_dict tensors in order (docs/method.md §1, layer order). */
function resnet18Layers(): { name: string; size: number }[] {
  const layers: { name: string; size: number }[] = [];
  const conv = (name: string, cout: number, cin: number, k: number) => layers.push({ name, size: cout * cin * k * k });
  const bn = (name: string, c: number) => layers.push({ name: `${name}.weight`, size: c }, { name: `${name}.bias`, size: c });
  conv('conv1.weight', 64, 3, 3);
  bn('bn1', 64);
  let cin = 64;
  [64, 128, 256, 512].forEach((planes, stage) => {
    for (let blk = 0; blk < 2; blk++) {
      const p = `layer${stage + 1}.${blk}`;
      const stride2 = blk === 0 && stage > 0;
      conv(`${p}.conv1.weight`, planes, cin, 3);
      bn(`${p}.bn1`, planes);
      conv(`${p}.conv2.weight`, planes, planes, 3);
      bn(`${p}.bn2`, planes);
      if (stride2) {
        conv(`${p}.shortcut.0.weight`, planes, cin, 1);
        bn(`${p}.shortcut.1`, planes);
      }
      cin = planes;
    }
  });
  layers.push({ name: 'linear.weight', size: 5120 }, { name: 'linear.bias', size: 10 });
  return layers;
}

/** LeNet5-RGB (channels ×3): c1 3→18 5×5, c2 18→48 5×5, fc1 1200→360, fc2 360→252, fc3 252→10. */
const LENET = [
  ['c1.w', 18 * 3 * 25], ['c1.b', 18], ['c2.w', 48 * 18 * 25], ['c2.b', 48], ['fc1.w', 360 * 1200],
  ['fc1.b', 360], ['fc2.w', 252 * 360], ['fc2.b', 252], ['fc3.w', 10 * 252], ['fc3.b', 10],
] as const;

describe('planBalancedSample', () => {
  it('reproduces the ResNet18 worked example (k=1000, L=62)', () => {
    const layers = resnet18Layers();
    const sizes = layers.map((l) => l.size);
    expect(layers.length).toBe(62);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(11_173_962);
    const plan = planBalancedSample(sizes, 1000);
    const before = Object.fromEntries(layers.map((l, i) => [l.name, plan.countsBeforeRemainder[i]]));
    expect(before['layer4.0.conv2.weight']).toBe(113);
    expect(before['layer4.1.conv1.weight']).toBe(113);
    expect(before['layer4.0.conv1.weight']).toBe(60);
    expect(before['bn1.weight']).toBe(8);
    expect(before['linear.bias']).toBe(8);
    expect(plan.countsBeforeRemainder.reduce((a, b) => a + b, 0)).toBe(985);
    expect(plan.remainder).toBe(15);
    expect(layers[plan.remainderLayer].name).toBe('conv1.weight');
    expect(plan.counts[0]).toBe(23);
    expect(plan.total).toBe(1000);
    expect(plan.counts.reduce((a, b) => a + b, 0)).toBe(1000);
  });

  it('reproduces the LeNet5-RGB counts, remainder to the first tied layer (fc1.b)', () => {
    const sizes = LENET.map(([, n]) => n);
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(548_878);
    const plan = planBalancedSample(sizes, 1000);
    expect(plan.countsBeforeRemainder).toEqual([51, 18, 69, 48, 443, 50, 132, 50, 52, 10]);
    expect(plan.remainder).toBe(77);
    // fc1.b (index 5) and fc2.b (index 7) tie at 50; numpy's unstable argsort picked fc2.b,
    // the stable rule picks the lower layer index.
    expect(LENET[plan.remainderLayer][0]).toBe('fc1.b');
    expect(plan.counts).toEqual([51, 18, 69, 48, 443, 127, 132, 50, 52, 10]);
  });

  it('drops the proportional part when it does not fit, and skips layers without room for the remainder', () => {
    // k=40, L=2: base = 10; prop(big) = trunc(95/100·20) = 19 > 95−10? no → 29; small: prop 0 → 5 (capped by size).
    const plan = planBalancedSample([5, 95], 40);
    expect(plan.countsBeforeRemainder).toEqual([5, 29]);
    // R = 6: the smaller layer (5 → 0 free) cannot take it, the big one can.
    expect(plan.remainderLayer).toBe(1);
    expect(plan.counts).toEqual([5, 35]);
    // No layer has room: the total stays below k, without error.
    const tight = planBalancedSample([3, 3], 12);
    expect(tight.remainderLayer).toBe(-1);
    expect(tight.total).toBeLessThan(12);
  });

  it('uses Python float semantics for int(n_l / N * k / 2)', () => {
    // Python: int(700/1000*180/2) == 62 because 0.7·180/2 = 62.99999999999999 in float64; the
    // exact rational value would give 63.
    const plan = planBalancedSample([700, 300], 180);
    expect(plan.countsBeforeRemainder).toEqual([45 + 62, 45 + 27]);
    expect(plan.remainder).toBe(1);
    expect(plan.remainderLayer).toBe(1); // the smaller count (72) takes it
  });
});

describe('drawSamples', () => {
  it('chooses U when k/2 < L and U_B otherwise', () => {
    expect(chooseScheme(62, 1000)).toBe('U_B');
    expect(chooseScheme(819, 1000)).toBe('U');
    expect(chooseScheme(500, 1000)).toBe('U_B');
  });

  it('draws per layer, in layer order, inside each layer range, deterministically', () => {
    const sizes = LENET.map(([, n]) => n);
    const a = drawSamples({ layerSizes: sizes, k: 1000, seed: 3 });
    const b = drawSamples({ layerSizes: sizes, k: 1000, seed: 3 });
    const c = drawSamples({ layerSizes: sizes, k: 1000, seed: 4 });
    expect(a.scheme).toBe('U_B');
    expect(Array.from(a.indices)).toEqual(Array.from(b.indices));
    expect(Array.from(a.indices)).not.toEqual(Array.from(c.indices));
    expect(a.indices.length).toBe(1000);
    expect(new Set(a.indices).size).toBe(1000);
    let pos = 0;
    let lo = 0;
    sizes.forEach((n, l) => {
      const cnt = a.plan!.counts[l];
      for (let j = pos; j < pos + cnt; j++) expect(a.indices[j] >= lo && a.indices[j] < lo + n).toBe(true);
      pos += cnt;
      lo += n;
    });
    // fc1.w's 443 indices are in draw order, not sorted.
    const fc1 = Array.from(a.indices.subarray(51 + 18 + 69 + 48, 51 + 18 + 69 + 48 + 443));
    expect(fc1).not.toEqual([...fc1].sort((x, y) => x - y));
  });

  it('falls back to sorted uniform sampling', () => {
    const sizes = Array.from({ length: 100 }, () => 1000);
    const s = drawSamples({ layerSizes: sizes, k: 150, seed: 1 });
    expect(s.scheme).toBe('U');
    expect(s.indices.length).toBe(150);
    expect(new Set(s.indices).size).toBe(150);
    for (let j = 1; j < 150; j++) expect(s.indices[j]).toBeGreaterThan(s.indices[j - 1]);
    expect(s.indices[149]).toBeLessThan(100_000);
  });
});
