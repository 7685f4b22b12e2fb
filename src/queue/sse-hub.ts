/**
 * Server-Sent Events for waiting shoppers. Each change the sale monitor reports is turned into
 * one message per kind and fanned out to every open stream of that sale on this node:
 * inventory, sold_out and ended are the same bytes for everyone; position is one short line per
 * stream, and sent at most once a second per sale; admitted goes only to the streams whose
 * place the watermark just passed (streams are kept in a heap by place for that).
 *
 * Each write to a stream is a system call (~30–50 µs here), so a node holding 10,000 streams
 * pays a third of a second of CPU per message for everyone. Three rules keep that off the event
 * loop's back (measured: before them, one inventory message per monitor tick to every stream
 * starved checkouts, and a fan-out held the loop for hundreds of ms while new connections
 * waited to be accepted):
 *   - inventory goes out at most once a second per sale (the latest picture), sold_out at once;
 *   - a waiting stream hears a new position when it moved by 1 % or more, or every 10 s: the
 *     front of the line sees every step, the back of a 100,000-strong line is not told 199,000
 *     times a second that it moved by 0.2 %;
 *   - a message for every stream is written 1,000 streams per turn of the event loop (sold_out
 *     10,000), messages in order (one fan-out at a time per sale, at most one more of each kind
 *     waiting, the newest), so requests and new connections get their turn.
 *
 * A client may vanish at any moment — before its stream is registered, in the middle of a
 * broadcast, while the sale is being cancelled. A stream that ended, for whatever reason, is
 * dropped from every list at once (`drop` is the one way out), and no write ever reaches an
 * ended response: one dead socket cannot take a broadcast, let alone the process, down.
 */
import { PlaceHeap } from './place-heap.js';
import type { FanOutJob, SaleStreams, SseHubOptions, Stream, StreamInit } from './sse-stream.js';

export type { StreamInit, SseHubOptions } from './sse-stream.js';
import type { LiveSale, SaleMonitor, ChangeKind } from './sale-monitor.js';

const POSITION_EVERY_MS = 1000;
const INVENTORY_EVERY_MS = 1000;
/** A waiting stream is told its position when it moved by this share of it, or after POSITION_STALE_MS. */
const POSITION_STEP = 0.01;
const POSITION_STALE_MS = 10_000;
/** Streams written per turn of the event loop by one fan-out. */
const FAN_OUT_SLICE = 1000;
/**
 * The same for sold_out, the message a waiting crowd is there for: a loaded node's turn can take
 * hundreds of ms, so every extra turn shows in "sold out reached everyone" (~0.4 s of writes per
 * 10,000 streams here, once).
 */
const SOLD_OUT_SLICE = 10_000;
const KEEPALIVE_MS = 15_000;
/** Drawn places looked up at once after the draw. */
const RESOLVE_BATCH = 100;

