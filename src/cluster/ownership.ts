// Dialog ownership for one node of a cluster: its heartbeat (nodes.ts), the leases (lease.ts) on the
// link's command connection, and the takeover of dead nodes' dialogs (takeover.ts). The wiring
// (src/server.ts) opens it only when cluster.redis is set.
import type { Logger } from 'pino';
import type { Cluster } from './cluster.js';
import { DialogLeases } from './lease.js';
import { ClusterNodes, type LuaRedis } from './nodes.js';
import { Takeover } from './takeover.js';

export interface Ownership {
  readonly nodes: ClusterNodes;
  readonly leases: DialogLeases;
  readonly takeover: Takeover;
  /** Joins (the heartbeat runs from here on); before the node accepts requests, which claim dialogs. */
  start(): Promise<void>;
  /** Looks for dead nodes now (once the node can serve what it takes over), then every lease/3. */
  scan(): void;
  /** Leaves: the other nodes take this node's dialogs over at their next scan. */
  stop(): Promise<void>;
}

export function openOwnership(cluster: Cluster, log: Logger): Ownership {
  // Every script is one round trip through the link: counted for the bench, and refused at once
  // (StoreUnavailable) while Redis is away.
  const redis: LuaRedis = { eval: (script, options) => cluster.link.run((c) => c.eval(script, options)) };
  const nodes = new ClusterNodes(redis, { nodeId: cluster.nodeId, leaseMs: cluster.leaseMs, log });
  const leases = new DialogLeases(redis, nodes);
  const takeover = new Takeover(leases, log);
  return {
    nodes,
    leases,
    takeover,
    start: () => nodes.start(),
    scan: () => void nodes.scanDead(),
    stop: () => nodes.stop(),
  };
}
