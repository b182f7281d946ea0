/**
 * Synthetic checkpoint folders with planted latent modes, for benchmarks and scale tests.
 *
 * Every parameter i follows one of `modes` latent trajectories:
 *   w_i(t) = a_i · r_{m(i)}(t) + b_i + ε_i(t)
 * where r_m is a random walk normalised to zero mean and unit temporal variance, and ε is
 * uniform noise whose variance makes two parameters of the same mode correlate at
 * |corr| ≈ `withinCorr` over time. a_i, b_i, m(i) and ε_i(t) come from a counter-based hash
 * of (seed, i, t), so any value is a pure function of its coordinates: checkpoints can be
 * written one tensor slice at a time, in any order, with memory bounded by one slice buffer.
 * Mode sizes are skewed (mode 0 largest), as in real trainings.
 *
 * Files are F32 safetensors, `epoch_001.safetensors`, …, written by hand (8-byte LE header
 * length, space-padded JSON header, then tensors in header order).
 */
import fs from 'node:fs';
import path from 'node:path';

/** Output channels of ResNet-18 (torchvision layout, 10-class head): 62 trainable tensors. */
function resnet18Specs() {
  const specs = [
    ['conv1.weight', [64, 3, 7, 7]],
    ['bn1.weight', [64]],
    ['bn1.bias', [64]],
  ];
  let cin = 64;
  [64, 128, 256, 512].forEach((c, li) => {
    for (let blk = 0; blk < 2; blk++) {
      const p = `layer${li + 1}.${blk}`;
      const down = blk === 0 && li > 0;
      specs.push([`${p}.conv1.weight`, [c, blk === 0 ? cin : c, 3, 3]]);
      specs.push([`${p}.bn1.weight`, [c]], [`${p}.bn1.bias`, [c]]);
      specs.push([`${p}.conv2.weight`, [c, c, 3, 3]]);
      specs.push([`${p}.bn2.weight`, [c]], [`${p}.bn2.bias`, [c]]);
      if (down) {
        specs.push([`${p}.downsample.0.weight`, [c, cin, 1, 1]]);
        specs.push([`${p}.downsample.1.weight`, [c]], [`${p}.downsample.1.bias`, [c]]);
      }
    }
    cin = c;
  });
  specs.push(['fc.weight', [10, 512]], ['fc.bias', [10]]);
  return specs;
}

/**
 * ResNet-18-like tensors (62 of them, 11,181,642 floats at scale 1). `scale` multiplies every
 * tensor's first dimension, so the parameter count scales about linearly with the tensor
 * count and shapes' ranks unchanged (the result is no longer a runnable network, which
 * does not matter here).
 * @param {number} [scale]
 * @returns {{ name: string, shape: number[] }[]}
 */
export function resnet18Tensors(scale = 1) {
  return resnet18Specs().map(([name, shape]) => ({ name, shape: [Math.max(1, Math.round(shape[0] * scale)), ...shape.slice(1)] }));
}

/** @param {{ shape: number[] }[]} tensors */
export function parameterCount(tensors) {
  return tensors.reduce((s, t) => s + t.shape.reduce((a, b) => a * b, 1), 0);
}

