// A Collection's records on the cluster's Redis (cluster.redis set), through the node's RedisLink
// rather than @keyv/redis: one connection for everything (keyv's adapter opens one per collection),
// round trips counted, and an outage answered at once as StoreUnavailable (no offline queue: a write
// resolves only when Redis acknowledged it, and one made while Redis is away is refused, never
// acknowledged later — docs/cluster.md).
//
// Layout: a collection is one hash `herald:s:<namespace>` (field = record key, value = JSON). A
// collection opened with `groupBy` (publications, by presentity) also keeps a set of its record keys
// per group value, `herald:s:<namespace>:by:<group>`, written in the same MULTI as the record, so
// every node can read all publications of one presentity in one round trip (readGroup). Scripts touch
// keys they do not declare (the group sets): right on one Redis; Redis Cluster would need the group in
// a hash tag first (docs/cluster.md, "what comes next").
import type { Logger } from 'pino';
import type { RedisLink } from '../cluster/redis.js';
import { Store, type CollectionBackend } from './store.js';

const PREFIX = 'herald:s:';

/** Deletes records and takes each out of its group's set (KEYS[1] the hash; ARGV: field, set prefix, keys). */
const DELETE_GROUPED = `
for i = 3, #ARGV do
  local v = redis.call('HGET', KEYS[1], ARGV[i])
  if v then
    local ok, r = pcall(cjson.decode, v)
    if ok and type(r) == 'table' and type(r[ARGV[1]]) == 'string' then redis.call('SREM', ARGV[2] .. r[ARGV[1]], ARGV[i]) end
    redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return 1`;

/** A group's records as [key, json, key, json, …]; keys whose record is gone leave the set (KEYS: hash, set). */
const READ_GROUP = `
local out = {}
for _, k in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  local v = redis.call('HGET', KEYS[1], k)
  if v then out[#out + 1] = k; out[#out + 1] = v else redis.call('SREM', KEYS[2], k) end
end
return out`;

const hashOf = (namespace: string): string => PREFIX + namespace;
const groupSetPrefix = (namespace: string): string => `${PREFIX}${namespace}:by:`;

export class RedisCollectionBackend implements CollectionBackend {
  constructor(
    private readonly link: RedisLink,
    private readonly namespace: string,
    /** The string field of a record that names its group (e.g. a publication's presentity). */
    private readonly groupBy?: string,
  ) {}

  async get(key: string): Promise<unknown> {
    const v = await this.link.run((c) => c.hGet(hashOf(this.namespace), key));
    return v === null || v === undefined ? undefined : (JSON.parse(v) as unknown);
  }

  /** Sets and deletes of one batch in one MULTI: one round trip, applied together or not at all. */
  async write(sets: { key: string; value: unknown }[], dels: string[]): Promise<void> {
    const hash = hashOf(this.namespace);
    const groupBy = this.groupBy;
    await this.link.run((c) => {
      const m = c.multi();
      // Deletes first: a batch never holds both for one key (the Collection coalesces per key).
      if (dels.length > 0) {
        if (groupBy) m.eval(DELETE_GROUPED, { keys: [hash], arguments: [groupBy, groupSetPrefix(this.namespace), ...dels] });
        else m.hDel(hash, dels);
      }
      if (sets.length > 0) {
        m.hSet(hash, Object.fromEntries(sets.map((s) => [s.key, JSON.stringify(s.value)])));
        if (groupBy) {
          for (const s of sets) {
            const g = (s.value as Record<string, unknown>)[groupBy];
            if (typeof g === 'string') m.sAdd(groupSetPrefix(this.namespace) + g, s.key);
          }
        }
      }
      return m.exec();
    });
  }

  async setMany(entries: { key: string; value: unknown }[]): Promise<void> {
    await this.write(entries, []);
  }

  async delete(keys: string[]): Promise<void> {
    await this.write([], keys);
  }

  /** Every record (start-up restore, listings): one HGETALL. */
  async entries(): Promise<[string, unknown][]> {
    const all = await this.link.run((c) => c.hGetAll(hashOf(this.namespace)));
    return Object.entries(all).map(([k, v]) => [k, JSON.parse(v) as unknown]);
  }
}

/** Every record of one group of a grouped collection (all publications of a presentity): one round trip. */
export async function readGroup<T>(link: RedisLink, namespace: string, group: string): Promise<[string, T][]> {
  const flat = (await link.run((c) => c.eval(READ_GROUP, { keys: [hashOf(namespace), groupSetPrefix(namespace) + group] }))) as string[];
  const out: [string, T][] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i]!, JSON.parse(flat[i + 1]!) as T]);
  return out;
}

/** The Store of a cluster node (and of `herald user` commands run against a cluster's config). */
export function sharedStore(link: RedisLink, log: Logger): Store {
  return Store.shared((namespace, groupBy) => new RedisCollectionBackend(link, namespace, groupBy), log);
}
