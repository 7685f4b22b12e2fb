import { redisTestEngine } from '../support/redis.js';
import { engineContract } from './engine.contract.js';

// The same contract on a 3-master Redis Cluster: each sale's keys in one slot, leases and
// used-once tokens wherever their slots fall, the client following MOVED redirections.
engineContract('redis cluster', () => redisTestEngine({ cluster: true }));
