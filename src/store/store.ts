// Persistence through keyv: an embedded SQLite file by default, Redis when several nodes share work,
// memory for tests. Everything that must outlive a restart goes through a Collection.
//
// Writes are group-committed: puts and deletes made in the same turn of the event loop are coalesced
// per key and written in one batch (one transaction on SQLite). A caller that awaits put()
// knows its record is durable; Herald awaits before answering a PUBLISH and before sending a NOTIFY
// whose CSeq it just took, so a SIGKILL never makes it reuse a CSeq or forget a publication it
// acknowledged.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import Keyv, { type KeyvOptions, type KeyvStoreAdapter } from 'keyv';
import KeyvRedis from '@keyv/redis';
import type { Logger } from 'pino';
import { SqliteDatabase } from './sqlite.js';
import { isStoreUnavailable } from './unavailable.js';

/**
 * What a Collection asks of its backend: keyv (SQLite, memory) fits it, and so does the cluster's
 * Redis backend (src/store/redis.ts), which writes a batch's sets and deletes in one round trip.
 */
export interface CollectionBackend {
  get(key: string): Promise<unknown>;
  setMany(entries: { key: string; value: unknown }[]): Promise<unknown>;
  delete(keys: string[]): Promise<unknown>;
  iterator?: (namespace: undefined) => AsyncGenerator<unknown[], void>;
  /** Every record at once, where the backend lists faster than keyv's iterator (the shared store). */
  entries?(): Promise<[string, unknown][]>;
  /** A whole batch at once, where the backend can. */
  write?(sets: { key: string; value: unknown }[], dels: string[]): Promise<void>;
}

/** Opens a namespace's backend on a shared store; `entries` lists it whole. */
export type SharedBackend = (namespace: string, groupBy?: string) => CollectionBackend;

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
    if (this.kv.entries) return (await this.kv.entries()) as [string, T][];
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
    /** keyv options of the backend (the SQLite adapter encodes its records itself). */
    private readonly keyvOptions: Partial<KeyvOptions> = {},
    private readonly sqlite?: SqliteDatabase,
    private readonly shared?: SharedBackend,
  ) {}

  /** A store whose collections live on a shared backend (the cluster's Redis: src/store/redis.ts). */
  static shared(backend: SharedBackend, log: Logger): Store {
    return new Store(() => new Map<unknown, unknown>(), log, {}, undefined, backend);
  }

  static open(url: string, log: Logger): Store {
    if (url.startsWith('sqlite://')) {
      const path = url.slice('sqlite://'.length);
      if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
      // One connection for every collection (SQLite has one writer anyway), one adapter per collection
      // on it (keyv writes its namespace into its adapter). keyv's serialization is off: the adapter
      // encodes records with the native JSON functions (sqlite.ts says why).
      const db = new SqliteDatabase(path);
      return new Store(() => db.adapter(), log, { serialize: undefined, deserialize: undefined }, db);
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
      const c = new Collection<T>(backend, this.log, (ms, n) => this.onWrite?.(ms, n));
      this.collections.push(c as Collection<unknown>);
      return c;
    }
    const adapter = this.makeAdapter();
    const kv = new Keyv({ store: adapter, namespace, throwOnErrors: true, ...this.keyvOptions });
    kv.on('error', (e: unknown) => this.log.error({ err: String(e) }, 'store error'));
    this.keyvs.push(kv);
    const c = new Collection<T>(kv, this.log, (ms, n) => this.onWrite?.(ms, n));
    this.collections.push(c as Collection<unknown>);
    return c;
  }

  async flush(): Promise<void> {
    await Promise.all(this.collections.map((c) => c.flush()));
  }

  async close(): Promise<void> {
    await this.flush();
    if (this.sqlite) this.sqlite.close();
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
