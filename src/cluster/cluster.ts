// One node's membership of a cluster: the Redis link and the bus, opened when `cluster.redis` is set
// (src/server.ts passes nothing of this anywhere when it is empty: the single node stays on its own
// store with no Redis). The seams for dialog ownership (nodes.ts, lease.ts: heartbeat, leases,
// takeover) hang off this object: they need the link, the bus, the node id and the lease time.
import type { Logger } from 'pino';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { RedisBus, newNodeId } from './bus.js';
import { RedisLink } from './redis.js';

export interface Cluster {
  readonly nodeId: string;
  readonly link: RedisLink;
  readonly bus: RedisBus;
  /** cluster.lease in milliseconds (h10own's leases run this long without renewal). */
  readonly leaseMs: number;
  close(): Promise<void>;
}

export async function openCluster(config: Config['cluster'], log: Logger): Promise<Cluster> {
  const nodeId = config.node_id || newNodeId();
  let link: RedisLink;
  try {
    link = await RedisLink.open(config.redis, log.child({ node: nodeId }));
  } catch (e) {
    throw new ConfigError(`cluster.redis: ${(e as Error).message}`);
  }
  const bus = new RedisBus(nodeId, link, log);
  log.info({ node: nodeId, redis: config.redis }, `cluster: node ${nodeId} on ${config.redis}`);
  return { nodeId, link, bus, leaseMs: config.lease * 1000, close: () => link.close() };
}
