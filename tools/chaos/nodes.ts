/**
 * Stampede nodes as real server processes — the compiled build, as `npm start` runs it
 * (`node dist/server.js`, built first when stale) — each on a port of
 * its own that it keeps across restarts, so a client (or a balancer) finds it again where it was.
 * A node can be killed with SIGKILL — no drain, no goodbye — and started again.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, type WriteStream } from 'node:fs';
import { freePort } from '../../test/support/own-services.js';
import { ensureBuilt, ROOT } from '../built.js';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Nodes still running when this process exits (an interrupted run) die with it. */
const alive = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

export class ServerNode {
  private child: ChildProcess | null = null;
  private exited: Promise<void> = Promise.resolve();
  private log: WriteStream | null = null;
  /** The last lines the node wrote (for an error message when it will not start). */
  private tail: string[] = [];

  private constructor(
    readonly name: string,
    readonly port: number,
    private env: Record<string, string>,
    private readonly logFile: string | null,
  ) {}

  static async create(name: string, env: Record<string, string>, logFile: string | null): Promise<ServerNode> {
    return new ServerNode(name, await freePort(), env, logFile);
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.child !== null;
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The node's settings; a changed one takes effect at the next start. */
  get settings(): Readonly<Record<string, string>> {
    return this.env;
  }
  set settings(env: Record<string, string>) {
    this.env = env;
  }

  /** Starts the process and waits until `/healthz` answers (up to `timeoutMs`). */
  async start(timeoutMs = 60_000): Promise<void> {
    if (this.child) return;
    this.log ??= this.logFile ? createWriteStream(this.logFile, { flags: 'a' }) : null;
    this.log?.write(`--- ${new Date().toISOString()} start ${this.name} on ${this.port}\n`);
    await ensureBuilt();
    const child = spawn(process.execPath, ['dist/server.js'], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...this.env, PORT: String(this.port), HOST: '127.0.0.1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    alive.add(child);
    this.tail = [];
    const keep = (b: Buffer) => {
      this.log?.write(b);
      this.tail.push(...b.toString().split('\n').filter(Boolean));
      if (this.tail.length > 40) this.tail.splice(0, this.tail.length - 40);
    };
    child.stdout!.on('data', keep);
    child.stderr!.on('data', keep);
    this.exited = new Promise((resolve) =>
      child.once('exit', (code, signal) => {
        this.log?.write(`--- ${new Date().toISOString()} ${this.name} exited (${signal ?? code})\n`);
        alive.delete(child);
        if (this.child === child) this.child = null;
        resolve();
      }),
    );
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.child !== child) throw new Error(`${this.name} exited while starting:\n${this.tail.join('\n')}`);
      try {
        const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(1000) });
        if (res.ok) return;
      } catch {
        /* not listening yet */
      }
      await sleep(100);
    }
    await this.kill9();
    throw new Error(`${this.name} did not answer /healthz within ${timeoutMs} ms:\n${this.tail.join('\n')}`);
  }

  /** SIGKILL: the process dies where it stands. Resolves when it is gone. */
  async kill9(): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.exited;
  }

  /** SIGTERM (a graceful close), then SIGKILL after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    const child = this.child;
    if (!child) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** Stops the node for good and closes its log. */
  async close(): Promise<void> {
    await this.stop(5000);
    await new Promise<void>((r) => (this.log ? this.log.end(r) : r()));
    this.log = null;
  }
}
