/**
 * Queue lanes on a real 3-master Redis Cluster: a sale with 3 lanes puts one lane on each master
 * (its own slot's master gets the third), so its entries load every shard; dropping the sale
 * removes every lane's keys. The lanes' arithmetic is in the engine contract, run here too.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/engine/redis/key-slot.js';
import { engineSale, enterAndAdmit, freshLoad } from '../support/sales.js';
import { redisTestEngine, type RedisTestEngine } from '../support/redis.js';

describe('queue lanes on a Redis Cluster', () => {
  let fx: RedisTestEngine | null;
  beforeAll(async () => {
    fx = await redisTestEngine({ cluster: true });
  });
  afterAll(async () => {
    await fx?.cleanup();
  });

  /** Each master's keys of the sale's lanes (SCAN on every master). */
  async function laneKeysByMaster(cluster: Cluster, prefix: string, saleId: string) {
    const byMaster = new Map<string, string[]>();
    for (const master of cluster.nodes('master')) {
      const keys: string[] = [];
      let cursor = '0';
      do {
        const [next, found] = await master.scan(cursor, 'MATCH', `${prefix}:{sale:${saleId}:q*`, 'COUNT', 1000);
        keys.push(...found);
        cursor = next;
      } while (cursor !== '0');
      byMaster.set(`${master.options.host}:${master.options.port}`, keys);
    }
    return byMaster;
  }

  it('the key slot function agrees with the cluster', async (ctx) => {
    if (!fx) return ctx.skip();
    const cluster = fx.redis as Cluster;
    for (const key of ['plain', `${fx.prefix}:{sale:abc}:meta`, `x{}y`, `{a}{b}`, `über:{tag}`, randomUUID()]) {
      expect(keySlot(key)).toBe(Number(await cluster.call('CLUSTER', 'KEYSLOT', key)));
    }
  });

  it('3 lanes land on 3 different masters, and dropping the sale removes them all', async (ctx) => {
    if (!fx) return ctx.skip();
    const cluster = fx.redis as Cluster;
    const sale = engineSale({ queueShards: 3 });
    await fx.engine.loadSale(freshLoad(sale));
    const places = await enterAndAdmit(
      fx.engine,
      sale.id,
      Array.from({ length: 90 }, (_, i) => `c${i}`),
    );
    expect(new Set(places.values()).size).toBe(90);

    const byMaster = await laneKeysByMaster(cluster, fx.prefix, sale.id);
    expect(byMaster.size).toBe(3);
    for (const [master, keys] of byMaster) {
      // Each master holds one lane: its counters and places (no shadows were given).
      expect(keys.length, `lane keys on ${master}: ${keys.join(', ')}`).toBe(2);
      const tags = new Set(keys.map((key) => key.slice(key.indexOf('{'), key.indexOf('}') + 1)));
      expect(tags.size).toBe(1);
      // They expire an hour after the sale ends, whatever else happens.
      for (const key of keys) expect(Number(await cluster.pexpiretime(key))).toBe(sale.endsAt + 3_600_000);
    }

    await fx.engine.dropSale(sale.id);
    for (const keys of (await laneKeysByMaster(cluster, fx.prefix, sale.id)).values()) expect(keys).toEqual([]);
  });
});
