/** Reading Server-Sent Events in tests: whole `event:`/`data:` blocks out of a stream's chunks. */

export interface SseEvent {
  event: string;
  /** The `data:` line parsed as JSON, or null when there is none. */
  data: any;
  /** When this process read it (Date.now()). */
  at: number;
}

/**
 * A `data` handler for a response read with `setEncoding('utf8')`: calls `onEvent` for each
 * complete block that names an event, in order, however the chunks cut the blocks.
 */
export function sseReader(onEvent: (e: SseEvent) => void): (chunk: string) => void {
  let buf = '';
  return (chunk) => {
    buf += chunk;
    for (let i; (i = buf.indexOf('\n\n')) >= 0; buf = buf.slice(i + 2)) {
      const block = buf.slice(0, i);
      const event = /^event: (.*)$/m.exec(block)?.[1];
      const data = /^data: (.*)$/m.exec(block)?.[1];
      if (event) onEvent({ event, data: data ? JSON.parse(data) : null, at: Date.now() });
    }
  };
}
