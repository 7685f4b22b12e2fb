/** A worker thread that solves proof-of-work challenges for the rehearsal's shoppers. */
import { parentPort } from 'node:worker_threads';
import { solveChallenge, type PowChallenge } from '../../src/defence/proof-of-work.js';

parentPort!.on('message', async ({ id, challenge }: { id: number; challenge: PowChallenge }) => {
  try {
    parentPort!.postMessage({ id, payload: await solveChallenge(challenge) });
  } catch (err) {
    parentPort!.postMessage({ id, error: (err as Error).message });
  }
});
