import { MemoryEngine } from '../../src/engine/memory/memory-engine.js';
import { engineContract } from './engine.contract.js';

engineContract('memory', async () => {
  const engine = new MemoryEngine();
  return { engine, cleanup: () => engine.close() };
});
