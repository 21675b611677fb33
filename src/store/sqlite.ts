// Herald's keyv storage adapter for an embedded SQLite file, on better-sqlite3.
//
// Why not @keyv/sqlite: it runs on the asynchronous sqlite3 binding, one statement at a time through
// libuv's thread pool, and has no batched write; Herald writes on its hot path (every publication is
// durable before its 200), and the thread-pool round trip, the per-statement callbacks and the
// hand-built multi-row INSERTs cost more CPU than the write itself. better-sqlite3 runs each statement
// synchronously on the calling thread: a group-committed batch is one `BEGIN IMMEDIATE … COMMIT` of
// prepared statements, a few tens of microseconds in WAL mode, with no thread hop. The one slow
// thing SQLite would do inside such a write, the WAL checkpoint with its fsyncs, runs on a thread of
// its own instead (checkpointer.ts).
//
// keyv stays the seam (Store builds a Keyv per collection on this adapter, as it does on Redis and on
// a Map). keyv's own serialization is switched off for this adapter (Store passes serialize/deserialize
// undefined): the adapter receives keyv's `{ value, expires }` envelope as an object and encodes it
// here with the native JSON functions, in the very text @keyv/serialize writes (strings that begin with
// ':' get one more ':'), so a database written by the earlier @keyv/sqlite store reads unchanged, in
// the same table and key layout (`keyv`, key = "namespace:key").
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { KeyvStoreAdapter, StoredData } from 'keyv';

/** The table and its layout are @keyv/sqlite's, so existing databases keep working. */
const TABLE = 'keyv';
/** Rows per page when a namespace is listed (keyset pagination on the primary key). */
const PAGE = 1000;
/**
 * How long a write waits for another connection's lock (`herald user add` while Herald runs) before it
 * fails. The wait blocks Herald's event loop, so it is short; the other writer's transactions are one
 * small row each.
 */
const BUSY_TIMEOUT_MS = 2000;
/** How often the checkpointer thread moves the WAL into the database file (checkpointer.ts). */
const CHECKPOINT_INTERVAL_MS = 1000;
/**
 * The page cache's bound (KiB): SQLite's own default, not better-sqlite3's build default of 16 MB.
 * Herald reads rows only when it starts (and in a cluster, rarely); each write touches one leaf page
 * and a few interior pages that stay cached. 16 MB of cached pages per connection were 16 MB of
 * malloc'd memory among which a subscription storm's short-lived allocations left the C heap
 * fragmented (issue 9: at 20,000 held subscriptions 41 MB of C heap against 27 MB with this bound).
 */
const PAGE_CACHE_KB = 2000;
/** SQLite's own automatic checkpoint threshold (pages), used again if the checkpointer thread fails. */
const AUTO_CHECKPOINT_PAGES = 1000;

/** @keyv/serialize's text: a string beginning with ':' is written with one more ':' (its escape). */
function escapeColon(_key: string, v: unknown): unknown {
  return typeof v === 'string' && v.charCodeAt(0) === 58 ? `:${v}` : v;
}
function unescapeColon(_key: string, v: unknown): unknown {
  return typeof v === 'string' && v.charCodeAt(0) === 58 ? v.slice(1) : v;
}

/**
 * A string value that begins with ':' shows in JSON.stringify's text as `":` right after `:`, `,` or
 * `[` (no other unescaped `"` can stand there), so text without that pattern needs no escape and is
 * written as it is; the replacer (a call per value) runs only for the rare record that has one.
 */
