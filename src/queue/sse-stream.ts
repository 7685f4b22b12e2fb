/** The shapes the event-stream hub keeps: one open stream, and the streams of one sale. */
import type { ServerResponse } from 'node:http';
import type { HeapMember, PlaceHeap } from './place-heap.js';

export interface StreamInit {
  saleId: string;
  userId: string;
  /** The ticket's place; 0 for a pre-queue ticket before the draw. */
  place: number;
  shadow: boolean;
  admitted: boolean;
  /** The client's address, for the per-address cap. */
  ip: string;
  res: ServerResponse;
  /** Finds a pre-queue ticket's drawn place once the draw happened (0 until then). */
  resolvePlace?: () => Promise<number>;
}

export interface Stream extends StreamInit, HeapMember {
  closed: boolean;
  /** The position this stream was last told, and when (Date.now()); 0 before the first. */
  toldPosition?: number;
  toldPositionAt?: number;
}

/** One message for many streams, written a slice at a time: the same bytes, or one per stream (null: nothing for it). */
export interface FanOutJob {
  /** At most one job of a kind waits behind the one being written: a newer picture replaces it. */
  kind: 'inventory' | 'position' | 'keepalive' | 'final';
  targets: Stream[];
  next: number;
  message: string | ((stream: Stream) => string | null);
  /** Streams written per turn of the event loop. */
  slice: number;
}

export interface SaleStreams {
  all: Set<Stream>;
  /** One stream per ticket (a ticket is one user's place in one sale): a new one replaces the old. */
  byUser: Map<string, Stream>;
  /** Real waiting streams not yet told they are admitted, by place. */
  pending: PlaceHeap<Stream>;
  /** Pre-queue streams whose place is not known yet (opened before the draw). */
  undrawn: Set<Stream>;
  resolving: boolean;
  lastPositionAt: number;
  positionTimer: NodeJS.Timeout | null;
  lastInventory: string;
  lastInventoryAt: number;
  inventoryTimer: NodeJS.Timeout | null;
  /** Messages waiting to be written to every stream, in order; the first is being written. */
  fanOut: FanOutJob[];
  /** A turn of the event loop is booked to write the next slice. */
  sliceScheduled: boolean;
}

export interface SseHubOptions {
  /** Streams one address may hold at once; 0: no cap. */
  streamsPerAddress?: number;
  /** Called with the number of open streams whenever it changes (a gauge). */
  onCount?: (n: number) => void;
  /** Streams one fan-out writes per turn of the event loop (default 1,000), and for sold_out (default 10,000). */
  slice?: number;
  soldOutSlice?: number;
  /** A failure that is not a client's doing (the engine, resolving drawn places). */
  onError?: (err: unknown, saleId: string) => void;
}
