// Who watches whom: the watcher list behind watcher info (RFC 3857/3858). The presence package reports
// each subscription's status changes here; winfo subscriptions read and follow it. Entries persist, so
// a restart keeps the history, and terminated ones stay visible for a while (RFC 3857 §4.7 "waiting").
import { createHash } from 'node:crypto';
import type { WatcherEntry, WatcherEvent, WatcherStatus } from '../formats/watcherinfo.js';
import type { Collection } from '../store/store.js';
import type { ResourceSharing } from '../store/sharing.js';
import { StandingEntry, type ReportingWatcher, type WatcherReport, type WatcherStanding } from '../policy/view.js';

/** The store collection of watcher records (a shared store groups it by resource). */
export const WATCHERS = 'watcher';

export interface WatcherRecord extends WatcherEntry {
  resource: string;
  package: string;
  since: number;
  updatedAt: number;
}

type Listener = (changed: WatcherRecord[]) => void;


/**
 * A watcher entry the registry holds for a watcher without a live view here: one that ended (kept for
 * the history window), one restored from the store, another node's. A live subscription's entry is its
 * watcher view itself (ReportingWatcher, src/policy/view.ts). Fixed shape, its times relative to the
 * process's start (a Date.now() value would be a boxed number per field), the strings shared with the
 * subscription. The store gets the plain record (toJSON).
 */
class WatcherRow extends StandingEntry implements WatcherRecord, ReportingWatcher {
  readonly package: string;

  constructor(
    readonly resource: string,
    pkg: string,
    readonly id: string,
    readonly uri: string,
    public status: WatcherStatus,
    public event: WatcherEvent,
    since: number,
    updatedAt: number,
  ) {
    super();
    this.package = pkg;
    this.setTimes(since, updatedAt);
  }

  static of(r: WatcherStanding): WatcherRow {
    return new WatcherRow(r.resource, r.package, r.id, r.uri, r.status, r.event, r.since, r.updatedAt);
  }

  stand(status: WatcherStatus, event: WatcherEvent, since: number, updatedAt: number): void {
    this.status = status;
    this.event = event;
    this.setTimes(since, updatedAt);
  }
}

/** An opaque, stable id for a subscription: winfo shows it to the presentity, so no Call-ID leaks. */
export function watcherId(subscriptionKey: string): string {
  return createHash('sha1').update(subscriptionKey).digest('base64url').slice(0, 12);
}

export class WatcherRegistry implements WatcherReport {
  private readonly byResource = new Map<string, Map<string, WatcherRecord>>();
  private readonly listeners = new Map<string, Set<Listener>>();
  private sharing: ResourceSharing<WatcherRecord> | undefined;
  /** Per followed resource, ends listening to the other nodes' changes (in a cluster). */
  private readonly unhold = new Map<string, () => void>();

  constructor(private readonly store: Collection<WatcherRecord>, private readonly historyMs: number) {}

  /**
   * Joins a cluster: a resource's watchers may subscribe at any node, so a winfo subscription held here
   * reads the resource's list again from the shared store whenever another node changed it.
   */
  share(sharing: ResourceSharing<WatcherRecord>): void {
    this.sharing = sharing;
  }

  /** Reads a resource's watcher list again from the shared store; tells followers what changed. */
  async resync(resource: string, now = Date.now()): Promise<void> {
    if (!this.sharing) return;
    const stored = await this.sharing.load(resource);
    const m = this.map(resource);
    const changed: WatcherRecord[] = [];
    // Only newer records count: one this node wrote a moment ago may not be in the read yet, and entries
    // gone from the store leave this copy by the same history sweep that removed them there.
    for (const [, rec] of stored) {
      if (rec.resource !== resource || this.isStale(rec, now)) continue;
      const old = m.get(rec.id);
      if (old && old.updatedAt >= rec.updatedAt) continue;
      // Another node's entry, kept in this node's compact row shape.
      m.set(rec.id, WatcherRow.of(rec));
      if (!old || old.status !== rec.status || old.event !== rec.event) changed.push(rec);
    }
    if (changed.length > 0) for (const l of this.listeners.get(resource) ?? []) l(changed);
  }

  async restore(now = Date.now()): Promise<number> {
    let n = 0;
    for (const [key, rec] of await this.store.all()) {
      if (this.isStale(rec, now)) {
        void this.store.delete(key);
        continue;
      }
      this.map(rec.resource).set(rec.id, WatcherRow.of(rec));
      n++;
    }
    return n;
  }

  private isStale(rec: WatcherRecord, now: number): boolean {
    return (rec.status === 'terminated' || rec.status === 'waiting') && now - rec.updatedAt > this.historyMs;
  }

  private map(resource: string): Map<string, WatcherRecord> {
    let m = this.byResource.get(resource);
    if (!m) {
      m = new Map();
      this.byResource.set(resource, m);
    }
    return m;
  }

  list(resource: string): WatcherRecord[] {
    return [...(this.byResource.get(resource)?.values() ?? [])];
  }

  get(resource: string, id: string): WatcherRecord | undefined {
    return this.byResource.get(resource)?.get(id);
  }

  /** Records a status change of a watcher without a view of its own here; no-op when nothing changed. */
  update(resource: string, id: string, uri: string, status: WatcherStatus, event: WatcherEvent, pkg = 'presence', now = Date.now()): void {
    this.report(new WatcherRow(resource, pkg, id, uri, status, event, now, now), status, event, now);
  }

  /**
   * A watcher's status is now `status` (after `event`): set on the watcher, which becomes the entry
   * while it lives; no-op when the entry says so already. An ended watcher is kept (for the history
   * window) as a row of its own, so its view, and the subscription behind it, can go.
   */
  report(w: ReportingWatcher, status: WatcherStatus, event: WatcherEvent, now = Date.now()): void {
    const { resource, id } = w; // a view may derive its id when asked: read once
    const m = this.map(resource);
    const old = m.get(id);
    const same = old !== undefined && old.status === status && old.event === event;
    w.stand(status, event, old?.since ?? now, same ? old.updatedAt : now);
    if (same) return;
    const rec: WatcherRecord = status === 'terminated' || status === 'waiting' ? WatcherRow.of(w) : w;
    m.set(id, rec);
    this.store.put(`${resource}|${id}`, rec).then(() => this.sharing?.changed(resource), () => undefined);
    for (const l of this.listeners.get(resource) ?? []) l([rec]);
  }

  /** A live watcher's view goes, its subscription not (see WatcherReport): its entry becomes a row. */
  detach(w: ReportingWatcher): void {
    const m = this.byResource.get(w.resource);
    const id = w.id;
    if (m?.get(id) === w) m.set(id, WatcherRow.of(w));
  }

  follow(resource: string, listener: Listener): () => void {
    let set = this.listeners.get(resource);
    if (!set) {
      set = new Set();
      this.listeners.set(resource, set);
      if (this.sharing) this.unhold.set(resource, this.sharing.hold(resource, () => void this.resync(resource).catch(() => undefined)));
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.listeners.get(resource) === set) {
        this.listeners.delete(resource);
        this.unhold.get(resource)?.();
        this.unhold.delete(resource);
      }
    };
  }

  /** Forgets terminated and waiting watchers older than the history window. */
  sweep(now = Date.now()): void {
    for (const [resource, m] of this.byResource) {
      for (const [id, rec] of m) {
        if (this.isStale(rec, now)) {
          m.delete(id);
          void this.store.delete(`${resource}|${id}`);
        }
      }
      if (m.size === 0) this.byResource.delete(resource);
    }
  }
}
