// Persistence through keyv: an embedded SQLite file by default, Redis when several nodes share work,
// memory for tests. Everything that must outlive a restart goes through a Collection.
//
// Writes are group-committed: puts and deletes made in the same turn of the event loop are coalesced
// per key and written in one batch (one multi-row statement on SQLite). A caller that awaits put()
// knows its record is durable; Herald awaits before answering a PUBLISH and before sending a NOTIFY
// whose CSeq it just took, so a SIGKILL never makes it reuse a CSeq or forget a publication it
// acknowledged.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Keyv, { type KeyvStoreAdapter } from 'keyv';
import KeyvSqlite from '@keyv/sqlite';
import KeyvRedis from '@keyv/redis';
import type { Logger } from 'pino';
import { isStoreUnavailable } from './unavailable.js';

type SqliteQuery = (sql: string, ...params: unknown[]) => Promise<unknown[]>;

/**
 * KeyvSqlite with a batched setMany (keyv falls back to one INSERT per key without it) and WAL
 * journaling with synchronous=NORMAL: a commit survives a process crash without an fsync per write.
 */
class BatchingSqlite extends KeyvSqlite {
  private readonly ready: Promise<unknown>;
  constructor(uri: string) {
    super({ uri, iterationLimit: 1000, busyTimeout: 5000 } as ConstructorParameters<typeof KeyvSqlite>[0]);
    // Another process may hold the database for a moment (`herald user add` while Herald runs), and
    // SQLite can answer SQLITE_BUSY at once instead of waiting (a lock it cannot wait for without a
    // deadlock). Such a statement is tried again, a bounded number of times, before the error counts.
    const raw = this.query as unknown as SqliteQuery;
    const retrying: SqliteQuery = async (sql, ...params) => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await raw(sql, ...params);
        } catch (e) {
          if ((e as { code?: string }).code !== 'SQLITE_BUSY' || attempt >= 12) throw e;
          await new Promise((r) => setTimeout(r, 5 * 2 ** Math.min(attempt, 7)));
        }
      }
    };
    (this as unknown as { query: SqliteQuery }).query = retrying;
    const q = retrying;
    this.ready = q('PRAGMA journal_mode=WAL').then(() => q('PRAGMA synchronous=NORMAL'));
    // A failure shows up on the first write (and is logged there); it must not crash the process.
    this.ready.catch(() => undefined);
  }

  get walReady(): Promise<unknown> {
    return this.ready;
  }

  /** Every record of a keyv namespace, read in one statement (keyv's own iterator pages by OFFSET). */
  async entries(namespace: string): Promise<[string, unknown][]> {
    await this.ready;
    const q = this.query as unknown as SqliteQuery;
    const table = (this.opts as { table: string }).table;
    const prefix = `${namespace}:`;
    const rows = (await q(`SELECT key, value FROM ${table} WHERE substr(key, 1, ?) = ?`, prefix.length, prefix)) as { key: string; value: string }[];
    return rows.map((r) => [r.key.slice(prefix.length), (JSON.parse(r.value) as { value: unknown }).value]);
  }

  async setMany(entries: { key: string; value: unknown }[]): Promise<void> {
    await this.ready;
    const q = this.query as unknown as SqliteQuery;
    const table = (this.opts as { table: string }).table;
    for (let i = 0; i < entries.length; i += 400) {
      const chunk = entries.slice(i, i + 400);
      const values = chunk.map(() => '(?, ?)').join(', ');
      const params = chunk.flatMap((e) => [e.key, e.value]);
      await q(`INSERT INTO ${table} (key, value) VALUES ${values} ON CONFLICT(key) DO UPDATE SET value=excluded.value`, ...params);
    }
  }
}

/**
 * What a Collection asks of its backend: keyv (SQLite, memory) fits it, and so does the cluster's
 * Redis backend (src/store/redis.ts), which writes a batch's sets and deletes in one round trip.
 */
export interface CollectionBackend {
  get(key: string): Promise<unknown>;
  setMany(entries: { key: string; value: unknown }[]): Promise<unknown>;
  delete(keys: string[]): Promise<unknown>;
  iterator?: (namespace: undefined) => AsyncGenerator<unknown[], void>;
  /** A whole batch at once, where the backend can. */
  write?(sets: { key: string; value: unknown }[], dels: string[]): Promise<void>;
}

/** Opens a namespace's backend on a shared store; `entries` lists it whole. */
export type SharedBackend = (namespace: string, groupBy?: string) => CollectionBackend & { entries(): Promise<[string, unknown][]> };

const DELETE = Symbol('delete');

