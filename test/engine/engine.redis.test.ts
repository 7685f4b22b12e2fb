import { redisTestEngine } from '../support/redis.js';
import { engineContract } from './engine.contract.js';

engineContract('redis', redisTestEngine);
