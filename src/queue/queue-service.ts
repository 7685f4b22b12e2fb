/**
 * The waiting room: entering the queue and asking where one stands. Places come from the
 * engine (one atomic counter or the pre-queue draw), never from a node's clock. Status is
 * derived from the ticket's place and the node's live picture of the sale, so a poll costs an
 * HMAC check and some arithmetic — no engine call.
 */
import { randomInt } from 'node:crypto';
import type { Engine } from '../engine/engine.js';
import type { EngineClock } from '../engine/engine-clock.js';
import { StampedeError, UNAVAILABLE_RETRY_AFTER_SEC, isUnavailable } from '../errors.js';
import type { Order, Sale } from '../ledger/ledger.js';
import type { SaleService } from '../sales/sale-service.js';
import type { AdmissionPassSigner } from './admission-pass.js';
import type { LiveSale, SaleMonitor } from './sale-monitor.js';
import type { Ticket, TicketSigner } from './ticket.js';

/** How long after the sale ends a ticket still verifies (to read the final state). */
const TICKET_GRACE_MS = 3_600_000;

export type TicketStatus = 'waiting' | 'admitted' | 'sold_out' | 'ended' | 'expired' | 'purchased';

export interface TicketView {
  status: TicketStatus;
  sale_status: string;
  place: number | null;
  position: number | null;
  estimated_wait_sec: number | null;
  inventory_remaining: number;
  watermark: number;
  starts_at: string;
  server_time: string;
  admission_expires_at?: string;
  admission_pass?: string;
  order_id?: string;
  order_status?: string;
  /** Present (true) when the answer comes from the last picture because the engine or the ledger is not answering. */
  stale?: true;
}

/** What the entry gate (bot defence) says about a client entering the queue. */
export interface EntryVerdict {
  shadowReason?: string;
}

export interface EntryGate {
  /** Throws (POW_INVALID, CAPTCHA_INVALID, RATE_LIMITED ...) or says whether to shadow the client. */
  check(sale: Sale, entry: EntryAttempt): Promise<EntryVerdict>;
}

export interface EntryAttempt {
  userId: string;
  ip: string;
  fingerprint?: string;
  pow?: unknown;
  captchaToken?: string;
}

/** What the waiting room asks the checkout tier: a shopper's live order, to say "purchased". */
export interface LiveOrders {
  liveOrderOf(saleId: string, userId: string): Promise<Order | null>;
}

export class QueueService {
  private readonly drawn = new Map<string, number>();

  constructor(
    private readonly engine: Engine,
    private readonly monitor: SaleMonitor,
    private readonly clock: EngineClock,
    private readonly sales: SaleService,
    private readonly tickets: TicketSigner,
    private readonly passes: AdmissionPassSigner,
    private readonly gate: EntryGate,
    private readonly orders: LiveOrders,
  ) {}

  async enter(saleId: string, attempt: EntryAttempt): Promise<TicketView & { queue_ticket: string }> {
    const sale = await this.sales.get(saleId);
    const live = await this.live(saleId);
    if (live.status === 'cancelled') throw new StampedeError('SALE_CANCELLED');
    if (live.status === 'ended') throw new StampedeError('SALE_ENDED');
    // A sale with queue lanes places a newcomer above the line this node last saw; while the
    // engine cannot be read, that line may be far behind, and a place below the real one would
    // be "admitted" with a window that began long ago. Come back shortly instead.
    if (live.stale && (sale.queue.shards ?? 1) > 1) throw new StampedeError('UNAVAILABLE', undefined, { retryAfter: UNAVAILABLE_RETRY_AFTER_SEC });
    const verdict = await this.gate.check(sale, attempt);
    // The draw is only used for pre-queue entrants: uniform over 2^47, from the CSPRNG. The
    // floor (a sale with queue lanes): a newcomer's place is above the line as this node saw it.
    const entered = await this.engine.enterQueue(saleId, attempt.userId, {
      draw: randomInt(2 ** 47) / 2 ** 47,
      shadowReason: verdict.shadowReason,
      floor: { watermark: live.snapshot.watermark, epoch: live.snapshot.epoch },
    });
    const ticket: Ticket = {
      saleId,
      userId: attempt.userId,
      place: entered.place,
      epoch: entered.epoch,
      shadow: entered.shadow,
      issuedAt: this.clock.now(saleId),
      expiresAt: sale.endsAt.getTime() + TICKET_GRACE_MS,
    };
    const queue_ticket = this.tickets.sign(ticket);
    // The queue was rebuilt since this node's picture (the engine lost the sale): read it afresh
    // rather than tell a newcomer their brand-new ticket is of a restarted queue.
    const current = entered.epoch === live.snapshot.epoch ? live : ((await this.monitor.refresh(saleId)) ?? live);
    return { queue_ticket, ...(await this.view(sale, current, ticket)) };
  }

  /** Verifies a ticket for this sale (any holder: the signed ticket is the credential). */
  verify(saleId: string, token: string | undefined, userId?: string): Ticket {
    return this.tickets.verify(token, saleId, this.clock.now(saleId), userId);
  }

  async status(saleId: string, token: string | undefined, seen?: number): Promise<TicketView> {
    const ticket = this.verify(saleId, token);
    const [sale, live] = await Promise.all([this.sales.get(saleId), this.live(saleId, ticket, seen)]);
    return this.view(sale, live, ticket);
  }

  /** The ticket's real place, resolving a pre-queue ticket's drawn place once the draw happened. */
  async placeOf(ticket: Ticket): Promise<number> {
    if (ticket.place > 0) return ticket.place;
    // A drawn place never changes, so each pre-queue entrant costs one engine call per node, not one per poll.
    const key = `${ticket.saleId}|${ticket.userId}`;
    const known = this.drawn.get(key);
    if (known) return known;
    const place = (await this.engine.placeOf(ticket.saleId, ticket.userId)) ?? 0;
    if (place > 0) {
      if (this.drawn.size >= 200_000) this.drawn.clear();
      this.drawn.set(key, place);
    }
    return place;
  }

