/**
 * What the rehearsal records about one simulated shopper, and the context every shopper runs
 * in. Records are plain and small: a 100,000-shopper run keeps them all for the report.
 */
import type { Dispatcher } from 'undici';
import type { Client } from './client.js';
import type { Identities } from './identities.js';
import type { Solver } from './solver.js';

export type Outcome = 'pending' | 'bought' | 'sold_out' | 'expired' | 'ended' | 'stopped' | 'error';

export interface ShopperRecord {
  n: number;
  kind: 'human' | 'bot';
  /** How a person waits: an event stream, or polling status every 2 s. Bots don't wait. */
  channel: 'sse' | 'poll' | 'bot';
  address: string;
  /** When the shopper arrives (local epoch ms). */
  arriveAt: number;
  userId?: string;
  /** When the first enter-queue request was sent, and when an answer (the last try's) came back. */
  enterSentAt?: number;
  enterDoneAt?: number;
  /** The place the ticket names (0: a pre-queue place, drawn at the start). */
  place?: number;
  /** When this shopper learnt it was admitted (local), and the watermark the message named. */
  admittedAt?: number;
  admitWatermark?: number;
  /** When the server says it admitted the place (its `admission_expires_at` less the TTL), on the server's clock. */
  serverAdmittedAt?: number;
  /** An admitted message for a place above the watermark it named. */
  admittedAbove?: boolean;
  /** Still told "waiting" after the watermark passed its place: held back as a suspected bot. */
  heldBack?: boolean;
  /** The highest watermark any node showed it (sent back as `seen`), and the last position shown. */
  seen?: number;
  lastPosition?: number;
  /** What a view stepped back to after a better one (behind a balancer, a node with an older picture): "waiting after admitted", "position 7 after 5". */
  steppedBack?: string;
  /** When and how it learnt the sale sold out, and whether it was still waiting in line then. */
  soldOutAt?: number;
  soldOutVia?: 'sse' | 'poll' | 'purchase' | 'enter';
  waitingWhenSoldOut?: boolean;
  /** From the first purchase request to the final answer, retries included (ms). */
  checkoutMs?: number;
  purchaseRequests: number;
  /** Orders the server answered 201 for: [order id, status, sku]. */
  orders: Array<[string, string, string]>;
  outcome: Outcome;
  error?: string;
}

export interface DropOptions {
  /** Share of people who poll status every 2 s instead of holding an event stream. */
  pollShare: number;
  /** Event streams this process may hold at once; people beyond it poll. */
  maxStreams: number;
  /** Share of people whose first purchase is sent twice at once (a double click). */
  doubleClickShare: number;
  /** How often a bot retries its purchase (ms). */
  botIntervalMs: number;
  /** Sockets per bot address. */
  botConnections: number;
  /** People's "think time" between solving the challenge and pressing enter (ms range). */
  thinkMs: [number, number];
  pollEveryMs: number;
}

export interface SaleFacts {
  id: string;
  skus: string[];
  admittedTtlSec: number;
  /** Local epoch ms at which the sale opens (server time converted). */
  opensAt: number;
  pow: boolean;
}

/** Shared by every shopper of one run. */
export interface DropContext {
  client: Client;
  ids: Identities;
  solver: Solver;
  sale: SaleFacts;
  opts: DropOptions;
  /** Tag in idempotency keys and user ids, so two runs never collide. */
  tag: string;
  /** Set when the run is over: everyone still going stops. */
  stopped: boolean;
  onStop: Promise<void>;
  streamsOpen: number;
  /** First order id answered per idempotency key, and keys answered with two different orders. */
  keyAnswers: Map<string, string>;
  keyConflicts: Array<{ key: string; first: string; second: string }>;
  /** The shopper's pool for requests (a few sockets per address), and for its event stream. */
  agent(rec: ShopperRecord): Dispatcher;
  streamAgent(rec: ShopperRecord): Dispatcher;
}
