/**
 * Prometheus metrics. Each app gets its own registry (tests build many apps in one process).
 * Engine and ledger calls are timed by wrapping the port objects once, so no caller has to.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly httpDuration = new Histogram({
    name: 'stampede_http_request_duration_seconds',
    help: 'HTTP request latency by route',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [this.registry],
  });
  readonly engineDuration = new Histogram({
    name: 'stampede_engine_call_duration_seconds',
    help: 'Engine call latency by operation',
    labelNames: ['op'],
    buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25],
    registers: [this.registry],
  });
  readonly ledgerDuration = new Histogram({
    name: 'stampede_ledger_call_duration_seconds',
    help: 'Ledger call latency by operation',
    labelNames: ['op'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly rejections = new Counter({
    name: 'stampede_rejections_total',
    help: 'Refused requests by sale and error code',
    labelNames: ['sale', 'code'],
    registers: [this.registry],
  });
  readonly driftRepairs = new Counter({
    name: 'stampede_drift_repairs_total',
    help: 'Drift checks that found the engine apart from the ledger, by sale and whether they repaired it',
    labelNames: ['sale', 'fixed'],
    registers: [this.registry],
  });
  readonly sseConnections = new Gauge({
    name: 'stampede_sse_connections',
    help: 'Open event streams on this node',
    registers: [this.registry],
  });

  constructor(opts: { defaults?: boolean } = {}) {
    if (opts.defaults) collectDefaultMetrics({ register: this.registry });
  }
}

/** Wraps every method of `target` that returns a promise so its duration lands in `histogram`. */
export function instrument<T extends object>(target: T, histogram: Histogram<'op'>): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver);
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const timer = histogram.labels({ op: prop });
      return (...args: unknown[]) => {
        const start = process.hrtime.bigint();
        const result = value.apply(obj, args);
        if (!(result instanceof Promise)) return result;
        return result.finally(() => timer.observe(Number(process.hrtime.bigint() - start) / 1e9));
      };
    },
  });
}
