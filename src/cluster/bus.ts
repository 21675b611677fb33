// The cluster bus: Redis pub/sub between Herald nodes (channels `herald:<topic>`).
//
// Pub/sub, not streams: a message says only "this changed, read it again" and the state itself is in
// the shared store, so a message lost while a node was away costs nothing that the catch-up on return
// (re-reading what the node holds) does not repair; no consumer groups or trimming are needed.
// A node listens only to the topics of resources its watchers hold (`res:<aor>`), to its own
// `node:<id>`, and to the few broadcast topics every node needs (docs/cluster.md): Redis then sends a
// node only what concerns it.
//
// Every message is checked with zod on receipt (another node may run another version, and Redis is a
// network peer like any other): malformed or oversized ones are dropped, and a node ignores its own.
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { RedisLink } from './redis.js';

export interface BusMessage {
  kind: string;
  [k: string]: unknown;
}

export interface ClusterBus {
  readonly nodeId: string;
  /** To every node that listens on the topic (resource changes: `res:<aor>`; one node: `node:<id>`). */
  publish(topic: string, message: BusMessage): Promise<void>;
  /** Starts receiving a topic; a node listens only to the resources its watchers hold, and to node:<own id>. */
  listen(topic: string, handler: (m: BusMessage, fromNode: string) => void): () => void;
}

/** Channel names carry this prefix, so Herald shares a Redis with others without crosstalk. */
export const CHANNEL_PREFIX = 'herald:';
/** Larger messages are refused on sending and dropped on receipt: the bus carries notices, not documents. */
export const MAX_BUS_MESSAGE_BYTES = 64 * 1024;

const Envelope = z.object({
  from: z.string().min(1).max(128),
  message: z.looseObject({ kind: z.string().min(1).max(64) }),
});

/** A node id for this process: a restarted process is a new node (its dialogs are taken over, not resumed). */
export function newNodeId(): string {
  const host = hostname().replace(/[^A-Za-z0-9.-]/g, '-').slice(0, 40) || 'node';
  return `${host}-${process.pid}-${randomBytes(2).toString('hex')}`;
}

type Handler = (m: BusMessage, fromNode: string) => void;

interface Topic {
  handlers: Set<Handler>;
  /** Settles when Redis confirmed the subscription (or it failed: `active` false, tried again on `up`). */
  subscribed: Promise<void>;
  active: boolean;
}

export class RedisBus implements ClusterBus {
  private readonly topics = new Map<string, Topic>();
  /** Messages dropped as malformed since start (the log says it once per kind of trouble, not per message). */
  dropped = 0;

  constructor(
    readonly nodeId: string,
    private readonly link: RedisLink,
    private readonly log: Logger,
  ) {
    // @redis/client subscribes its channels again after a reconnect; only those whose SUBSCRIBE failed
    // (sent while Redis was away) are this bus's to repeat.
    link.on('up', () => {
      for (const [topic, t] of this.topics) if (!t.active) t.subscribed = this.subscribe(topic, t);
    });
  }

  async publish(topic: string, message: BusMessage): Promise<void> {
    const text = JSON.stringify({ from: this.nodeId, message });
    if (Buffer.byteLength(text) > MAX_BUS_MESSAGE_BYTES) throw new Error(`bus message of kind ${message.kind} too large`);
    await this.link.run((c) => c.publish(CHANNEL_PREFIX + topic, text));
  }

  listen(topic: string, handler: Handler): () => void {
    let t = this.topics.get(topic);
    if (!t) {
      const fresh: Topic = { handlers: new Set(), subscribed: Promise.resolve(), active: false };
      fresh.subscribed = this.subscribe(topic, fresh);
      this.topics.set(topic, fresh);
      t = fresh;
    }
    t.handlers.add(handler);
    const mine = t;
    return () => {
      if (!mine.handlers.delete(handler) || mine.handlers.size > 0 || this.topics.get(topic) !== mine) return;
      this.topics.delete(topic);
      if (mine.active) this.link.subscriber.unsubscribe(CHANNEL_PREFIX + topic, this.receive).catch(() => undefined);
      mine.active = false;
    };
  }

  /**
   * Resolves once Redis confirmed the topic's subscription (at once when nobody listens to it, or when
   * the subscription failed — then it is tried again when Redis is back, and the catch-up covers the gap).
   * A listener that must not miss a change reads the state after this, not before.
   */
  subscribed(topic: string): Promise<void> {
    return this.topics.get(topic)?.subscribed ?? Promise.resolve();
  }

  /** Topics listened to now (admin, tests). */
  listening(): string[] {
    return [...this.topics.keys()];
  }

  private async subscribe(topic: string, t: Topic): Promise<void> {
    try {
      // The subscriber connection is its own round trip; it is not counted with the commands.
      await this.link.subscriber.subscribe(CHANNEL_PREFIX + topic, this.receive);
      if (this.topics.get(topic) === t) t.active = true;
      // Unlistened while the SUBSCRIBE was under way (and not listened to again): undo it.
      else if (!this.topics.has(topic)) await this.link.subscriber.unsubscribe(CHANNEL_PREFIX + topic, this.receive);
    } catch {
      t.active = false;
    }
  }

  private readonly receive = (text: string, channel: string): void => {
    if (!channel.startsWith(CHANNEL_PREFIX)) return;
    const topic = channel.slice(CHANNEL_PREFIX.length);
    const t = this.topics.get(topic);
    if (!t) return;
    if (text.length > MAX_BUS_MESSAGE_BYTES) return this.drop(topic, 'too large');
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch {
      return this.drop(topic, 'not JSON');
    }
    const parsed = Envelope.safeParse(raw);
    if (!parsed.success) return this.drop(topic, 'not a bus message');
    if (parsed.data.from === this.nodeId) return;
    for (const h of [...t.handlers]) {
      try {
        h(parsed.data.message as BusMessage, parsed.data.from);
      } catch (e) {
        this.log.error({ err: (e as Error).message, topic, kind: parsed.data.message.kind }, 'cluster: bus handler failed');
      }
    }
  };

  private drop(topic: string, why: string): void {
    // Bounded logging: the first drop and then every thousandth.
    if (this.dropped++ % 1000 === 0) this.log.warn({ topic, why, dropped: this.dropped }, 'cluster: dropped a malformed bus message');
  }
}
