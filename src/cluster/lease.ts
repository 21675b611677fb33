// Dialog ownership leases in Redis (CLUSTER.md): every dialog — a notifier dialog (RLS list
// subscriptions are notifier dialogs too), an upstream B2BUA subscription, and the one XMPP component
// connection — has at most one owner node at a time.
//
// Keys (prefix "herald:"):
//   own:<dialog>    hash { node, cseq }: the owner, and the highest CSeq any owner has reserved
//   owned:<node>    set of the dialogs a node owns (what a survivor takes over when it dies)
// A dialog's lease is its owner's heartbeat (nodes.ts): renewing one key per node keeps every dialog
// of it, so 100,000 dialogs cost no more renewals than one. Every step is one Lua script, atomic in
// Redis: two survivors racing for a dead node's dialogs each get a disjoint share, never the same one.
//
// CSeq fencing: a NOTIFY's CSeq comes from a block reserved in Redis by the owner (reserve(): refused
// unless the caller still owns the dialog); a new owner starts above the highest reservation. So an old
// owner that was paused past its lease and resumes can use at most what it had reserved before — CSeqs
// the new owner never uses — and the first reservation it tries tells it the dialog is gone.
//
// Keys are built inside the scripts from the prefix (a single Redis; a Redis Cluster would need the
// dialog's keys in one hash slot, see docs/cluster.md).
import type { ClusterNodes, LuaRedis } from './nodes.js';

export type Claim = { ok: true; cseq: number } | { ok: false; owner: string };

// KEYS: own:<d>, owned:<me>, node:<me>. ARGV: prefix, me, d, cseq.
// Claims a dialog that is unowned, ours, or owned by a dead node; returns {1, highest reserved CSeq}
// or {0, owner}. A node whose own heartbeat is gone claims nothing ({-1}).
const CLAIM = `
if redis.call('EXISTS', KEYS[3]) == 0 then return {-1, ''} end
local cur = redis.call('HGET', KEYS[1], 'node')
if cur and cur ~= ARGV[2] then
  if redis.call('EXISTS', ARGV[1] .. 'node:' .. cur) == 1 then return {0, cur} end
  redis.call('SREM', ARGV[1] .. 'owned:' .. cur, ARGV[3])
end
local c = tonumber(redis.call('HGET', KEYS[1], 'cseq') or '0')
local want = tonumber(ARGV[4])
if want > c then c = want end
redis.call('HSET', KEYS[1], 'node', ARGV[2], 'cseq', c)
redis.call('SADD', KEYS[2], ARGV[3])
return {1, tostring(c)}`;

// KEYS: own:<d>. ARGV: me, upTo. Raises the reservation to upTo if the caller owns the dialog.
const RESERVE = `
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return -1 end
local c = tonumber(redis.call('HGET', KEYS[1], 'cseq') or '0')
local want = tonumber(ARGV[2])
if want > c then redis.call('HSET', KEYS[1], 'cseq', want) c = want end
return c`;

// KEYS: own:<d>, owned:<me>. ARGV: me, d. The dialog is over: forgotten, if it is still ours.
const RELEASE = `
if redis.call('HGET', KEYS[1], 'node') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[2])
return 1`;

// KEYS: own:<d>. ARGV: prefix. {owner, alive} or {} when nobody owns it.
const OWNER = `
local cur = redis.call('HGET', KEYS[1], 'node')
if not cur then return {} end
return {cur, redis.call('EXISTS', ARGV[1] .. 'node:' .. cur)}`;

// KEYS: node:<dead>, owned:<dead>, owned:<me>, node:<me>, nodes. ARGV: prefix, dead, me, count.
// Moves up to `count` of a dead node's dialogs to the caller: {d1, cseq1, d2, cseq2, …}; {-1} when
// the node is alive after all (it joined again) or the caller is not. When the dead node owns nothing
// more it leaves the node set.
const TAKEOVER = `
if redis.call('EXISTS', KEYS[1]) == 1 or redis.call('EXISTS', KEYS[4]) == 0 then return {-1} end
local out = {}
local ds = redis.call('SPOP', KEYS[2], tonumber(ARGV[4]))
for _, d in ipairs(ds) do
  local own = ARGV[1] .. 'own:' .. d
  if redis.call('HGET', own, 'node') == ARGV[2] then
    redis.call('HSET', own, 'node', ARGV[3])
    redis.call('SADD', KEYS[3], d)
    out[#out + 1] = d
    out[#out + 1] = tostring(tonumber(redis.call('HGET', own, 'cseq') or '0'))
  end
end
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[5], ARGV[2]) end
return out`;

