import { defineConfig } from 'vitest/config'

/** Pure-core folders: their tests need no chain. */
const PURE = ['errors', 'protocol', 'verify', 'ledger', 'store']

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    projects: [
      {
        test: {
          name: 'unit',
          include: PURE.map((dir) => `test/${dir}/**/*.test.ts`),
        },
      },
      {
        test: {
          name: 'chain',
          include: ['test/**/*.test.ts'],
          exclude: PURE.map((dir) => `test/${dir}/**`),
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