export const sseMessage = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export class SseHub {
  private readonly sales = new Map<string, SaleStreams>();
  private readonly addresses = new Map<string, number>();
  private readonly keepalive: NodeJS.Timeout;
  private count = 0;
  private closed = false;

  constructor(
    private readonly monitor: SaleMonitor,
    private readonly opts: SseHubOptions = {},
  ) {
    monitor.on('change', (live, kinds) => this.onChange(live, kinds));
    this.keepalive = setInterval(() => {
      for (const s of this.sales.values()) this.fan(s, 'keepalive', ':\n\n');
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  get size(): number {
    return this.count;
  }

  /** Streams this node holds for one sale. */
  streamsOf(saleId: string): number {
    return this.sales.get(saleId)?.all.size ?? 0;
  }

  /** The sales this node holds streams for. */
  saleIds(): string[] {
    return [...this.sales.keys()];
  }

  /** What the hub holds, for tests and the dashboard: everything returns to zero when clients leave. */
  stats(): { streams: number; sales: number; pending: number; undrawn: number; addresses: number } {
    let pending = 0;
    let undrawn = 0;
    for (const s of this.sales.values()) {
      pending += s.pending.size;
      undrawn += s.undrawn.size;
    }
    return { streams: this.count, sales: this.sales.size, pending, undrawn, addresses: this.addresses.size };
  }

  /**
   * Whether `ip` may open another stream for this ticket. Replacing the ticket's own stream from
   * the same address costs nothing. Ask right before `add`, with no await between the two.
   */
  hasRoom(ip: string, saleId: string, userId: string): boolean {
    const cap = this.opts.streamsPerAddress ?? 0;
    if (cap === 0 || (this.addresses.get(ip) ?? 0) < cap) return true;
    return this.sales.get(saleId)?.byUser.get(userId)?.ip === ip;
  }

  /** Registers an open stream (its headers and first message already written). */
  add(init: StreamInit): void {
    const stream: Stream = { ...init, closed: false, heapIndex: -1 };
    const { res } = stream;
    // The client may have gone while the route was still working: then it never registers.
    if (this.closed || res.destroyed || res.writableEnded || res.socket?.destroyed) {
      this.end(stream);
      return;
    }
    res.on('close', () => this.drop(stream));
    res.on('error', () => this.drop(stream));
    const live = this.monitor.get(stream.saleId);
    if (live && (live.status === 'ended' || live.status === 'cancelled')) {
      this.end(stream, sseMessage('ended', { status: live.status, sale_status: live.status, inventory: live.snapshot.remaining }));
      return;
    }

    // Before the sale's lists are taken: dropping the only stream of a sale removes them.
    const previous = this.sales.get(stream.saleId)?.byUser.get(stream.userId);
    if (previous) this.drop(previous, sseMessage('replaced', { reason: 'This ticket opened a newer event stream; this one is closed' }));
    let s = this.sales.get(stream.saleId);
    if (!s) {
      s = {
        all: new Set(),
        byUser: new Map(),
        pending: new PlaceHeap(),
        undrawn: new Set(),
        resolving: false,
        lastPositionAt: 0,
        positionTimer: null,
        lastInventory: '',
        lastInventoryAt: 0,
        inventoryTimer: null,
        fanOut: [],
        sliceScheduled: false,
      };
      this.sales.set(stream.saleId, s);
    }
    s.all.add(stream);
    s.byUser.set(stream.userId, stream);
    // Its first message told it where it stands: the next position is due when it moved from there.
    if (live && stream.place > 0) {
      stream.toldPosition = Math.max(1, stream.place - live.snapshot.watermark);
      stream.toldPositionAt = Date.now();
    }
    this.addresses.set(stream.ip, (this.addresses.get(stream.ip) ?? 0) + 1);
    this.count++;
    if (!stream.shadow && !stream.admitted) {
      if (stream.place > 0) s.pending.push(stream);
      else if (stream.resolvePlace) s.undrawn.add(stream);
    }
    this.opts.onCount?.(this.count);
    // Opened after the draw but registered with no place (or admitted in between): catch up now.
    if (live?.snapshot.drawn && s.undrawn.size) this.resolveDrawn(s, live.saleId);
    if (live) this.admit(s, live);
  }

  /**
   * Ends every stream (graceful shutdown). Each is told `reconnect` first, with a short retry, so
   * its client opens a new stream at once — through the balancer, to another node.
   */
  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    const last = `retry: 500\n${sseMessage('reconnect', { reason: 'This node is shutting down; open the stream again' })}`;
    for (const s of [...this.sales.values()]) for (const stream of [...s.all]) this.drop(stream, last);
  }

  /**
   * The one way a stream leaves: out of every list at once, its address released, its response
   * ended (after `last`, when given and still writable). Idempotent.
   */
  private drop(stream: Stream, last?: string): void {
    if (stream.closed) return;
    stream.closed = true;
    const s = this.sales.get(stream.saleId);
    if (s?.all.delete(stream)) {
      this.count--;
      const n = (this.addresses.get(stream.ip) ?? 1) - 1;
      if (n > 0) this.addresses.set(stream.ip, n);
      else this.addresses.delete(stream.ip);
      s.pending.remove(stream);
      s.undrawn.delete(stream);
      if (s.byUser.get(stream.userId) === stream) s.byUser.delete(stream.userId);
      if (s.all.size === 0) {
        if (s.positionTimer) clearTimeout(s.positionTimer);
        if (s.inventoryTimer) clearTimeout(s.inventoryTimer);
        s.fanOut.length = 0;
        this.sales.delete(stream.saleId);
      }
      this.opts.onCount?.(this.count);
    }
    this.end(stream, last);
  }

  /** Ends a response, writing `last` first if it still can; never throws. */
  private end(stream: Stream, last?: string): void {
    const { res } = stream;
    stream.closed = true;
    if (res.writableEnded || res.destroyed) return;
    try {
      if (last) res.write(last);
      res.end();
    } catch {
      res.destroy();
    }
  }

  /** Writes to one stream; a stream that can no longer be written to is dropped instead. */
  private send(stream: Stream, msg: string): void {
    if (stream.closed) return;
    const { res } = stream;
    if (res.writableEnded || res.destroyed) {
      this.drop(stream);
      return;
    }
    try {
      res.write(msg);
    } catch {
      this.drop(stream);
    }
  }

  private onChange(live: LiveSale, kinds: Set<ChangeKind>): void {
    const s = this.sales.get(live.saleId);
    if (!s) return;
    const status = live.status;
    if (kinds.has('status') && (status === 'sold_out' || status === 'ended' || status === 'cancelled')) {
      const event = status === 'sold_out' ? 'sold_out' : 'ended';
      const msg = sseMessage(event, { status, sale_status: status, inventory: live.snapshot.remaining });
      if (event === 'ended') {
        for (const stream of [...s.all]) this.drop(stream, msg);
        return;
      }
      // Positions and inventory still to come would contradict it: their timers go too.
      if (s.positionTimer) clearTimeout(s.positionTimer);
      if (s.inventoryTimer) clearTimeout(s.inventoryTimer);
      s.positionTimer = s.inventoryTimer = null;
      // What streams last heard is sold_out: should units come back, the next inventory goes out.
      s.lastInventory = '';
      this.fan(s, 'final', msg);
      return;
    }
    if (kinds.has('inventory') || kinds.has('status')) this.scheduleInventory(s, live.saleId);
    if (kinds.has('position')) {
      if (live.snapshot.drawn && s.undrawn.size) this.resolveDrawn(s, live.saleId);
      this.admit(s, live);
      this.schedulePositions(s, live.saleId);
    }
  }

  private admit(s: SaleStreams, live: LiveSale): void {
    const wm = live.snapshot.watermark;
    while (s.pending.size && s.pending.peek()!.place <= wm) {
      const stream = s.pending.pop()!;
      stream.admitted = true;
      this.send(stream, sseMessage('admitted', { status: 'admitted', place: stream.place, watermark: wm }));
    }
  }

  /**
   * After the pre-queue draw, looks up the place of every stream that opened before it, so they
   * hear their position and `admitted` like everyone else. One pass at a time per sale; a
   * stream the engine could not place yet stays for the next change.
   */
  private resolveDrawn(s: SaleStreams, saleId: string): void {
    if (s.resolving) return;
    s.resolving = true;
    void (async () => {
      const todo = [...s.undrawn];
      for (let i = 0; i < todo.length; i += RESOLVE_BATCH) {
        await Promise.all(
          todo.slice(i, i + RESOLVE_BATCH).map(async (stream) => {
            let place = 0;
            try {
              place = stream.closed ? 0 : await stream.resolvePlace!();
            } catch (err) {
              this.opts.onError?.(err, saleId);
            }
            if (place > 0 && !stream.closed && s.undrawn.delete(stream)) {
              stream.place = place;
              s.pending.push(stream);
            }
          }),
        );
      }
      s.resolving = false;
      const live = this.monitor.get(saleId);
      if (live && this.sales.get(saleId) === s) {
        this.admit(s, live);
        this.schedulePositions(s, saleId);
      }
    })();
  }

  /** Inventory goes out at most once a second per sale: the latest picture wins, and an unchanged one is not sent. */
  private scheduleInventory(s: SaleStreams, saleId: string): void {
    if (s.inventoryTimer) return;
    const wait = Math.max(0, s.lastInventoryAt + INVENTORY_EVERY_MS - Date.now());
    s.inventoryTimer = setTimeout(() => {
      s.inventoryTimer = null;
      const live = this.monitor.get(saleId);
      if (!live || this.sales.get(saleId) !== s || live.status === 'sold_out') return;
      const status = live.status;
      const items = Object.entries(live.snapshot.remaining).map(([sku, remaining]) => ({ sku, remaining }));
      const msg = sseMessage('inventory', { items, sold_out: false, sale_status: status });
      if (msg === s.lastInventory) return;
      s.lastInventory = msg;
      s.lastInventoryAt = Date.now();
      this.fan(s, 'inventory', msg);
    }, wait);
    s.inventoryTimer.unref();
  }

  /** Positions go out at most once a second per sale: the latest picture wins. */
  private schedulePositions(s: SaleStreams, saleId: string): void {
    if (s.positionTimer) return;
    const wait = Math.max(0, s.lastPositionAt + POSITION_EVERY_MS - Date.now());
    s.positionTimer = setTimeout(() => {
      s.positionTimer = null;
      s.lastPositionAt = Date.now();
      const live = this.monitor.get(saleId);
      if (!live || this.sales.get(saleId) !== s || live.status === 'sold_out') return;
      const { watermark, entered } = live.snapshot;
      const rate = live.drainPerSec;
      const now = Date.now();
      // Each stream's line is made when its turn comes (it may have been admitted meanwhile).
      this.fan(s, 'position', (stream) => {
        if (stream.admitted || stream.place === 0) return null;
        const position = Math.max(1, stream.place - watermark);
        const told = stream.toldPosition ?? 0;
        if (told > 0 && told - position < Math.max(1, told * POSITION_STEP) && now - (stream.toldPositionAt ?? 0) < POSITION_STALE_MS) return null;
        stream.toldPosition = position;
        stream.toldPositionAt = now;
        return `event: position\ndata: {"status":"waiting","position":${position},"watermark":${watermark},"entered":${entered},"estimated_wait_sec":${rate > 0 ? Math.ceil(position / rate) : 'null'}}\n\n`;
      });
    }, wait);
    s.positionTimer.unref();
  }

  /**
   * Queues a message for every stream open now, and writes it a slice per turn of the event
   * loop; fan-outs of one sale run one after another, so each stream hears them in order. A
   * stream that opens meanwhile got the current state as its first message. At most one job of
   * a kind waits behind the one being written (the newer replaces it), so a node slower than the
   * pictures it is sent never builds a backlog; sold_out and ended ('final') replace everything.
   */
  private fan(s: SaleStreams, kind: FanOutJob['kind'], message: FanOutJob['message']): void {
    const slice = kind === 'final' ? (this.opts.soldOutSlice ?? SOLD_OUT_SLICE) : (this.opts.slice ?? FAN_OUT_SLICE);
    const job: FanOutJob = { kind, targets: [...s.all], next: 0, message, slice };
    if (kind === 'final') s.fanOut.length = 0;
    // A job of this kind not yet begun is stale: this one takes its place in the line.
    const waiting = s.fanOut.findIndex((j) => j.kind === kind && j.next === 0);
    if (waiting >= 0) s.fanOut[waiting] = job;
    else s.fanOut.push(job);
    if (!s.sliceScheduled) this.writeSlice(s);
  }

  /** Writes up to a slice of streams (skipping closed ones and those with nothing to hear costs a tenth). */
  private writeSlice(s: SaleStreams): void {
    s.sliceScheduled = false;
    let budget = (s.fanOut[0]?.slice ?? 0) * 10;
    try {
      while (s.fanOut.length > 0 && budget > 0) {
        const job = s.fanOut[0];
        let writes = 0;
        for (; job.next < job.targets.length && writes < job.slice && budget > 0; job.next++) {
          const stream = job.targets[job.next];
          budget--;
          if (stream.closed) continue;
          const msg = typeof job.message === 'string' ? job.message : job.message(stream);
          if (msg === null) continue;
          this.send(stream, msg);
          writes++;
          budget -= 9;
        }
        if (job.next >= job.targets.length) s.fanOut.shift();
        else break;
      }
    } finally {
      if (s.fanOut.length > 0) {
        s.sliceScheduled = true;
        setImmediate(() => this.writeSlice(s));
      }
    }
  }
}
