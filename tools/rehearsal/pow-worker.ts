/** A worker thread that solves proof-of-work challenges for the rehearsal's shoppers. */
import { parentPort } from 'node:worker_threads';
import { solveChallenge, type PowChallenge } from '../../src/defence/proof-of-work.js';

async function solve({ id, challenge }: { id: number; challenge: PowChallenge }): Promise<void> {
  try {
    parentPort!.postMessage({ id, payload: await solveChallenge(challenge) });
  } catch (err) {
    parentPort!.postMessage({ id, error: (err as Error).message });
  }
}

// solve() answers every message, failures included: nothing is left to reject.
parentPort!.on('message', (msg: { id: number; challenge: PowChallenge }) => {
  void solve(msg);
});