/** Wellons' lowbias32: a strong 32-bit integer mix, the base of the counter-based RNG. */
function mix32(x) {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

const U32 = 2 ** -32;

/** Latent random walks r_m(t), each normalised to zero mean and unit variance over t. */
export function latentWalks(modes, checkpoints, seed) {
  const r = new Float64Array(modes * checkpoints);
  for (let m = 0; m < modes; m++) {
    let x = 0;
    for (let t = 0; t < checkpoints; t++) {
      // Box–Muller from two hashed uniforms: Gaussian steps.
      const u1 = (mix32(seed ^ mix32(m * 7919 + t * 2 + 1)) + 1) * U32;
      const u2 = mix32(seed ^ mix32(m * 7919 + t * 2 + 2)) * U32;
      x += Math.sqrt(-2 * Math.log(u1)) * Math.cos(2 * Math.PI * u2);
      r[m * checkpoints + t] = x;
    }
    let mean = 0;
    for (let t = 0; t < checkpoints; t++) mean += r[m * checkpoints + t] / checkpoints;
    let v = 0;
    for (let t = 0; t < checkpoints; t++) v += (r[m * checkpoints + t] - mean) ** 2 / checkpoints;
    const sd = Math.sqrt(v) || 1;
    for (let t = 0; t < checkpoints; t++) r[m * checkpoints + t] = (r[m * checkpoints + t] - mean) / sd;
  }
  return r;
}

/**
 * The planted mode of global parameter `i`, skewed toward low modes: P(m = k) = √((k+1)/M) − √(k/M).
 * Exposed so tests can check that CMD recovers the planted grouping.
 */
export function plantedMode(i, modes, seed) {
  const h = mix32((i ^ mix32(seed)) >>> 0);
  const u = mix32(h ^ 0x5bd1e995) * U32;
  return Math.min(modes - 1, Math.floor(modes * u * u));
}

/** Per-parameter a, b and mode for parameters [g0, g0+count): computed once, used for every t. */
function fillParameters(attrs, count, g0, modes, seed) {
  const seedMix = mix32(seed);
  for (let k = 0; k < count; k++) {
    const h = mix32(((g0 + k) ^ seedMix) >>> 0);
    const ua = mix32(h ^ 0x68e31da4) * U32;
    const ub = mix32(h ^ 0x1b56c4e9) * U32;
    const um = mix32(h ^ 0x5bd1e995) * U32;
    attrs.hash[k] = h;
    attrs.mode[k] = Math.min(modes - 1, Math.floor(modes * um * um));
    // |a| in [0.005, 0.02] with a random sign; b in [-0.1, 0.1]: weight-like magnitudes.
    attrs.a[k] = (ua < 0.5 ? -1 : 1) * (0.005 + 0.03 * Math.abs(ua - 0.5));
    attrs.b[k] = 0.2 * ub - 0.1;
  }
}

/**
 * Fills out[0..count) with the slice's values at checkpoint t. Noise is uniform with
 * half-width √3·σ, σ = |a|·√(1/c − 1), so same-mode pairs have |corr| ≈ c.
 */
function fillSlice(out, count, attrs, t, walks, T, noiseRatio) {
  const tMix = Math.imul(t + 1, 0x9e3779b9);
  const halfWidth = Math.sqrt(3) * noiseRatio;
  const { hash, mode, a, b } = attrs;
  for (let k = 0; k < count; k++) {
    const un = mix32((hash[k] + tMix) >>> 0) * U32;
    out[k] = a[k] * (walks[mode[k] * T + t] + halfWidth * (2 * un - 1)) + b[k];
  }
}

function checkpointHeader(tensors) {
  const entries = [];
  let offset = 0;
  for (const t of tensors) {
    const bytes = 4 * t.shape.reduce((a, b) => a * b, 1);
    entries.push(`${JSON.stringify(t.name)}:{"dtype":"F32","shape":[${t.shape.join(',')}],"data_offsets":[${offset},${offset + bytes}]}`);
    offset += bytes;
  }
  const json = Buffer.from(`{${entries.join(',')}}`, 'utf8');
  const padded = Math.ceil(json.length / 8) * 8;
  const header = Buffer.alloc(8 + padded, 0x20);
  header.writeBigUInt64LE(BigInt(padded), 0);
  json.copy(header, 8);
  return { header, dataBytes: offset };
}

function writeAll(fd, bytes, position) {
  let done = 0;
  while (done < bytes.byteLength) done += fs.writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
}

/** Name of checkpoint t (0-based) in a folder of `checkpoints` files. */
export function checkpointName(t) {
  return `epoch_${String(t + 1).padStart(3, '0')}.safetensors`;
}

/**
 * Writes a synthetic checkpoint folder. Memory stays at one slice buffer (`sliceElements`
 * floats: 16 MB, plus 20 bytes per slice element of per-parameter draws) whatever N and T are.
 * @param {string} dir folder to create (files are overwritten)
 * @param {{ tensors: { name: string, shape: number[] }[], checkpoints: number, modes?: number,
 *   seed?: number, withinCorr?: number, sliceElements?: number, onProgress?: (bytes: number) => void }} options
 * @returns {{ files: string[], parameters: number, bytes: number }}
 */
export function writeSyntheticCheckpoints(dir, options) {
  const { tensors, checkpoints: T, modes = 10, seed = 1, withinCorr = 0.9, sliceElements = 1 << 22, onProgress } = options;
  if (!(T >= 1) || !(modes >= 1) || !(withinCorr > 0 && withinCorr < 1)) throw new RangeError('writeSyntheticCheckpoints: need checkpoints ≥ 1, modes ≥ 1, 0 < withinCorr < 1');
  fs.mkdirSync(dir, { recursive: true });
  const walks = latentWalks(modes, T, seed >>> 0);
  const noiseRatio = Math.sqrt(1 / withinCorr - 1);
  const { header, dataBytes } = checkpointHeader(tensors);
  const buf = new Float32Array(sliceElements);
  const bytes = new Uint8Array(buf.buffer);
  const attrs = { hash: new Uint32Array(sliceElements), mode: new Uint16Array(sliceElements), a: new Float64Array(sliceElements), b: new Float64Array(sliceElements) };
  const files = Array.from({ length: T }, (_, t) => path.join(dir, checkpointName(t)));
  // All T files are open at once so each parameter's a, b, mode are drawn once, not T times.
  const fds = [];
  try {
    for (const file of files) {
      const fd = fs.openSync(file, 'w');
      fds.push(fd);
      writeAll(fd, header, 0);
    }
    let pos = header.length;
    let g = 0;
    for (const tensor of tensors) {
      const count = tensor.shape.reduce((x, y) => x * y, 1);
      for (let s = 0; s < count; s += sliceElements) {
        const n = Math.min(sliceElements, count - s);
        fillParameters(attrs, n, g + s, modes, seed >>> 0);
        for (let t = 0; t < T; t++) {
          fillSlice(buf, n, attrs, t, walks, T, noiseRatio);
          writeAll(fds[t], bytes.subarray(0, n * 4), pos);
          onProgress?.(n * 4);
        }
        pos += n * 4;
      }
      g += count;
    }
  } finally {
    for (const fd of fds) fs.closeSync(fd);
  }
  return { files, parameters: parameterCount(tensors), bytes: T * (header.length + dataBytes) };
}
