// Cluster membership on Redis: each node's heartbeat, the local fence, and the death of other nodes.
//
// A node is alive while its heartbeat key `<prefix>node:<id>` exists: written with a TTL of `lease`
// and renewed every lease/3 (SET … XX PX, so a renewal never brings back a key that expired: a node
// that lost its lease learns it instead of hiding it). Every node ever joined is in the set
// `<prefix>nodes` until its dialogs have all been taken over; a member without a heartbeat is dead.
//
// The fence (CLUSTER.md): a node may act as owner (send a NOTIFY, refresh upstream) only while its
// lease is known to run, by the local monotonic clock: less than `lease` (less a margin for the gap
// between the check and the send) since a renewal that Redis acknowledged was SENT. Redis measures
// the key's TTL from when it received the command, which is later, so the node's own view always
// ends first: no survivor can have taken over (takeover needs the key gone) while it holds. Clock
// rate differences between the machines are what the margin also absorbs.
//
// When Redis cannot be reached at all the node keeps serving what it holds from memory (the issue:
// watchers are served through a Redis outage); no other node can take anything over then, and the
// CSeq reservation in Redis (lease.ts) keeps two owners' CSeqs apart even if only this node is cut
// off. A node that finds its heartbeat gone (paused past its lease: SIGSTOP, a long GC, a VM freeze)
// sends nothing until it has joined again and learned which of its dialogs it still owns.
import type { Logger } from 'pino';
import { withTimeout } from '../util/timeout.js';

/** The one Redis call this module and lease.ts need: EVAL (each step is one atomic script). */
export interface LuaRedis {
  eval(script: string, options: { keys: string[]; arguments: string[] }): Promise<unknown>;
}

export interface NodesOptions {
  nodeId: string;
  /** How long a heartbeat (and with it every lease of the node) runs without renewal, ms. */
  leaseMs: number;
  /** Key prefix (tests use their own); default "herald:". */
  prefix?: string;
  log: Logger;
}

/** Part of the lease the fence leaves unused: the time from a check to the datagram, clock drift. */
const FENCE_MARGIN = 0.2;

// SET NX: a node id is new at each start ("<host>-<pid>-<random>"); one that exists belongs to
// another live process, and two nodes under one id would own each other's dialogs.
const JOIN = `
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end
redis.call('SADD', KEYS[2], ARGV[3])
return 1`;
// XX: renew only a key that still exists; a missing one means the lease was lost.
const RENEW = `if redis.call('SET', KEYS[1], ARGV[1], 'XX', 'PX', ARGV[2]) then return 1 else return 0 end`;
// The members of the node set without a heartbeat, other than the caller.
const DEAD = `
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if id ~= ARGV[2] and redis.call('EXISTS', ARGV[1] .. 'node:' .. id) == 0 then out[#out + 1] = id end
end
return out`;
const LEAVE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;


export class ClusterNodes {
  readonly nodeId: string;
  readonly leaseMs: number;
  readonly prefix: string;
  private readonly value: string;
  /** performance.now() when the last acknowledged renewal (or the join) was sent; -Infinity: none. */
  private renewedAt = -Infinity;
  /** Redis did not answer the last renewal: serving from memory (see the header). */
  private away = false;
  /** The heartbeat was found gone: nothing is sent until the node has joined again and reconciled. */
  private lost = false;
  /**
   * performance.now() before which no node is declared dead: after a Redis outage every node's
   * heartbeat may have run out, and each needs a lease's time to renew (or join again) before its
   * silence means death — else the first node back would take every other node's dialogs over.
   */
  private scanAfter = 0;
  private timer: NodeJS.Timeout | undefined;
  private renewing: Promise<void> | undefined;
  private stopped = false;
  private readonly deadHandlers: ((id: string) => Promise<void>)[] = [];
  private readonly rejoinHandlers: (() => Promise<void>)[] = [];
  /** Dead nodes whose takeover is under way here (one loop per dead node). */
  private readonly handling = new Set<string>();

  constructor(
    private readonly redis: LuaRedis,
    private readonly opts: NodesOptions,
  ) {
    this.nodeId = opts.nodeId;
    this.leaseMs = opts.leaseMs;
    this.prefix = opts.prefix ?? 'herald:';
    this.value = `${opts.nodeId}@${Date.now()}`;
  }

  key(id = this.nodeId): string {
    return `${this.prefix}node:${id}`;
  }

  private get setKey(): string {
    return `${this.prefix}nodes`;
  }

  /** Called for each dead node found (its dialogs are to be taken over); awaited, one at a time per node. */
  onDead(handler: (id: string) => Promise<void>): void {
    this.deadHandlers.push(handler);
  }

