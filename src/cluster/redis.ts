// The link to the cluster's Redis: one connection for commands, a second for pub/sub (a subscribed
// RESP2 connection can issue nothing else), both from @redis/client.
//
// Availability is the link's business, not every caller's: it logs ONE line when Redis becomes
// unreachable and one when it is back (never one per command), emits `down`/`up`, and turns every
// command tried while down into StoreUnavailable at once — the offline queue is off, so nothing waits
// for a Redis that may never come back and nothing is acknowledged that Redis has not acknowledged.
// @redis/client reconnects by itself (backoff below) and subscribes its channels again on return;
// listeners of `up` re-read what changed meanwhile (the catch-up, docs/cluster.md).
import { EventEmitter } from 'node:events';
import { ErrorReply, createClient } from '@redis/client';
import type { Logger } from 'pino';
import { StoreUnavailable } from '../store/unavailable.js';

export type RedisClient = ReturnType<typeof createClient>;

/** Reconnect backoff: 100 ms doubling to 2 s, for ever once started (Redis restarted or a network cut). */
const backoff = (retries: number): number => Math.min(100 * 2 ** retries, 2000);
/** Tries at start before a Redis that refuses connections is the operator's error. */
const START_RETRIES = 3;
/** A start that cannot reach Redis fails after this long with one line naming cluster.redis. */
const CONNECT_TIMEOUT_MS = 5000;
/**
 * A command unanswered this long fails (StoreUnavailable): a Redis that hangs without closing the
 * socket (paused, a network black hole) must not hold requests for ever.
 */
const COMMAND_TIMEOUT_MS = 5000;

export interface RedisLinkEvents {
  down: [];
  up: [];
}

export class RedisLink extends EventEmitter<RedisLinkEvents> {
  /** Commands. Use through run() so round trips are counted and outages answered uniformly. */
  readonly client: RedisClient;
  /** Pub/sub only (ClusterBus). */
  readonly subscriber: RedisClient;
  /** Round trips to Redis since start (a MULTI or a script counts once): the bench divides by PUBLISHes and NOTIFYs. */
  roundTrips = 0;
  private isUp = false;
  /** Transitions are logged only after the start (where failing is the caller's error, not an outage). */
  private opened = false;
  private closing = false;

  private constructor(
    readonly url: string,
    private readonly log: Logger,
  ) {
    super();
    const reconnectStrategy = (retries: number, cause: Error): number | Error => (!this.opened && retries >= START_RETRIES ? cause : backoff(retries));
    this.client = createClient({ url, disableOfflineQueue: true, commandOptions: { timeout: COMMAND_TIMEOUT_MS }, socket: { connectTimeout: CONNECT_TIMEOUT_MS, reconnectStrategy } });
    this.subscriber = this.client.duplicate();
    for (const c of [this.client, this.subscriber]) {
      // An 'error' listener is required (an unhandled one would end the process); the state change is
      // what is logged, once, below.
      c.on('error', () => this.update());
      c.on('end', () => this.update());
      c.on('reconnecting', () => this.update());
      c.on('ready', () => this.update());
    }
  }

  /** Connects both connections; a Redis that cannot be reached at start is an error for the caller. */
  static async open(url: string, log: Logger): Promise<RedisLink> {
    const link = new RedisLink(url, log);
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        Promise.all([link.client.connect(), link.subscriber.connect()]),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${CONNECT_TIMEOUT_MS / 1000} s`)), CONNECT_TIMEOUT_MS);
        }),
      ]);
    } catch (e) {
      await link.close();
      throw new Error(`cannot reach ${url}: ${(e as Error).message}`, { cause: e });
    } finally {
      clearTimeout(timer);
    }
    link.opened = true;
    link.isUp = link.client.isReady && link.subscriber.isReady;
    return link;
  }

  get up(): boolean {
    return this.isUp;
  }

  /**
   * One round trip (a command, a MULTI, a script). While Redis is away it fails at once with
   * StoreUnavailable, as does a command whose connection broke before the answer.
   */
  async run<T>(command: (c: RedisClient) => Promise<T>): Promise<T> {
    if (!this.isUp) throw new StoreUnavailable();
    this.roundTrips++;
    try {
      return await command(this.client);
    } catch (e) {
      // Redis's own error reply (a bad script, a wrong type) is a bug to see; anything else (offline,
      // socket closed before the answer, timeout) is an outage.
      if (e instanceof ErrorReply) throw e;
      throw new StoreUnavailable(e);
    }
  }

  /** Re-evaluates up/down from both connections; logs and emits only on a change. */
  private update(): void {
    if (this.closing || !this.opened) return;
    const now = this.client.isReady && this.subscriber.isReady;
    if (now === this.isUp) return;
    this.isUp = now;
    if (now) {
      this.log.info({ redis: this.url }, 'cluster: Redis reachable again; catching up');
      this.emit('up');
    } else {
      this.log.warn({ redis: this.url }, 'cluster: Redis unreachable; answering 500 with Retry-After to what must be durable, serving held watchers from memory');
      this.emit('down');
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    this.isUp = false;
    // A connection that is up is closed after its pending replies; one that is reconnecting is dropped.
    await Promise.all(
      [this.client, this.subscriber].map(async (c) => {
        try {
          if (c.isReady) await c.close();
          else if (c.isOpen) c.destroy();
        } catch {
          if (c.isOpen) c.destroy();
        }
      }),
    );
  }
}