export class Collection<T> {
  private pending = new Map<string, T | typeof DELETE>();
  private waiters: (() => void)[] = [];
  private failers: ((e: Error) => void)[] = [];
  private scheduled = false;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly kv: CollectionBackend,
    private readonly log: Logger,
    /** A faster full listing where the backend has one (SQLite); keyv's iterator otherwise. */
    private readonly lister?: () => Promise<[string, unknown][]>,
    /** Told how long each batch took to write (metrics). */
    private readonly written?: (ms: number, records: number) => void,
  ) {}

  /** Stores a record; resolves once it is written. */
  put(key: string, value: T): Promise<void> {
    this.pending.set(key, value);
    return this.schedule();
  }

  delete(key: string): Promise<void> {
    this.pending.set(key, DELETE);
    return this.schedule();
  }

  async get(key: string): Promise<T | undefined> {
    const p = this.pending.get(key);
    if (p === DELETE) return undefined;
    if (p !== undefined) return p;
    return ((await this.kv.get(key)) as T | undefined) ?? undefined;
  }

  /** Every record; used once at start-up to restore state. */
  async all(): Promise<[string, T][]> {
    if (this.lister) return (await this.lister()) as [string, T][];
    const out: [string, T][] = [];
    if (!this.kv.iterator) return out;
    for await (const [k, v] of this.kv.iterator(undefined)) out.push([String(k), v as T]);
    return out;
  }

  private schedule(): Promise<void> {
    const p = new Promise<void>((resolve, reject) => {
      this.waiters.push(resolve);
      this.failers.push(reject);
    });
    // A caller that awaits still sees the failure; one that does not (`void c.delete(k)`) must not
    // end the process with an unhandled rejection when the store is away — the failure is logged below.
    p.catch(() => undefined);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => {
        this.flushing = this.flushing.then(() => this.flushBatch());
      });
    }
    return p;
  }

  private async flushBatch(): Promise<void> {
    this.scheduled = false;
    const batch = this.pending;
    const waiters = this.waiters;
    const failers = this.failers;
    this.pending = new Map();
    this.waiters = [];
    this.failers = [];
    const sets: { key: string; value: T }[] = [];
    const dels: string[] = [];
    for (const [k, v] of batch) {
      if (v === DELETE) dels.push(k);
      else sets.push({ key: k, value: v });
    }
    try {
      const started = performance.now();
      if (this.kv.write) await this.kv.write(sets, dels);
      else {
        if (sets.length > 0) await this.kv.setMany(sets);
        if (dels.length > 0) await this.kv.delete(dels);
      }
      this.written?.(performance.now() - started, sets.length + dels.length);
      for (const w of waiters) w();
    } catch (e) {
      // An unreachable shared store is logged once per outage by the Redis link, not per batch.
      if (!isStoreUnavailable(e)) this.log.error({ err: (e as Error).message }, 'store write failed');
      for (const f of failers) f(e as Error);
    }
  }

  /** Waits for everything written so far. */
  async flush(): Promise<void> {
    if (this.pending.size > 0) await this.schedule();
    await this.flushing;
  }
}

export class Store {
  private readonly collections: Collection<unknown>[] = [];
  private readonly keyvs: Keyv[] = [];
  /** Told of every batch written, by any collection (store-write latency metrics). */
  onWrite: ((ms: number, records: number) => void) | undefined;

  private constructor(
    private readonly makeAdapter: () => KeyvStoreAdapter | Map<unknown, unknown>,
    private readonly log: Logger,
    private readonly sqlite?: BatchingSqlite,
    private readonly shared?: SharedBackend,
  ) {}

  /** A store whose collections live on a shared backend (the cluster's Redis: src/store/redis.ts). */
  static shared(backend: SharedBackend, log: Logger): Store {
    return new Store(() => new Map<unknown, unknown>(), log, undefined, backend);
  }

  static open(url: string, log: Logger): Store {
    if (url.startsWith('sqlite://')) {
      const path = url.slice('sqlite://'.length);
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      // One connection for every collection: SQLite has one writer anyway, and several connections
      // starting at once made SQLite answer SQLITE_BUSY at start-up. Keys carry the collection's
      // namespace; listing goes through BatchingSqlite.entries, not keyv's iterator (which reads the
      // namespace from the shared adapter, where the last collection would have written its own).
      const adapter = new BatchingSqlite(url);
      return new Store(() => adapter as unknown as KeyvStoreAdapter, log, adapter);
    }
    if (url.startsWith('redis://') || url.startsWith('rediss://')) {
      // One adapter per collection: keyv writes its namespace into the adapter it is given.
      return new Store(() => new KeyvRedis(url) as unknown as KeyvStoreAdapter, log);
    }
    return new Store(() => new Map<unknown, unknown>(), log);
  }

  /** `groupBy`: a string field the shared backend indexes records by (ignored where everything is local). */
  collection<T>(namespace: string, opts: { groupBy?: keyof T & string } = {}): Collection<T> {
    if (this.shared) {
      const backend = this.shared(namespace, opts.groupBy);
      const c = new Collection<T>(backend, this.log, () => backend.entries(), (ms, n) => this.onWrite?.(ms, n));
      this.collections.push(c as Collection<unknown>);
      return c;
    }
    const adapter = this.makeAdapter();
    const kv = new Keyv({ store: adapter, namespace, throwOnErrors: true });
    kv.on('error', (e: unknown) => this.log.error({ err: String(e) }, 'store error'));
    this.keyvs.push(kv);
    const sqlite = this.sqlite;
    const c = new Collection<T>(kv, this.log, sqlite ? () => sqlite.entries(namespace) : undefined, (ms, n) => this.onWrite?.(ms, n));
    this.collections.push(c as Collection<unknown>);
    return c;
  }

  async flush(): Promise<void> {
    await Promise.all(this.collections.map((c) => c.flush()));
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.sqlite) await this.sqlite.disconnect().catch(() => undefined);
    else await Promise.all(this.keyvs.map((kv) => kv.disconnect().catch(() => undefined)));
  }
}

/**
 * The records of a collection that have not expired; expired ones are deleted on the way (state that
 * ran out while Herald was down is cleaned up, not restored).
 */
export async function unexpired<T extends { expiresAt: number }>(c: Collection<T>, now: number): Promise<{ live: [string, T][]; expired: number }> {
  const live: [string, T][] = [];
  let expired = 0;
  for (const [key, rec] of await c.all()) {
    if (rec.expiresAt <= now) {
      expired++;
      void c.delete(key);
    } else live.push([key, rec]);
  }
  return { live, expired };
}