  /** Called after the node lost its heartbeat and joined again: drop what was taken over meanwhile. */
  onRejoin(handler: () => Promise<void>): void {
    this.rejoinHandlers.push(handler);
  }

  /**
   * Joins the cluster and starts the heartbeat and the watch for dead nodes (every lease/3). The first
   * scan is the caller's (scanDead()), once it can serve what it takes over: nodes that died while none
   * was running (a whole-cluster restart) are then taken over at once.
   */
  async start(): Promise<void> {
    await this.join();
    const every = Math.max(50, Math.floor(this.leaseMs / 3));
    this.timer = setInterval(() => void this.tick(), every);
    this.timer.unref();
  }

  private async join(): Promise<void> {
    const sentAt = performance.now();
    const r = await this.redis.eval(JOIN, { keys: [this.key(), this.setKey], arguments: [this.value, String(this.leaseMs), this.nodeId] });
    if (Number(r) !== 1) throw new Error(`cluster.node_id ${this.nodeId} is in use by a live node`);
    this.renewedAt = sentAt;
  }

  /**
   * The fence: whether this node may act as the owner of what it holds right now (no Redis round
   * trip: a comparison on the hot path).
   */
  mayAct(): boolean {
    if (this.lost) return false;
    return this.away || performance.now() < this.renewedAt + this.leaseMs * (1 - FENCE_MARGIN);
  }

  /**
   * Renews now (coalesced with one in flight) and resolves with the fence's answer after it: what a
   * node that found its fence closed does before deciding to drop or send.
   */
  async check(): Promise<boolean> {
    await this.renew();
    return this.mayAct();
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    await this.renew();
    if (!this.lost && !this.away && performance.now() >= this.scanAfter) await this.scanDead();
  }

  private renew(): Promise<void> {
    this.renewing ??= this.renewOnce().finally(() => (this.renewing = undefined));
    return this.renewing;
  }

  private async renewOnce(): Promise<void> {
    if (this.stopped) return;
    const sentAt = performance.now();
    let r: unknown;
    try {
      r = await withTimeout(this.redis.eval(RENEW, { keys: [this.key()], arguments: [this.value, String(this.leaseMs)] }), Math.max(100, Math.floor(this.leaseMs / 3)));
    } catch (e) {
      if (!this.away) this.opts.log.warn({ err: (e as Error).message, node: this.nodeId }, 'cluster: heartbeat not renewed (Redis unreachable); serving held dialogs from memory');
      this.away = true;
      return;
    }
    if (this.away) {
      this.opts.log.info({ node: this.nodeId }, 'cluster: heartbeat renewed again');
      this.scanAfter = performance.now() + this.leaseMs;
    }
    this.away = false;
    const renewed = Number(r) === 1;
    if (renewed && !this.lost) {
      this.renewedAt = sentAt;
      return;
    }
    if (!renewed) {
      // The heartbeat expired (the process was paused past its lease): other nodes may own our dialogs now.
      if (!this.lost) this.opts.log.warn({ node: this.nodeId }, 'cluster: lease lost (heartbeat expired); sending nothing until ownership is re-checked');
      this.lost = true;
    }
    try {
      if (!renewed) await this.join();
      for (const h of this.rejoinHandlers) await h();
      this.lost = false;
      this.opts.log.info({ node: this.nodeId }, 'cluster: joined again; dialogs taken over meanwhile dropped');
    } catch (e) {
      // Stays fenced; the next tick tries again (joined already: only the reconciliation is repeated).
      this.opts.log.warn({ err: (e as Error).message, node: this.nodeId }, 'cluster: could not join again');
    }
  }

  /** Finds nodes without a heartbeat and hands each to the takeover (one loop per dead node). */
  async scanDead(): Promise<void> {
    let dead: string[];
    try {
      dead = ((await this.redis.eval(DEAD, { keys: [this.setKey], arguments: [this.prefix, this.nodeId] })) as string[]) ?? [];
    } catch {
      return; // the renewal logs Redis trouble, once
    }
    for (const id of dead) {
      if (this.handling.has(id) || this.stopped) continue;
      this.handling.add(id);
      void (async () => {
        try {
          for (const h of this.deadHandlers) await h(id);
        } catch (e) {
          this.opts.log.warn({ err: (e as Error).message, dead: id }, 'cluster: takeover interrupted; tried again at the next scan');
        } finally {
          this.handling.delete(id);
        }
      })();
    }
  }

  /**
   * Leaves: the heartbeat is deleted, so the other nodes take this node's dialogs over at their next
   * scan (lease/3) instead of after the lease. Its dialogs stay listed under it until they do.
   */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.renewing?.catch(() => undefined);
    await withTimeout(this.redis.eval(LEAVE, { keys: [this.key()], arguments: [this.value] }), 2000).catch(() => undefined);
  }
}
