/**
 * Two limits every tier puts on waiting: a deadline on one call, and a bound on how many calls
 * run at once. One copy of each, so a deadline always clears its timer and a sweep never runs
 * unbounded.
 */

/**
 * `call`, or `late()` thrown once `ms` pass without an answer. The call itself runs on; should it
 * fail after the deadline answered, nobody is waiting for it any more.
 */
export async function withDeadline<T>(call: Promise<T>, ms: number, late: () => Error): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(late()), ms);
  });
  call.catch(() => {});
  try {
    return await Promise.race([call, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** Runs `each` over `items`, at most `limit` at a time; returns how many answered true. */
export async function countEach<T>(items: readonly T[], limit: number, each: (item: T) => Promise<boolean>): Promise<number> {
  let yes = 0;
  let next = 0;
  const worker = async () => {
    while (next < items.length) if (await each(items[next++])) yes++;
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return yes;
}
