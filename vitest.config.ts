import { defineConfig } from 'vitest/config'

/** Folders whose tests need no chain node. */
const NO_CHAIN = [
  'errors',
  'protocol',
  'verify',
  'ledger',
  'store',
  'payee',
  'transports',
  'server',
  'readme',
  'metrics',
]

export default defineConfig({
  test: {
    projects: [
      {
        test: {
          name: 'unit',
          include: NO_CHAIN.map((dir) => `test/${dir}/**/*.test.ts`),
          // Hang guards, not timings: property tests and child processes on a busy 2-core machine.
          testTimeout: 30_000,
          hookTimeout: 60_000,
        },
      },
      {
        test: {
          name: 'chain',
          include: ['test/**/*.test.ts'],
          exclude: NO_CHAIN.map((dir) => `test/${dir}/**`),
          globalSetup: ['test/setup/chain.ts'],
          testTimeout: 60_000,
          hookTimeout: 120_000,
          pool: 'forks',
          fileParallelism: false,
        },
      },
    ],
  },
})