const OWNED = `return redis.call('SMEMBERS', KEYS[1])`;

export class DialogLeases {
  private readonly prefix: string;

  constructor(
    private readonly redis: LuaRedis,
    readonly nodes: ClusterNodes,
  ) {
    this.prefix = nodes.prefix;
  }

  get nodeId(): string {
    return this.nodes.nodeId;
  }

  private own(dialog: string): string {
    return `${this.prefix}own:${dialog}`;
  }

  private owned(node: string): string {
    return `${this.prefix}owned:${node}`;
  }

  /** The local fence (nodes.ts): may this node send as an owner now? No Redis round trip. */
  mayAct(): boolean {
    return this.nodes.mayAct();
  }

  /**
   * Takes a dialog: a new one, or one whose owner is dead. `cseq`: a CSeq reservation to record with it
   * (raised, never lowered). Resolves with the highest reservation any owner made, or the live owner.
   */
  async claim(dialog: string, cseq = 0): Promise<Claim> {
    const r = (await this.redis.eval(CLAIM, { keys: [this.own(dialog), this.owned(this.nodeId), this.nodes.key()], arguments: [this.prefix, this.nodeId, dialog, String(cseq)] })) as [number, string];
    const status = Number(r[0]);
    if (status === 1) return { ok: true, cseq: Number(r[1]) };
    return { ok: false, owner: status === -1 ? this.nodeId : r[1] };
  }

  /** Raises the dialog's CSeq reservation to `upTo`; false when this node no longer owns it. */
  async reserve(dialog: string, upTo: number): Promise<boolean> {
    const r = await this.redis.eval(RESERVE, { keys: [this.own(dialog)], arguments: [this.nodeId, String(upTo)] });
    return Number(r) >= 0;
  }

  /** The dialog is over (terminated, dropped): no owner any more. */
  async release(dialog: string): Promise<void> {
    await this.redis.eval(RELEASE, { keys: [this.own(dialog), this.owned(this.nodeId)], arguments: [this.nodeId, dialog] });
  }

  /** Who owns a dialog and whether that node is alive; undefined: nobody. */
  async ownerOf(dialog: string): Promise<{ node: string; alive: boolean } | undefined> {
    const r = (await this.redis.eval(OWNER, { keys: [this.own(dialog)], arguments: [this.prefix] })) as [string, number] | [];
    if (r.length === 0) return undefined;
    return { node: r[0]!, alive: Number(r[1]) === 1 };
  }

  /**
   * Moves up to `count` dialogs of a dead node to this one; undefined when that node is alive (or this
   * one is not). An empty list: nothing left to take.
   */
  async takeover(dead: string, count: number): Promise<{ dialog: string; cseq: number }[] | undefined> {
    const keys = [this.nodes.key(dead), this.owned(dead), this.owned(this.nodeId), this.nodes.key(), `${this.prefix}nodes`];
    const r = (await this.redis.eval(TAKEOVER, { keys, arguments: [this.prefix, dead, this.nodeId, String(count)] })) as (string | number)[];
    if (r.length === 1 && Number(r[0]) === -1) return undefined;
    const out: { dialog: string; cseq: number }[] = [];
    for (let i = 0; i + 1 < r.length; i += 2) out.push({ dialog: String(r[i]), cseq: Number(r[i + 1]) });
    return out;
  }

  /** Every dialog this node owns in Redis (after a lost lease: what it still may serve). */
  async ownedHere(): Promise<Set<string>> {
    return new Set((await this.redis.eval(OWNED, { keys: [this.owned(this.nodeId)], arguments: [] })) as string[]);
  }
}
