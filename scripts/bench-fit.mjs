// Micro-benchmark of the pass-2 kernel (src/core/fit.ts): parameter-checkpoint values per second
// for fitAssign on float32 chunks, M ∈ {2, 10, 20} × T ∈ {25, 40, 100}.
// Run: npx tsx scripts/bench-fit.mjs [--n 65536] [--reps 5] [--fixed] [--kernel wasm|js] [--module path/to/fit.ts]
// (--module: time another copy of fit.ts with the same API, e.g. an older version, for before/after.)
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
const kernel = opt('kernel', undefined);
if (kernel) {
  // The project's one switch (src/core/kernel-choice.ts); an older copy given with --module may still have its own.
  if (fit.setFitKernel) fit.setFitKernel(kernel);
  else (await import('../src/core/kernel-choice.ts')).setKernel(kernel);
}
const kernelName = fit.activeFitKernel ? fit.activeFitKernel() : 'js';

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

console.log(`${fixed ? 'fitFixedModes' : 'fitAssign'}  kernel ${kernelName}  n = ${n}  best of ${reps}  (${modulePath})`);
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
    // Wall time and CPU time of this process (the machine may be shared: CPU time excludes the
    // time other processes hold the core). Best of `reps` runs of ≥ 0.2 s each.
    let bestWall = Infinity;
    let bestCpu = Infinity;
    for (let k = 0; k < reps; k++) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      let calls = 0;
      let el = 0n;
      do {
        run();
        calls++;
        el = process.hrtime.bigint() - t0;
      } while (el < 200_000_000n);
      const c = process.cpuUsage(c0);
      bestWall = Math.min(bestWall, Number(el) / 1e9 / calls);
      bestCpu = Math.min(bestCpu, (c.user + c.system) / 1e6 / calls);
    }
    const fmt = (sec) => ((n * T) / sec / 1e6).toFixed(1).padStart(7);
    console.log(`M=${String(M).padStart(2)} T=${String(T).padStart(3)}  ${fmt(bestWall)} M values/s wall  ${fmt(bestCpu)} M values/s cpu`);
  }
}
