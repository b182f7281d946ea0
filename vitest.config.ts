import { defineConfig } from 'vitest/config';

// Three projects split by file name (docs/architecture.md, "Tests"):
// - unit: in-process on the TypeScript sources, no build needed;
// - e2e:  `*.e2e.test.ts`, which spawn the built CLI (bin/cmd.js → dist/); a global setup
//         compiles dist/ once per run so an edited src/ is never tested through a stale build;
// - cluster: `test/cluster/**/*.cluster.test.ts`, sharded runs as jobs on a private single-node
//         Slurm cluster its global setup starts and stops. Not part of `npm test` (which names
//         unit and e2e); `npm run test:cluster` runs it into its own results file.
export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // Two test files at a time even on a 2-core machine (vitest's default there is one): the e2e
    // files spend most of their time waiting on the CLI child they spawned.
    maxWorkers: 2,
    // The JSON file gives .ci/run the plain "N passed, N failed" line the landing check reads.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
    projects: [
      {
        extends: true,
        test: { name: 'unit', include: ['test/**/*.test.ts'], exclude: ['test/**/*.e2e.test.ts', 'test/cluster/**', '**/node_modules/**'] },
      },
      {
        extends: true,
        test: { name: 'e2e', include: ['test/**/*.e2e.test.ts'], exclude: ['test/cluster/**', '**/node_modules/**'], globalSetup: ['test/setup/build-dist.ts'] },
      },
      {
        extends: true,
        // One file at a time: the files share one 2-CPU node, and a test that waits on its jobs
        // would otherwise wait on another file's too.
        test: { name: 'cluster', include: ['test/cluster/**/*.cluster.test.ts'], globalSetup: ['test/setup/slurm-cluster.ts'], maxWorkers: 1, testTimeout: 900_000 },
      },
    ],
  },
});
