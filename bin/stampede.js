#!/usr/bin/env node
/**
 * `stampede <command> [options]`: runs one of the TypeScript tools under tools/ with tsx, in
 * a child process so that its worker threads load TypeScript too and its exit code is ours.
 * They are developer and operator tools, run from a clone: tsx is a dev dependency.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const commands = {
  rehearse: 'Simulate a drop against a running server and check every invariant',
  bench: 'Throughput and latency of the hot endpoints against a bare-Fastify baseline',
  capacity: 'How many waiting event streams one node holds, and their memory',
  reconcile: "Compare each sale's engine state with the ledger; --fix repairs the engine",
};

const [command, ...args] = process.argv.slice(2);
if (!command || !(command in commands)) {
  const list = Object.entries(commands).map(([name, what]) => `  ${name.padEnd(10)} ${what}`).join('\n');
  process.stderr.write(`usage: stampede <command> [options]   (stampede <command> --help for its options)\n\n${list}\n`);
  process.exit(command === undefined || command === '--help' ? 0 : 64);
}

const tool = fileURLToPath(new URL(`../tools/${command}.ts`, import.meta.url));
let tsx;
try {
  tsx = import.meta.resolve('tsx');
} catch {
  process.stderr.write('stampede: the tools run with tsx, a dev dependency: run `npm install` (with dev dependencies) in the clone\n');
  process.exit(69);
}
const child = spawn(process.execPath, ['--import', tsx, tool, ...args], { stdio: 'inherit' });
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => child.kill(signal));
child.on('exit', (code, signal) => process.exit(code ?? (signal ? 128 + 15 : 1)));
