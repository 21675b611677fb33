// One node's membership of a cluster: the Redis link and the bus, opened when `cluster.redis` is set
// (src/server.ts passes nothing of this anywhere when it is empty: the single node stays on its own
// store with no Redis). The seams for dialog ownership (nodes.ts, lease.ts: heartbeat, leases,
// takeover) hang off this object: they need the link, the bus, the node id and the lease time.
import type { Logger } from 'pino';
import { z } from 'zod';
import { ConfigError } from '../config/load.js';
import { PUBLICATIONS, type PresenceAgent, type PublicationRecord } from '../presence/pa.js';
import { WATCHERS, type WatcherRecord, type WatcherRegistry } from '../presence/watchers.js';
import type { XcapDocuments } from '../xcap/documents.js';
import { ResourceFeed } from './feed.js';
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

/** A change to one XCAP document, told to every node (kind "xcap" on the `xcap` topic). */
const XcapChange = z.object({ kind: z.literal('xcap'), auid: z.string().min(1).max(100), owner: z.string().min(1).max(1000), name: z.string().min(1).max(1000) });
export const XCAP_TOPIC = 'xcap';

export interface SharedParts {
  pa: PresenceAgent;
  watchers: WatcherRegistry;
  documents: XcapDocuments;
}

/**
 * Shares this node's state with the others (docs/cluster.md):
 * - publications and watcher lists per resource, through the ResourceFeed (`res:<aor>`, only while
 *   this node holds watchers of it);
 * - XCAP documents on one topic every node listens to: rules decide every watcher of their owner, IM
 *   rules every MESSAGE, resource lists every list subscription, wherever they are held, and a
 *   document changes by hand, rarely — a broadcast costs little and every node re-reads at once;
 * - users need nothing: they are read from the shared store at each request (src/auth/users.ts).
 * Resolves once this node listens to the broadcast topic, before it serves anything.
 */
export async function shareState(cluster: Cluster, parts: SharedParts, log: Logger): Promise<ResourceFeed> {
  const feed = new ResourceFeed(cluster.bus, cluster.link, log);
  parts.pa.share(feed.sharing<PublicationRecord>('publication', PUBLICATIONS));
  parts.watchers.share(feed.sharing<WatcherRecord>('watchers', WATCHERS));
  parts.documents.share((auid, owner, name) => {
    cluster.bus.publish(XCAP_TOPIC, { kind: 'xcap', auid, owner, name }).catch(() => feed.unsent++);
  });
  cluster.bus.listen(XCAP_TOPIC, (m) => {
    const c = XcapChange.safeParse(m);
    if (c.success) parts.documents.reload(c.data.auid, c.data.owner, c.data.name).catch(() => undefined);
  });
  cluster.link.on('up', () => {
    parts.documents.resync().catch(() => undefined);
  });
  await cluster.bus.subscribed(XCAP_TOPIC);
  return feed;
}
