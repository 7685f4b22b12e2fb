/**
 * Web Worker: solves an ALTCHA v1 proof-of-work challenge off the main thread, so the page stays
 * responsive and can draw the progress. Finds n in 0..maxnumber with SHA-256(salt + n) == challenge,
 * hashing with Web Crypto in batches (one await per batch, not per hash), and reports progress.
 *
 * In:  {algorithm, challenge, maxnumber, salt, signature}
 * Out: {progress: n} ... then {solution: base64 JSON, tried} or {error}
 */
const BATCH = 500;
const enc = new TextEncoder();

self.onmessage = async ({ data: c }) => {
  try {
    if (c.algorithm !== 'SHA-256' || !/^[0-9a-f]{64}$/.test(c.challenge)) throw new Error('Unsupported challenge');
    const want = new Uint8Array(c.challenge.match(/../g).map((h) => parseInt(h, 16)));
    let lastReport = 0;
    for (let start = 0; start <= c.maxnumber; start += BATCH) {
      const end = Math.min(c.maxnumber, start + BATCH - 1);
      const jobs = [];
      for (let n = start; n <= end; n++) jobs.push(crypto.subtle.digest('SHA-256', enc.encode(c.salt + n)));
      const hashes = await Promise.all(jobs);
      for (let i = 0; i < hashes.length; i++) {
        if (same(new Uint8Array(hashes[i]), want)) {
          const number = start + i;
          const payload = { algorithm: c.algorithm, challenge: c.challenge, number, salt: c.salt, signature: c.signature };
          self.postMessage({ solution: btoa(JSON.stringify(payload)), tried: number + 1 });
          return;
        }
      }
      const now = performance.now();
      if (now - lastReport > 50) {
        lastReport = now;
        self.postMessage({ progress: end + 1 });
      }
    }
    throw new Error('No solution found');
  } catch (err) {
    self.postMessage({ error: String(err?.message ?? err) });
  }
};

function same(a, b) {
  for (let i = 0; i < 32; i++) if (a[i] !== b[i]) return false;
  return true;
}