  /**
   * A pre-queue ticket's place for a status answer: unknown (0) while the engine cannot be
   * asked, so a waiting shopper still gets an answer (without a position) during an outage.
   */
  async placeOrUnknown(ticket: Ticket): Promise<number> {
    try {
      return await this.placeOf(ticket);
    } catch (err) {
      if (isUnavailable(err)) return 0;
      throw err;
    }
  }

  /**
   * This node's picture of the sale. With `ticket` and `seen` (the highest watermark its holder
   * was shown, by any node): a picture older than that — this node polls the engine every 100 ms,
   * and the last answer may have come from a node that polled later — is read afresh first, so a
   * shopper's view never steps back between nodes: not from admitted to waiting, not to a longer
   * line, not from a drawn place to none. The read is the monitor's, shared by every request
   * waiting on the same sale, so a client sending a huge `seen` costs one engine read per round
   * trip at most, not one per request.
   */
  async live(saleId: string, ticket?: Ticket, seen?: number): Promise<LiveSale> {
    let live = this.monitor.get(saleId) ?? (await this.monitor.watch(saleId));
    if (live && seen !== undefined && ticket && behind(live, ticket, seen)) live = (await this.monitor.refresh(saleId)) ?? live;
    if (live) return live;
    // No picture of this sale yet, and the engine is not answering: not "no such sale".
    if (this.monitor.engineUnavailable) throw new StampedeError('UNAVAILABLE', undefined, { retryAfter: UNAVAILABLE_RETRY_AFTER_SEC });
    throw new StampedeError('SALE_NOT_FOUND');
  }

  /** Where the ticket stands. Shared by status polls, the SSE stream's first message and enter. */
  async view(sale: Sale, live: LiveSale, ticket: Ticket): Promise<TicketView> {
    const snap = live.snapshot;
    if (ticket.epoch !== snap.epoch) throw new StampedeError('QUEUE_RESTARTED');
    const now = this.clock.now(sale.id);
    const place = ticket.place > 0 || !snap.drawn ? ticket.place : await this.placeOrUnknown(ticket);
    const base = {
      sale_status: live.status,
      place: place || null,
      inventory_remaining: totalRemaining(snap),
      watermark: snap.watermark,
      starts_at: isoOf(sale.startsAt),
      server_time: isoAt(now),
      ...(live.stale || this.sales.stale(sale.id) ? { stale: true as const } : {}),
    };
    const done = (status: TicketStatus): TicketView => ({ ...base, status, position: null, estimated_wait_sec: null });

    if (live.status === 'ended' || live.status === 'cancelled') return done('ended');
    // Took a hold once: purchased if that order is still confirmed or reserved (not declined or lapsed).
    if (!ticket.shadow && live.buyers.has(ticket.userId)) {
      const order = await this.orders.liveOrderOf(sale.id, ticket.userId);
      if (order) return { ...done('purchased'), order_id: order.id, order_status: order.status };
    }
    if (live.status === 'sold_out') return done('sold_out');

    const ttlMs = sale.queue.admittedTtlSec * 1000;
    if (!ticket.shadow && place > 0 && place <= snap.watermark) {
      const admittedAt = this.monitor.admittedAt(sale.id, place) ?? now;
      const expiresAt = admittedAt + ttlMs;
      if (now >= expiresAt) return done('expired');
      const pass = await this.passes.sign({ saleId: sale.id, userId: ticket.userId, place, expiresAt });
      return { ...done('admitted'), admission_expires_at: new Date(expiresAt).toISOString(), admission_pass: pass };
    }
    // Waiting (shadow tickets always are): how many are ahead, and how long that takes to drain.
    const ahead = place > 0 ? Math.max(1, place - snap.watermark) : null;
    const rate = live.drainPerSec > 0 ? live.drainPerSec : sale.queue.admissionRatePerSec;
    const untilStart = Math.max(0, sale.startsAt.getTime() - now) / 1000;
    const eta = ahead === null ? Math.ceil(untilStart + snap.prequeued / (2 * rate)) : Math.ceil(untilStart + ahead / rate);
    return { ...base, status: 'waiting', position: ahead, estimated_wait_sec: eta };
  }
}

/** Whether `live` is older than what the ticket's holder already saw: a lower watermark, or the draw not yet seen. */
function behind(live: LiveSale, ticket: Ticket, seen: number): boolean {
  const snap = live.snapshot;
  if (ticket.epoch !== snap.epoch) return true;
  return seen > snap.watermark || (ticket.place === 0 && !snap.drawn && live.status === 'open');
}

// A status poll is the most frequent request of a drop; these parts of its answer change
// rarely (per snapshot, per sale) or are shared by every poll in the same millisecond.
const remainingOf = new WeakMap<LiveSale['snapshot'], number>();
function totalRemaining(snap: LiveSale['snapshot']): number {
  let total = remainingOf.get(snap);
  if (total === undefined) {
    total = 0;
    for (const n of Object.values(snap.remaining)) total += n;
    remainingOf.set(snap, total);
  }
  return total;
}

const isoOfDate = new WeakMap<Date, string>();
function isoOf(d: Date): string {
  let iso = isoOfDate.get(d);
  if (iso === undefined) isoOfDate.set(d, (iso = d.toISOString()));
  return iso;
}

let lastMs = NaN;
let lastIso = '';
function isoAt(ms: number): string {
  if (ms !== lastMs) {
    lastMs = ms;
    lastIso = new Date(ms).toISOString();
  }
  return lastIso;
}
