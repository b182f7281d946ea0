import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // The JSON file gives .ci/run the plain "N passed, N failed" line the landing check reads.
    reporters: ['default', 'json'],
    outputFile: { json: '.vitest-results.json' },
  },
});
