/**
 * Vitest global setup: the local Redis Cluster the cluster suites run on. `.ci/run` starts one
 * and sets TEST_REDIS_CLUSTER_NODES; a plain `npm test` on a fresh machine gets one here, on
 * spare ports in a temporary directory (scripts/redis-cluster.sh), removed when the run ends.
 * Without redis-server the cluster suites skip loudly (and fail in CI).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterPorts } from './own-services.js';

const SCRIPT = join(import.meta.dirname, '../../scripts/redis-cluster.sh');

export default async function setup(): Promise<(() => void) | void> {
  if (process.env.STAMPEDE_TEST_SERVICES === 'none' || process.env.TEST_REDIS_CLUSTER_NODES) return;
  const ports = await clusterPorts();
  const dir = mkdtempSync(join(tmpdir(), 'stampede-test-cluster-'));
  const env = { ...process.env, STAMPEDE_REDIS_CLUSTER_DIR: dir };
  try {
    const nodes = execFileSync(SCRIPT, ['start', ...ports.map(String)], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
    // The test workers are forked after this, with this environment.
    process.env.TEST_REDIS_CLUSTER_NODES = nodes;
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    console.warn(`\n!!! No local Redis Cluster for the cluster suites: ${(err as { stderr?: string }).stderr || (err as Error).message}\n`);
    return;
  }
  return () => {
    execFileSync(SCRIPT, ['stop', ...ports.map(String)], { env, stdio: 'ignore' });
  };
}
