import { defineConfig } from 'vitest/config';

/**
 * `npm test` runs everything (what CI runs). The layers, by `--mode`:
 * - `unit`: no services at all (no Redis, PostgreSQL, NATS or Chromium) and no crowds of
 *   thousands: the embedded engine and in-memory PGlite only; suites' Redis and PostgreSQL
 *   halves skip.
 * - `integration`: everything but the browser.
 * - `browser`: the Chromium suites.
 */
const BROWSER = ['test/**/*.browser.test.ts'];
const NEEDS_SERVICES = [
  ...BROWSER,
  'test/engine/engine.redis.test.ts',
  'test/engine/engine.redis-cluster.test.ts',
  'test/engine/redis-cluster.access.test.ts',
  'test/ledger/ledger.pg.test.ts',
  'test/ledger/outbox-relay.nats.test.ts',
  'test/faults/**',
  'test/cli/**',
  'test/scale/multi-node.test.ts',
];
/** Crowds of thousands (oversell, sold-out fan-out, churn, bots): minutes of CPU, not unit tests. */
const CROWDS = [
  'test/checkout/purchase.oversell.test.ts',
  'test/queue/sse.sold-out.test.ts',
  'test/queue/sse.churn.test.ts',
  'test/defence/bots.rehearsal.test.ts',
];

export default defineConfig(({ mode }) => ({
  test: {
    include: mode === 'browser' ? BROWSER : ['test/**/*.test.ts'],
    // The local Redis Cluster for the cluster suites, unless .ci/run started one.
    globalSetup: mode === 'unit' ? [] : ['test/support/global-setup.ts'],
    exclude: mode === 'unit' ? [...NEEDS_SERVICES, ...CROWDS] : mode === 'integration' ? BROWSER : [],
    env: mode === 'unit' ? { STAMPEDE_TEST_SERVICES: 'none' } : {},
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    // Two cores: more workers only fight over them.
    maxWorkers: 2,
    reporters: ['default'],
  },
}));