const COLON_STRING = /[:,[]":/;

function encode(data: unknown): string {
  const plain = JSON.stringify(data);
  return COLON_STRING.test(plain) ? JSON.stringify(data, escapeColon) : plain;
}

/** A stored row as keyv's envelope (keyv checks its `expires` and hands out its `value`). */
function decode<V>(text: string): V {
  return JSON.parse(text, unescapeColon) as V;
}

interface Row {
  key: string;
  value: string;
}

/**
 * One SQLite file and its prepared statements, shared by every collection (SQLite has one writer;
 * one connection avoids SQLITE_BUSY between Herald's own collections).
 */
export class SqliteDatabase {
  private readonly db: Database.Database;
  private readonly selectOne: Database.Statement<[string], Row>;
  private readonly selectPage: Database.Statement<[string, string], Row>;
  private readonly upsert: Database.Statement<[string, string]>;
  private readonly remove: Database.Statement<[string]>;
  private readonly removeRange: Database.Statement<[string, string]>;
  /** Writes many rows in one transaction (IMMEDIATE: it waits for the lock under the busy timeout). */
  readonly writeMany: (rows: readonly { key: string; value: unknown }[]) => void;
  readonly removeMany: (keys: readonly string[]) => number;
  private checkpointer: Worker | undefined;

  constructor(path: string) {
    this.db = new Database(path, { timeout: BUSY_TIMEOUT_MS });
    // WAL with synchronous=NORMAL: a commit survives a crash of the process (SIGKILL) without an
    // fsync per transaction; only an operating-system crash can lose the last commits.
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma(`cache_size = -${PAGE_CACHE_KB}`);
    if (!this.db.memory) this.startCheckpointer(path);
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${TABLE}(key VARCHAR(255) PRIMARY KEY, value TEXT)`);
    this.selectOne = this.db.prepare(`SELECT key, value FROM ${TABLE} WHERE key = ?`);
    this.selectPage = this.db.prepare(`SELECT key, value FROM ${TABLE} WHERE key > ? AND key < ? ORDER BY key LIMIT ${PAGE}`);
    this.upsert = this.db.prepare(`INSERT INTO ${TABLE} (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`);
    this.remove = this.db.prepare(`DELETE FROM ${TABLE} WHERE key = ?`);
    this.removeRange = this.db.prepare(`DELETE FROM ${TABLE} WHERE key > ? AND key < ?`);
    const writeMany = this.db.transaction((rows: readonly { key: string; value: unknown }[]) => {
      for (const r of rows) this.upsert.run(r.key, encode(r.value));
    });
    const removeMany = this.db.transaction((keys: readonly string[]) => {
      let n = 0;
      for (const k of keys) n += this.remove.run(k).changes;
      return n;
    });
    this.writeMany = (rows) => writeMany.immediate(rows);
    this.removeMany = (keys) => removeMany.immediate(keys);
  }

  read<V>(key: string): StoredData<V> | undefined {
    const row = this.selectOne.get(key);
    return row ? decode<StoredData<V>>(row.value) : undefined;
  }

  /** Keys strictly after `after` and below `end`, in key order, one page. */
  page(after: string, end: string): Row[] {
    return this.selectPage.all(after, end);
  }

  removeBetween(after: string, end: string): void {
    this.removeRange.run(after, end);
  }

  adapter(): SqliteAdapter {
    return new SqliteAdapter(this);
  }

  close(): void {
    this.checkpointer?.postMessage('stop');
    this.checkpointer = undefined;
    if (this.db.open) this.db.close();
  }

  /**
   * Checkpoints off the event loop (checkpointer.ts says why). Should the thread fail, SQLite's
   * automatic checkpoint on this connection takes over again, so the WAL never grows without bound.
   */
  private startCheckpointer(path: string): void {
    try {
      const w = new Worker(new URL('./checkpointer.js', import.meta.url), { workerData: { path, intervalMs: CHECKPOINT_INTERVAL_MS } });
      w.unref();
      const fallBack = (): void => {
        if (this.checkpointer !== w) return;
        this.checkpointer = undefined;
        if (this.db.open) this.db.pragma(`wal_autocheckpoint = ${AUTO_CHECKPOINT_PAGES}`);
      };
      w.on('error', fallBack);
      w.on('exit', fallBack);
      this.checkpointer = w;
      this.db.pragma('wal_autocheckpoint = 0');
    } catch {
      // No worker thread: SQLite's automatic checkpoint stays on.
    }
  }
}

/**
 * The keys of one namespace lie strictly between "ns:" and "ns;" (';' follows ':'), a range the primary
 * key index answers. Without a namespace: every key.
 */
function rangeOf(namespace: string | undefined): [string, string] {
  return namespace ? [`${namespace}:`, `${namespace};`] : ['', '\u{10FFFF}'];
}

/**
 * A keyv storage adapter on a shared SqliteDatabase. One adapter per Keyv (per collection): keyv writes
 * its namespace into the adapter it is given, and its iterator lists that namespace.
 */
export class SqliteAdapter extends EventEmitter implements KeyvStoreAdapter {
  /** keyv reads `dialect` to know that this adapter can list a namespace (its iterator). */
  readonly opts = { dialect: 'sqlite', url: 'sqlite://' };
  namespace?: string | undefined;

  constructor(private readonly sql: SqliteDatabase) {
    super();
  }

  get<V>(key: string): Promise<StoredData<V> | undefined> {
    return this.attempt(() => this.sql.read<V>(key));
  }

  getMany<V>(keys: string[]): Promise<StoredData<V | undefined>[]> {
    return this.attempt(() => keys.map((k) => this.sql.read<V>(k)));
  }

  async has(key: string): Promise<boolean> {
    return (await this.get(key)) !== undefined;
  }

  set(key: string, value: unknown): Promise<void> {
    return this.attempt(() => this.sql.writeMany([{ key, value }]));
  }

  /** Every entry in one transaction: one commit for a group-committed batch. */
  setMany(entries: { key: string; value: unknown }[]): Promise<void> {
    return this.attempt(() => this.sql.writeMany(entries));
  }

  delete(key: string): Promise<boolean> {
    return this.attempt(() => this.sql.removeMany([key]) > 0);
  }

  deleteMany(keys: string[]): Promise<boolean> {
    return this.attempt(() => this.sql.removeMany(keys) > 0);
  }

  clear(): Promise<void> {
    return this.attempt(() => this.sql.removeBetween(...rangeOf(this.namespace)));
  }

  /**
   * The namespace's rows, a page at a time: no statement stays open between pages, so writes made
   * while a caller walks the listing (expired records deleted on the way) do not meet a busy connection.
   */
  async *iterator<V>(namespace?: string): AsyncGenerator<[string, Awaited<V>], void> {
    const [start, end] = rangeOf(namespace ?? this.namespace);
    let after = start;
    for (;;) {
      const rows = this.sql.page(after, end);
      // keyv's type calls the row its Value; without keyv's serializer it is the envelope object.
      for (const r of rows) yield [r.key, decode<Awaited<V>>(r.value)];
      if (rows.length < PAGE) return;
      after = rows[rows.length - 1]!.key;
    }
  }

  async disconnect(): Promise<void> {
    // The database is shared by every collection; Store closes it once.
  }

  /** Runs a synchronous statement as keyv's promise, its error a rejection (keyv emits and rethrows it). */
  private attempt<R>(fn: () => R): Promise<R> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e as Error);
    }
  }
}
