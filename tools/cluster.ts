/**
 * `npm run cluster`: several Stampede nodes behind one port, for real. Starts N nodes (the
 * compiled build, production mode, one set of secrets) behind Debian's HAProxy (round robin,
 * nothing sticky) on a 3-master Redis Cluster and PostgreSQL, its own unless given, and either
 * keeps them running until Ctrl-C or runs a rehearsal through the balancer (`--rehearse`) and
 * reports it with the requests each node answered. Everything it started is removed at the end.
 * Exit code: without --rehearse 0; with it, the rehearsal's (0 every invariant held, 1 one
 * broke, 2 a target missed with --strict); 64 bad usage, 70 the deployment could not run.
 *
 *   npm run cluster                                  3 nodes on http://127.0.0.1:8080 until Ctrl-C
 *   ulimit -n 20000; npm run cluster -- --port 0 --rehearse --users 10000 --units 1000
 */
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { resolve } from 'node:path';
import { Args, UsageError } from './args.js';
import { Deployment, redact, type DeploymentOptions } from './deploy/deployment.js';
import { shardLoad, shardTable } from './deploy/shard-load.js';
import { USAGE as REHEARSE_USAGE, parseOptions, rehearse } from './rehearse.js';

export const USAGE = `usage: npm run cluster -- [options] [--rehearse [rehearsal options]]

  --nodes N               Stampede nodes behind the balancer (default 3)
  --port P                the balancer's port on 127.0.0.1 (default 8080; 0 = a free one)
  --redis-cluster H:P,..  an existing Redis Cluster, as REDIS_CLUSTER_NODES takes it (default: one
                          of its own, 3 masters on spare ports, removed at the end); its keys
                          under --prefix are deleted at the end
  --database-url URL      an existing PostgreSQL database, left as it is (default: a PostgreSQL of
                          its own on a spare port, removed at the end)
  --nats-url URL          NATS for the ledger's outbox (default none: NATS is optional to a node,
                          and without it the outbox is not published)
  --prefix P              the nodes' Redis key prefix (default stampede-cluster-<random>)
  --logs DIR              the nodes' logs and HAProxy's config and log (default a new temp dir)
  --no-ip-limit           turn off the per-address request limit (STAMPEDE_IP_RATE_LIMIT=0);
                          --rehearse sets it: the simulated crowd comes from one machine
  --rehearse ...          run a rehearsal through the balancer, report it and the requests per
                          node, stop everything and exit with its code. Every option after it is
                          the rehearsal's; the tool sets --url, --admin-token and --user-secret:

${REHEARSE_USAGE.split('\n')
  .slice(2)
  .filter((l) => !/^\s+--(url|admin-token|user-secret)\b/.test(l) && !/^\s{26}(its STAMPEDE_USER|users take guest|mode only)/.test(l))
  .map((l) => `  ${l}`)
  .join('\n')}`;

/** Rehearsal options the tool supplies itself. */
const OWN = ['url', 'admin-token', 'user-secret'];

interface ClusterOptions extends Omit<DeploymentOptions, 'log'> {
  /** The rehearsal's own arguments (after --rehearse), or null for a deployment that waits for Ctrl-C. */
  rehearsal: string[] | null;
}

export function parseClusterOptions(argv: string[]): ClusterOptions {
  const at = argv.indexOf('--rehearse');
  const rehearsal = at < 0 ? null : argv.slice(at + 1);
  const a = new Args(at < 0 ? argv : argv.slice(0, at));
  const port = a.count('port', 8080);
  if (port > 65535) throw new UsageError(`--port must be a port number, got ${port}`);
  const cluster = a.string('redis-cluster');
  const redisCluster = cluster
    ? cluster
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    : null;
  for (const node of redisCluster ?? []) {
    // What REDIS_CLUSTER_NODES takes (the nodes check the rest: one scheme and one password for all).
    if (!/^[\w.-]+:\d+$/.test(node) && !/^rediss?:\/\/([^@/\s]+@)?[\w.-]+:\d+\/?$/.test(node))
      throw new UsageError(`--redis-cluster must be host:port or redis[s]://[user:password@]host:port entries, comma-separated, got "${redact(node)}"`);
  }
  const prefix = a.string('prefix');
  if (prefix !== undefined && !/^[\w.:-]{1,64}$/.test(prefix))
    throw new UsageError(`--prefix must be 1–64 letters, digits, '_', '-', '.' or ':', got "${prefix}"`);
  const opts: ClusterOptions = {
    nodes: a.count('nodes', 3, 1),
    port,
    redisCluster,
    databaseUrl: a.string('database-url') ?? null,
    natsUrl: a.string('nats-url') ?? null,
    prefix,
    logDir: a.string('logs') ?? '',
    ipLimit: !(a.flag('no-ip-limit') || rehearsal !== null),
    rehearsal,
  };
  a.rejectUnknown();
  if (rehearsal) {
    const own = rehearsal.find((arg) => OWN.some((o) => arg === `--${o}` || arg.startsWith(`--${o}=`)));
    if (own) throw new UsageError(`${own.split('=')[0]} is the tool's to set (the balancer's address and the deployment's secrets)`);
    // Checked now, before anything starts: a typo should not cost a deployment's start-up.
    parseOptions(rehearsalArgs(rehearsal, 'http://127.0.0.1:1', 'x', 'x'), {});
  }
  return opts;
}

function rehearsalArgs(args: string[], url: string, adminToken: string, userSecret: string): string[] {
  return [...args, '--url', url, '--admin-token', adminToken, '--user-secret', userSecret];
}

