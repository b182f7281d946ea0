// Micro-benchmark of the pass-2 kernel (src/core/fit.ts): parameter-checkpoint values per second
// for fitAssign on float32 chunks, M ∈ {2, 10, 20} × T ∈ {25, 40, 100}.
// Run: npx tsx scripts/bench-fit.mjs [--n 65536] [--reps 5] [--fixed] [--module path/to/fit.ts]
import { pathToFileURL } from 'node:url';
import path from 'node:path';

const args = process.argv.slice(2);
const opt = (name, dflt) => {
  const k = args.indexOf(`--${name}`);
  return k >= 0 ? args[k + 1] : dflt;
};
const n = Number(opt('n', 65536));
const reps = Number(opt('reps', 5));
const fixed = args.includes('--fixed');
const modulePath = path.resolve(opt('module', new URL('../src/core/fit.ts', import.meta.url).pathname));
const fit = await import(pathToFileURL(modulePath).href);

/** Small deterministic generator (xorshift32), so every run sees the same data. */
function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0; s ^= s >>> 17; s ^= s << 5; s >>>= 0;
    return s / 2 ** 32 - 0.5;
  };
}

function data(M, T) {
  const r = rng(M * 1000 + T);
  const refs = new Float64Array(M * T);
  for (let m = 0; m < M; m++) {
    let x = 0;
    for (let t = 0; t < T; t++) refs[m * T + t] = x += r();
  }
  const values = new Float32Array(T * n);
  for (let i = 0; i < n; i++) {
    const m = i % M;
    const a = r() * 0.1;
    const b = r();
    for (let t = 0; t < T; t++) values[t * n + i] = a * refs[m * T + t] + b + 0.01 * r();
  }
  const modes = new Uint8Array(n).map((_, i) => i % M);
  return { refs, values, modes };
}

console.log(`${fixed ? 'fitFixedModes' : 'fitAssign'}  n = ${n}  best of ${reps}  (${modulePath})`);
for (const M of [2, 10, 20]) {
  for (const T of [25, 40, 100]) {
    const { refs, values, modes } = data(M, T);
    const stats = fit.prepareReferences(refs, M, T);
    const out = { mode: new Uint8Array(n), a: new Float32Array(n), b: new Float32Array(n) };
    const run = () => {
      const acc = fit.createAccumulators(M, T);
      if (fixed) fit.fitFixedModes(values, n, stats, modes, 0, out, acc);
      else fit.fitAssign(values, n, stats, out, acc);
    };
    run(); // warm-up (JIT)
    let best = Infinity;
    for (let k = 0; k < reps; k++) {
      const t0 = process.hrtime.bigint();
      // Repeat until ~0.2 s so short configurations are timed reliably.
      let calls = 0;
      let el = 0n;
      do {
        run();
        calls++;
        el = process.hrtime.bigint() - t0;
      } while (el < 200_000_000n);
      best = Math.min(best, Number(el) / 1e9 / calls);
    }
    const rate = (n * T) / best;
    console.log(`M=${String(M).padStart(2)} T=${String(T).padStart(3)}  ${(rate / 1e6).toFixed(1).padStart(7)} M values/s`);
  }
}
