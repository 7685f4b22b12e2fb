/**
 * Server-Sent Events for waiting shoppers. Each change the sale monitor reports is turned into
 * one message per kind and fanned out to every open stream of that sale on this node:
 * inventory, sold_out and ended are the same bytes for everyone; position is one short line per
 * stream, and sent at most once a second per sale; admitted goes only to the streams whose
 * place the watermark just passed (streams are kept sorted by place for that).
 */
import type { ServerResponse } from 'node:http';
import type { LiveSale, SaleMonitor, ChangeKind } from './sale-monitor.js';

export interface Stream {
  saleId: string;
  userId: string;
  place: number;
  shadow: boolean;
  res: ServerResponse;
  admitted: boolean;
  closed?: boolean;
}

interface SaleStreams {
  all: Set<Stream>;
  /** Real waiting streams not yet told they are admitted: a min-heap by place. */
  pending: PlaceHeap;
  lastPositionAt: number;
  positionTimer: NodeJS.Timeout | null;
  lastInventory: string;
}

const POSITION_EVERY_MS = 1000;
const KEEPALIVE_MS = 15_000;

export const sseMessage = (event: string, data: unknown) => `event: ${event}\ndata: ${JSON.stringify(data)}\n\n`;

export class SseHub {
  private readonly sales = new Map<string, SaleStreams>();
  private readonly keepalive: NodeJS.Timeout;
  private closed = false;

  constructor(private readonly monitor: SaleMonitor, private readonly onCount: (n: number) => void = () => {}) {
    monitor.on('change', (live, kinds) => this.onChange(live, kinds));
    this.keepalive = setInterval(() => this.broadcastAll(':\n\n'), KEEPALIVE_MS);
    this.keepalive.unref();
  }

  get size(): number {
    let n = 0;
    for (const s of this.sales.values()) n += s.all.size;
    return n;
  }

  /** Registers an open stream; it is dropped when the client goes away. */
  add(stream: Stream): void {
    if (this.closed) { stream.res.end(); return; }
    let s = this.sales.get(stream.saleId);
    if (!s) this.sales.set(stream.saleId, (s = { all: new Set(), pending: new PlaceHeap(), lastPositionAt: 0, positionTimer: null, lastInventory: '' }));
    s.all.add(stream);
    if (!stream.shadow && !stream.admitted && stream.place > 0) s.pending.push(stream);
    stream.res.on('close', () => this.remove(stream));
    this.onCount(this.size);
  }

  /** Ends every stream (graceful shutdown: clients reconnect to another node). */
  close(): void {
    this.closed = true;
    clearInterval(this.keepalive);
    for (const s of this.sales.values()) {
      if (s.positionTimer) clearTimeout(s.positionTimer);
      for (const stream of s.all) stream.res.end();
    }
    this.sales.clear();
  }

  private remove(stream: Stream): void {
    const s = this.sales.get(stream.saleId);
    if (!s) return;
    stream.closed = true;
    s.all.delete(stream);
    if (s.all.size === 0) {
      if (s.positionTimer) clearTimeout(s.positionTimer);
      this.sales.delete(stream.saleId);
    }
    this.onCount(this.size);
  }

  private onChange(live: LiveSale, kinds: Set<ChangeKind>): void {
    const s = this.sales.get(live.saleId);
    if (!s) return;
    const status = live.status;
    if (kinds.has('status') && (status === 'sold_out' || status === 'ended' || status === 'cancelled')) {
      const event = status === 'sold_out' ? 'sold_out' : 'ended';
      this.broadcast(s, sseMessage(event, { status, sale_status: status, inventory: live.snapshot.remaining }));
      if (event === 'ended') for (const stream of s.all) stream.res.end();
      return;
    }
    if (kinds.has('inventory') || kinds.has('status')) {
      const items = Object.entries(live.snapshot.remaining).map(([sku, remaining]) => ({ sku, remaining }));
      const msg = sseMessage('inventory', { items, sold_out: status === 'sold_out', sale_status: status });
      if (msg !== s.lastInventory) { s.lastInventory = msg; this.broadcast(s, msg); }
    }
    if (kinds.has('position')) {
      this.admit(s, live);
      this.schedulePositions(s, live.saleId);
    }
  }

  private admit(s: SaleStreams, live: LiveSale): void {
    const wm = live.snapshot.watermark;
    while (s.pending.size && s.pending.peek()!.place <= wm) {
      const stream = s.pending.pop()!;
      if (stream.closed) continue;
      stream.admitted = true;
      stream.res.write(sseMessage('admitted', { status: 'admitted', place: stream.place, watermark: wm }));
    }
  }

  /** Positions go out at most once a second per sale: the latest picture wins. */
  private schedulePositions(s: SaleStreams, saleId: string): void {
    if (s.positionTimer) return;
    const wait = Math.max(0, s.lastPositionAt + POSITION_EVERY_MS - Date.now());
    s.positionTimer = setTimeout(() => {
      s.positionTimer = null;
      s.lastPositionAt = Date.now();
      const live = this.monitor.get(saleId);
      if (!live) return;
      const { watermark, entered } = live.snapshot;
      const rate = live.drainPerSec;
      for (const stream of s.all) {
        if (stream.admitted || stream.place === 0) continue;
        const position = Math.max(1, stream.place - watermark);
        stream.res.write(`event: position\ndata: {"status":"waiting","position":${position},"watermark":${watermark},"entered":${entered},"estimated_wait_sec":${rate > 0 ? Math.ceil(position / rate) : 'null'}}\n\n`);
      }
    }, wait);
    s.positionTimer.unref();
  }

  private broadcast(s: SaleStreams, msg: string): void {
    for (const stream of s.all) stream.res.write(msg);
  }

  private broadcastAll(msg: string): void {
    for (const s of this.sales.values()) this.broadcast(s, msg);
  }
}

/** A binary min-heap of streams by place; closed streams are dropped lazily when popped. */
class PlaceHeap {
  private readonly items: Stream[] = [];

  get size() { return this.items.length; }
  peek(): Stream | undefined { return this.items[0]; }

  push(stream: Stream): void {
    const a = this.items;
    a.push(stream);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (a[parent].place <= a[i].place) break;
      [a[parent], a[i]] = [a[i], a[parent]];
      i = parent;
    }
  }

  pop(): Stream | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length && last) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && a[l].place < a[m].place) m = l;
        if (r < a.length && a[r].place < a[m].place) m = r;
        if (m === i) break;
        [a[m], a[i]] = [a[i], a[m]];
        i = m;
      }
    }
    return top;
  }
}