const say = (line: string) => process.stderr.write(`cluster: ${line}\n`);

function summary(d: Deployment): string {
  const lines = [
    `${d.nodes.length} Stampede node(s) behind HAProxy (round robin, nothing sticky)`,
    `  balancer       ${d.url}   (shop ${d.url}/  admin ${d.url}/admin)`,
    `  admin token    ${d.adminToken}`,
    `  user secret    ${d.userSecret}   (STAMPEDE_USER_JWT_SECRET: sign user tokens with it, HS256)`,
    `  ticket secret  ${d.ticketSecret}`,
    ...d.nodes.map((n) => `  ${n.name.padEnd(15)}${n.url}   log ${resolve(d.opts.logDir, `${n.name}.log`)}`),
    `  haproxy        stats ${d.balancer!.statsUrl}   config ${d.balancer!.configFile}   log ${d.balancer!.logFile}`,
    `  Redis Cluster  ${d.redisNodes.map(redact).join(',')} (${d.ownsCluster ? 'its own, removed at the end' : `given; keys under ${d.prefix}: deleted at the end`}), prefix ${d.prefix}`,
    `  PostgreSQL     ${redact(d.databaseUrl)} (${d.ownsDatabase ? 'its own, removed at the end' : 'given, left as it is'})`,
    `  NATS           ${d.natsUrl ?? 'none (optional: the ledger outbox is not published)'}`,
    `  per-address request limit ${d.opts.ipLimit ? 'on (STAMPEDE_IP_RATE_LIMIT default)' : 'off (STAMPEDE_IP_RATE_LIMIT=0)'}`,
  ];
  return lines.join('\n');
}

async function main(argv: string[]): Promise<number> {
  const own = argv.includes('--rehearse') ? argv.slice(0, argv.indexOf('--rehearse')) : argv;
  if (own.includes('--help') || own.includes('-h')) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  let opts: ClusterOptions;
  try {
    opts = parseClusterOptions(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`cluster: ${err.message}\n\n${USAGE}\n`);
    return 64;
  }
  if (opts.logDir) mkdirSync(opts.logDir, { recursive: true });
  else opts.logDir = mkdtempSync(resolve(tmpdir(), 'stampede-cluster-'));

  // Ctrl-C or SIGTERM: everything is stopped in order; a second one leaves at once (the exit
  // hooks still kill the nodes, HAProxy and the services this process started).
  let stopping = false;
  let stopRequested: (signal: NodeJS.Signals) => void = () => {};
  const stopped = new Promise<NodeJS.Signals>((r) => (stopRequested = r));
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.on(sig, () => {
      if (stopping) process.exit(130);
      stopping = true;
      stopRequested(sig);
    });
  }

  say(`starting ${opts.nodes} node(s); logs in ${resolve(opts.logDir)}`);
  const starting = Deployment.start({ ...opts, log: say });
  const first = await Promise.race([
    starting.then(
      () => null,
      (err: Error) => err,
    ),
    stopped,
  ]);
  if (first !== null) {
    if (first instanceof Error) {
      // One line of reason; what a program said beyond it (haproxy -c, a node's last lines) below.
      const [reason, ...more] = first.message.split('\n');
      say(`could not start: ${reason}`);
      if (more.length) process.stderr.write(`${more.map((l) => `  ${l}`).join('\n')}\n`);
      say(`logs in ${resolve(opts.logDir)}`);
      return 70;
    }
    // Interrupted while starting: what has started is stopped once the start is over (a failed
    // start stops its own); a second Ctrl-C leaves at once.
    say(`${first} while starting: stopping once the start is over`);
    await starting.then(
      (d) => d.close(),
      () => {},
    );
    return 130;
  }
  const d = await starting;
  process.stdout.write(`${summary(d)}\n`);

  let code = 0;
  try {
    if (!opts.rehearsal) {
      say('running; Ctrl-C stops everything');
      // A node that dies is said once (the balancer takes it out; nothing restarts it).
      const told = new Set<string>();
      const watch = setInterval(() => {
        for (const n of d.nodes.filter((n) => !n.running && !told.has(n.name))) {
          told.add(n.name);
          say(`${n.name} exited; see ${resolve(opts.logDir, `${n.name}.log`)}`);
        }
      }, 2000);
      const sig = await stopped;
      clearInterval(watch);
      say(`${sig}: stopping`);
    } else {
      const ropts = parseOptions(rehearsalArgs(opts.rehearsal, d.url, d.adminToken, d.userSecret), {});
      const startedAt = Date.now();
      const mastersBefore = await d.redisMasters();
      const run = await Promise.race([
        rehearse(ropts),
        stopped.then((sig) => {
          throw new Error(`${sig}: the rehearsal was interrupted`);
        }),
      ]);
      const shards = shardTable(shardLoad(mastersBefore, await d.redisMasters()));
      process.stdout.write(`${run.text}\n\n${await d.requestsPerNode()}\n\n${shards}\n`);
      process.stdout.write(`rehearsal through the balancer: ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n`);
      if (run.files.length) say(`reports: ${run.files.map((f) => resolve(f)).join('  ')}`);
      code = run.exitCode;
    }
  } catch (err) {
    say((err as Error).message);
    code = 70;
  }
  try {
    await d.close();
  } catch (err) {
    say((err as Error).message);
    code ||= 70;
  }
  say(`logs kept in ${resolve(opts.logDir)}`);
  return code;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    say(`failed: ${err instanceof Error ? err.message : String(err)}`);
    process.exit(70);
  },
);
