/**
 * The queue tier as a Fastify plugin: the waiting room (`queue`) and its event streams
 * (`streams`) for the routes; the live picture of each sale and the admission controller run
 * while the app is up.
 */
import fp from 'fastify-plugin';
import type { Runtime } from '../runtime.js';

export const queuePlugin = fp<{ runtime: Runtime }>(
  async (app, { runtime }) => {
    app.decorate('queue', runtime.queue);
    app.decorate('streams', runtime.sse);
    if (runtime.workers) {
      app.addHook('onReady', async () => {
        runtime.monitor.start();
        runtime.admission.start();
      });
    }
    // Event streams are hijacked connections the server would wait on for ever: end them first.
    app.addHook('preClose', (done) => {
      runtime.sse.close();
      done();
    });
    app.addHook('onClose', async () => {
      await runtime.admission.stop();
      runtime.monitor.stop();
    });
  },
  { name: 'queue' },
);
