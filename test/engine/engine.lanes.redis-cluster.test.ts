/**
 * Queue lanes on a real 3-master Redis Cluster: a sale with 3 lanes puts one lane on each master
 * (its own slot's master gets the third), so its entries load every shard; dropping the sale
 * removes every lane's keys. The lanes' arithmetic is in the engine contract, run here too.
 */
import { randomUUID } from 'node:crypto';
import type { Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { keySlot } from '../../src/engine/redis/key-slot.js';
import { admitAll, engineSale, enterAndAdmit, freshLoad } from '../support/sales.js';
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

  it('a lane whose master lost its keys starts again above the line: no place handed out twice below it, and the queue goes on', async (ctx) => {
    if (!fx) return ctx.skip();
    const cluster = fx.redis as Cluster;
    const sale = engineSale({ queueShards: 3 });
    await fx.engine.loadSale(freshLoad(sale));
    const before = await enterAndAdmit(
      fx.engine,
      sale.id,
      Array.from({ length: 60 }, (_, i) => `before-${i}`),
    );
    const { watermark, epoch } = await fx.engine.snapshot(sale.id, 0);
    expect(watermark).toBe(Math.max(...before.values()));

    // One master restarts empty: its lane's counters and places are gone.
    const byMaster = await laneKeysByMaster(cluster, fx.prefix, sale.id);
    const [lost] = [...byMaster.values()].filter((keys) => keys.length > 0);
    for (const key of lost) await cluster.del(key);
    const lostTag = lost[0].slice(lost[0].indexOf('{'), lost[0].indexOf('}') + 1);

    // Newcomers (and anyone entering again) in that lane get places above the line the node saw,
    // never one of the places already admitted.
    const after = Array.from({ length: 60 }, (_, i) => `after-${i}`);
    const places = new Map<string, number>();
    for (const user of after) places.set(user, (await fx.engine.enterQueue(sale.id, user, { draw: 0, floor: { watermark, epoch } })).place);
    const taken = new Set(before.values());
    for (const place of places.values()) {
      expect(place).toBeGreaterThan(watermark);
      expect(taken.has(place)).toBe(false);
    }
    expect(new Set(places.values()).size).toBe(60);
    // The lost lane got some of them, and the queue admits all 60, counting people, not the gap.
    const relaid = (await laneKeysByMaster(cluster, fx.prefix, sale.id)).get([...byMaster].find(([, keys]) => keys === lost)![0])!;
    expect(relaid.some((key) => key.includes(lostTag))).toBe(true);
    const top = await admitAll(fx.engine, sale.id);
    expect(top).toBe(Math.max(...places.values()));
    expect((await fx.engine.snapshot(sale.id, 0)).waiting).toBe(0);
    await fx.engine.dropSale(sale.id);
  });

  it("a later end moves the lanes' expiry with it", async (ctx) => {
    if (!fx) return ctx.skip();
    const cluster = fx.redis as Cluster;
    const sale = engineSale({ queueShards: 3, startsAt: Date.now() + 3_600_000, endsAt: Date.now() + 7_200_000 });
    await fx.engine.loadSale(freshLoad(sale));
    for (let i = 0; i < 30; i++) await fx.engine.enterQueue(sale.id, `early-${i}`, { draw: 0 });
    const later = { ...sale, endsAt: sale.endsAt + 5 * 3_600_000 };
    await fx.engine.updateSale(later);
    const keys = [...(await laneKeysByMaster(cluster, fx.prefix, sale.id)).values()].flat();
    expect(keys.length).toBe(6);
    for (const key of keys) expect(Number(await cluster.pexpiretime(key))).toBe(later.endsAt + 3_600_000);
    await fx.engine.dropSale(sale.id);
  });
});
