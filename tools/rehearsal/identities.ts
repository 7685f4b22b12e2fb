/**
 * Who the simulated shoppers are to the server. With the shop's signing secret
 * (`--user-secret`, the server's STAMPEDE_USER_JWT_SECRET) each gets an HS256 JWT whose `sub`
 * we choose (`h-…` for people, `b-…` for bots), which is how the shop's login would issue
 * them. Without it, on a demo-mode server, each asks `POST /api/session` for a guest token and
 * we remember which guest id is whose, so the ledger's orders can still be told apart.
 */
import { SignJWT } from 'jose';
import type { Dispatcher } from 'undici';
import type { Client } from './client.js';

export interface Identity {
  userId: string;
  token: string;
}

export class Identities {
  /** Guest ids handed out by the server, by whether a bot holds them. */
  readonly botIds = new Set<string>();
  private readonly secret: Uint8Array | null;

  constructor(
    private readonly client: Client,
    secret: string | undefined,
    private readonly runTag: string,
  ) {
    this.secret = secret ? new TextEncoder().encode(secret) : null;
  }

  get mode(): 'jwt' | 'demo-session' {
    return this.secret ? 'jwt' : 'demo-session';
  }

  async issue(kind: 'human' | 'bot', n: number, agent: Dispatcher): Promise<Identity> {
    if (this.secret) {
      const userId = `${kind === 'bot' ? 'b' : 'h'}-${this.runTag}-${n}`;
      const token = await new SignJWT({}).setProtectedHeader({ alg: 'HS256' }).setSubject(userId).setIssuedAt().setExpirationTime('6h').sign(this.secret);
      if (kind === 'bot') this.botIds.add(userId);
      return { userId, token };
    }
    for (let attempt = 0; ; attempt++) {
      const r = await this.client.call(kind === 'bot' ? 'bot:session' : 'session', 'POST', '/api/session', { agent, json: {} });
      if (r.status === 201 && r.body?.token) {
        if (kind === 'bot') this.botIds.add(r.body.user_id);
        return { userId: r.body.user_id, token: r.body.token };
      }
      if (r.status === 404) throw new Error('the server gives no guest sessions (not demo mode): pass --user-secret (its STAMPEDE_USER_JWT_SECRET)');
      if (attempt >= 5) throw new Error(`POST /api/session failed: ${r.status} ${JSON.stringify(r.body)}`);
      await new Promise((res) => setTimeout(res, r.retryAfterMs ?? 200 * (attempt + 1)));
    }
  }
}

/** True when `userId` is one of the bots (JWT ids carry it; guest ids are looked up). */
export function isBot(ids: Identities, userId: string): boolean {
  return userId.startsWith('b-') || ids.botIds.has(userId);
}
