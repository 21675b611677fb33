// Changes to resources, between the nodes that hold them: a node listens on `res:<aor>` while it holds
// watchers of that resource, so Redis sends it only what concerns it. The message says only what kind
// of records changed (publications, the watcher list); the records themselves are read again from the
// shared store, which stays the one truth — a lost or late message costs a stale moment, never a
// wrong state, and the catch-up after an outage (every held resource read again) repairs it.
import type { Logger } from 'pino';
import { readGroup } from '../store/redis.js';
import type { ResourceSharing } from '../store/sharing.js';
import type { RedisBus } from './bus.js';
import type { RedisLink } from './redis.js';

export const resourceTopic = (resource: string): string => `res:${resource}`;

export class ResourceFeed {
  /** Every held (resource, kind) and how to read it again: the catch-up when Redis is back. */
  private readonly held = new Set<{ resource: string; kind: string; resync: () => void }>();
  /** Change notices that could not be sent (Redis away): the others catch up when it is back. */
  unsent = 0;

  constructor(
    private readonly bus: RedisBus,
    private readonly link: RedisLink,
    private readonly log: Logger,
  ) {
    link.on('up', () => {
      for (const h of [...this.held]) h.resync();
    });
  }

  /** Records of one kind, grouped per resource in a collection of the shared store. */
  sharing<R>(kind: string, namespace: string): ResourceSharing<R> {
    return {
      load: async (resource) => (await readGroup<R>(this.link, namespace, resource)).map(([, r]) => r),
      changed: (resource) => this.announce(resource, kind),
      hold: (resource, resync) => this.hold(resource, kind, resync),
    };
  }

  private hold(resource: string, kind: string, resync: () => void): () => void {
    const topic = resourceTopic(resource);
    const entry = { resource, kind, resync };
    this.held.add(entry);
    const unlisten = this.bus.listen(topic, (m) => {
      if (m.kind === kind) resync();
    });
    // Read once listening, so a change made between the read and the SUBSCRIBE is not missed.
    void this.bus.subscribed(topic).then(() => {
      if (this.held.has(entry)) resync();
    });
    return () => {
      this.held.delete(entry);
      unlisten();
    };
  }

  private announce(resource: string, kind: string): void {
    this.bus.publish(resourceTopic(resource), { kind }).catch((e: unknown) => {
      this.unsent++;
      this.log.debug({ resource, kind, err: (e as Error).message }, 'cluster: change notice not sent');
    });
  }
}
