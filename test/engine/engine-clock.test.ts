/**
 * The engine clock keeps one offset per sale: on a Redis Cluster each sale's scripts run on its
 * shard, with that shard's clock, so a node must judge a sale's times (open or not, a ticket's
 * age, a reservation's window) on the clock of the shard that stamped them.
 */
import { describe, expect, it } from 'vitest';
import { EngineClock } from '../../src/engine/engine-clock.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';

describe('EngineClock', () => {
  it('judges each sale on its own shard clock, and falls back to the engine clock last seen', async () => {
    let local = 1_000_000;
    const shardA = { skew: 5_000 };
    const shardB = { skew: -3_000 };
    const clock = new EngineClock(new MemoryEngine(), () => local);
    // Snapshots of two sales on two shards, read at local time 1,000,000.
    clock.observe(local + shardA.skew, local, 'sale-a');
    clock.observe(local + shardB.skew, local, 'sale-b');
    local += 250;
    expect(clock.now('sale-a')).toBe(local + shardA.skew);
    expect(clock.now('sale-b')).toBe(local + shardB.skew);
    // A sale never read, and no sale at all: the engine as last seen (sale-b's shard, read last).
    expect(clock.now('sale-c')).toBe(local + shardB.skew);
    expect(clock.now()).toBe(local + shardB.skew);
    // A later reading of shard A moves sale-a only (and the engine-wide fallback).
    clock.observe(local + 6_000, local, 'sale-a');
    expect([clock.now('sale-a'), clock.now('sale-b')]).toEqual([local + 6_000, local + shardB.skew]);
    // A sale no longer followed falls back.
    clock.forget('sale-b');
    expect(clock.now('sale-b')).toBe(local + 6_000);
  });

  it('sync() measures the engine with one round trip and leaves the sales it knows alone', async () => {
    const engineAt = 50_000_000;
    const engine = new MemoryEngine({ clock: () => engineAt });
    const clock = new EngineClock(engine, () => 1_000);
    clock.observe(1_000 + 42, 1_000, 'sale-a');
    await clock.sync();
    expect(clock.now()).toBe(engineAt);
    expect(clock.now('sale-a')).toBe(1_042);
  });
});
