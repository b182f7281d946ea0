// Micro-benchmark of the clustering distance step (src/core/correlation.ts rowDistances: Euclidean
// distances between the rows of the K × K |corr| matrix), single-threaded, JavaScript vs
// WebAssembly SIMD, and a check that both give bit-identical distances.
// Run: npx tsx scripts/bench-distances.mjs [--sizes 1000,2000,4000] [--reps 3] [--kernels js,wasm]
// (the best of --reps runs is printed; K = 4000 in JavaScript takes tens of seconds)
import { absCorrelation, activeDistanceKernel, rowDistances } from '../src/core/correlation.ts';
import { setKernel } from '../src/core/kernel-choice.ts';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const k = args.indexOf(`--${name}`);
  return k >= 0 ? args[k + 1] : dflt;
};
const sizes = opt('sizes', '1000,2000,4000').split(',').map(Number);
const reps = Number(opt('reps', 3));
const kernels = opt('kernels', 'js,wasm').split(',');

/** Small deterministic generator (xorshift32), so every run sees the same data. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32 - 0.5;
  };
}

/** A |corr| matrix like CMD's: K trajectories of T = 40 steps drawn around 10 modes. */
function corrMatrix(K) {
  const T = 40;
  const r = rng(K);
  const modes = Array.from({ length: 10 }, () => {
    let x = 0;
    return Array.from({ length: T }, () => (x += r()));
  });
  const X = new Float64Array(K * T);
  for (let i = 0; i < K; i++) {
    const m = modes[i % 10];
    const a = r();
    for (let t = 0; t < T; t++) X[i * T + t] = a * m[t] + 0.3 * r();
  }
  return absCorrelation(X, K, T);
}

console.log(`rowDistances, single thread, best of ${reps}`);
console.log(['K', ...kernels.map((k) => `${k} ms`), 'identical'].join('\t'));
for (const K of sizes) {
  const A = corrMatrix(K);
  const times = [];
  const results = [];
  for (const kernel of kernels) {
    setKernel(kernel);
    if (activeDistanceKernel() !== kernel) throw new Error(`kernel ${kernel} is unavailable here`);
    let best = Infinity;
    let d;
    for (let r = 0; r < reps; r++) {
      const t0 = performance.now();
      d = rowDistances(A, K);
      best = Math.min(best, performance.now() - t0);
    }
    times.push(best.toFixed(0));
    results.push(d);
  }
  let identical = 'n/a';
  if (results.length > 1) {
    identical = 'yes';
    for (let p = 0; p < results[0].length; p++) {
      if (!results.every((d) => Object.is(d[p], results[0][p]))) {
        identical = `no (first difference at ${p})`;
        break;
      }
    }
  }
  console.log([K, ...times, identical].join('\t'));
}
setKernel('auto');
