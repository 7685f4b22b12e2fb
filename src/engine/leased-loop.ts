/**
 * A background job that runs on one node at a time: every `everyMs` the node that holds (or can
 * take) the lease in the engine runs one pass. The lease is renewed while a pass lasts, so a slow
 * pass (a card network crawling, a large sweep) never lets a second node start the same work.
 * Each job has its own lease: a slow outbox never holds up the hold sweeper.
 */
import type { FastifyInstance } from 'fastify';
import type { Engine } from './engine.js';

export interface LeasedLoopOptions {
  /** The lease's name in the engine, e.g. `sweeper:holds`. */
  name: string;
  /** This node's name in the lease. */
  owner: string;
  everyMs: number;
  leaseMs: number;
  run: () => Promise<unknown>;
  log: { warn(obj: object, msg: string): void };
}

export class LeasedLoop {
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;

  constructor(
    private readonly engine: Pick<Engine, 'acquireLease' | 'releaseLease'>,
    private readonly opts: LeasedLoopOptions,
  ) {}

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      if (!this.running)
        this.running = this.pass().finally(() => {
          this.running = null;
        });
    }, this.opts.everyMs);
    this.timer.unref();
  }

  /** Stops the timer, waits for a pass in progress, and gives the lease up for the next node. */
  async stop(): Promise<void> {
    if (!this.timer) return;
    clearInterval(this.timer);
    this.timer = null;
    await this.running;
    await this.engine.releaseLease(this.opts.name, this.opts.owner).catch((err: unknown) => {
      this.opts.log.warn({ err, lease: this.opts.name }, 'lease not released; it lapses by itself');
    });
  }

  private async pass(): Promise<void> {
    const { name, owner, leaseMs, log } = this.opts;
    try {
      if (!(await this.engine.acquireLease(name, owner, leaseMs))) return;
    } catch (err) {
      log.warn({ err, lease: name }, 'lease could not be taken; trying again next tick');
      return;
    }
    // Renew at a third of the lease's life for as long as the pass runs.
    const renew = setInterval(
      () => {
        this.engine.acquireLease(name, owner, leaseMs).catch((err: unknown) => log.warn({ err, lease: name }, 'lease renewal failed'));
      },
      Math.max(100, Math.floor(leaseMs / 3)),
    );
    renew.unref();
    try {
      await this.opts.run();
    } catch (err) {
      log.warn({ err, lease: name }, 'background pass failed; the next one tries again');
    } finally {
      clearInterval(renew);
    }
  }
}

/**
 * Runs a tier's leased job while the app is up: a pass every `everyMs` (a second), on the node holding the
 * `name` lease (5 s, renewed during a pass); started when the app is ready, stopped (lease given
 * up) when it closes.
 */
export function leasedJobWhileUp(
  app: FastifyInstance<any, any, any, any, any>,
  node: { engine: Pick<Engine, 'acquireLease' | 'releaseLease'>; nodeId: string; log: LeasedLoopOptions['log'] },
  name: string,
  run: () => Promise<unknown>,
  everyMs = 1000,
): void {
  const loop = new LeasedLoop(node.engine, { name, owner: node.nodeId, everyMs, leaseMs: 5000, log: node.log, run });
  app.addHook('onReady', async () => loop.start());
  app.addHook('onClose', async () => loop.stop());
}
