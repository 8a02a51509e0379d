import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    // Integration tests spawn real processes and bind ports; keep the 2-core machines calm.
    maxWorkers: 2,
    minWorkers: 1,
    // The suite runs as root (CI, this machine) and deploys apps without `user:`: say explicitly that this engine
    // configuration allows it (an engine running as root refuses otherwise; see docs/isolation.md).
    env: { KEELSON_ALLOW_ROOT_APPS: 'true' },
  },
});
