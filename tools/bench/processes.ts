/**
 * The processes a benchmark measures: a Stampede node (the compiled build, `node dist/server.js`
 * as `npm start` runs it, built first when stale) and the bare-Fastify baseline (through tsx), each a child process so
 * the load generator never shares their event loop. Memory is read from /proc (resident set of
 * the child).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { ensureBuilt, ROOT as root } from '../built.js';

export interface Served {
  url: string;
  pid: number;
  stop(): Promise<void>;
  log(): string;
}

const tsx = import.meta.resolve('tsx');

/**
 * A port nobody holds now, from the kernel. (A random one collided with the load generator's
 * own ephemeral ports once: EADDRINUSE halfway through a run.)
 */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once('error', reject);
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}

/**
 * Starts `file` (relative to the repository; a `.ts` file through tsx, `dist/` built first when
 * stale) and waits until `readyPath` answers 200.
 */
export async function serve(file: string, env: Record<string, string>, readyPath: string, nodeArgs: string[] = []): Promise<Served> {
  const port = await freePort();
  if (file.startsWith('dist/')) await ensureBuilt();
  const loader = file.endsWith('.ts') ? ['--import', tsx] : [];
  const child: ChildProcess = spawn(process.execPath, [...nodeArgs, ...loader, file], {
    cwd: root,
    env: { ...process.env, ...env, PORT: String(port), HOST: '127.0.0.1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (b: Buffer) => {
    output = (output + b.toString()).slice(-20_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`${file} exited with ${child.exitCode}:\n${output}`);
    try {
      const res = await fetch(url + readyPath);
      if (res.ok) break;
    } catch {
      /* not up yet */
    }
    if (i > 300) {
      child.kill('SIGKILL');
      throw new Error(`${file} did not become ready:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    pid: child.pid!,
    log: () => output,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Resident memory of a process, in bytes (Linux), or NaN. */
export function rssOf(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** Open file descriptors of a process (Linux), or NaN. */
export function fdLimitOf(pid: number): number {
  try {
    const m = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
    return m ? Number(m[1]) : NaN;
  } catch {
    return NaN;
  }
}
