/**
 * The admission leader's loop: one sale whose engine calls fail (its shard, or one of its lanes'
 * masters, not answering) must not stop the steps of the other sales it leads.
 */
import { expect, it } from 'vitest';
import type { Engine } from '../../src/engine/engine.js';
import { EngineClock } from '../../src/engine/engine-clock.js';
import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { StampedeError } from '../../src/errors.js';
import { AdmissionController } from '../../src/queue/admission-controller.js';
import { SaleMonitor } from '../../src/queue/sale-monitor.js';
import { engineSale, freshLoad } from '../support/sales.js';

it('a sale whose step fails does not stop the steps of the sales after it', async () => {
  const memory = new MemoryEngine();
  const broken = engineSale();
  const healthy = engineSale();
  // The broken sale's admit fails as an unreachable Redis master does; everything else is the engine's.
  const engine = new Proxy(memory, {
    get(target, prop, receiver) {
      if (prop === 'admit') return (saleId: string) => (saleId === broken.id ? Promise.reject(new StampedeError('UNAVAILABLE')) : target.admit(saleId));
      const value = Reflect.get(target, prop, receiver) as unknown;
      return typeof value === 'function' ? value.bind(target) : value;
    },
  }) as Engine;
  const errors: unknown[] = [];
  const monitor = new SaleMonitor(engine, new EngineClock(engine));
  const controller = new AdmissionController(engine, monitor, { nodeId: 'n1', onError: (err) => errors.push(err) });
  // The broken one first: it is watched (and so stepped) before the healthy one.
  for (const sale of [broken, healthy]) {
    await engine.loadSale(freshLoad(sale));
    await engine.enterQueue(sale.id, `someone-${sale.id}`, { draw: 0 });
    await monitor.watch(sale.id);
  }
  expect(monitor.watched()).toEqual([broken.id, healthy.id]);
  await new Promise((r) => setTimeout(r, 5));
  await controller.tick();
  expect(errors.map((e) => (e as StampedeError).code)).toEqual(['UNAVAILABLE']);
  expect((await engine.snapshot(healthy.id, 0)).watermark).toBe(1);
  expect((await engine.snapshot(broken.id, 0)).watermark).toBe(0);
  await controller.stop();
  await memory.close();
});
