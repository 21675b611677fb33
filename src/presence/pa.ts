// The presence agent's event state compositor (RFC 3903 ESC) and the hub provider for local users.
// Protocol-independent: publish-handler.ts turns SIP PUBLISH requests into PublishOps.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { parsePidf, type PidfDocument } from '../formats/pidf.js';
import type { Provider, ProviderState, ProviderWatch } from '../hub/types.js';
import { unexpired, type Collection } from '../store/store.js';
import { ExpiryWheel, KeyedQueue } from '../util/expiry.js';
import { composePresence, type PublishedDocument } from './compose.js';

/** A publication as persisted: the raw PIDF is kept, and parsed again on restore. */
export interface PublicationRecord {
  etag: string;
  presentity: string;
  body: string;
  publishedAt: number;
  expiresAt: number;
}

export type PublishOp =
  | { kind: 'initial'; presentity: string; document: PidfDocument; body: string; expires: number }
  | { kind: 'refresh'; presentity: string; etag: string; expires: number }
  | { kind: 'modify'; presentity: string; etag: string; document: PidfDocument; body: string; expires: number }
  | { kind: 'remove'; presentity: string; etag: string };

export type PublishResult = { ok: true; etag: string; expires: number } | { ok: false; status: 412 };

interface Publication {
  record: PublicationRecord;
  document: PidfDocument;
}

/** ETags are unguessable: one publisher must not be able to refresh or remove another's state. */
function newEtag(): string {
  return randomBytes(12).toString('base64url');
}

export class PresenceAgent implements Provider {
  readonly name = 'local-pa';
  private readonly byEtag = new Map<string, Publication>();
  private readonly byPresentity = new Map<string, Set<Publication>>();
  private readonly watchers = new Map<string, Set<(s: ProviderState) => void>>();
  private readonly composed = new Map<string, PidfDocument | undefined>();
  private readonly expiry = new ExpiryWheel<string>();
  private readonly queue = new KeyedQueue();
  private lastStamp = 0;

  constructor(
    private readonly domains: readonly string[],
    private readonly store: Collection<PublicationRecord>,
    private readonly log: Logger,
  ) {}

  /** Loads publications from the store, dropping those that expired while Herald was down. */
  async restore(now = Date.now()): Promise<{ restored: number; expired: number }> {
    let restored = 0;
    const { live, expired } = await unexpired(this.store, now);
    for (const [key, rec] of live) {
      try {
        this.add({ record: rec, document: parsePidf(rec.body) });
        this.lastStamp = Math.max(this.lastStamp, rec.publishedAt);
        restored++;
      } catch (e) {
        this.log.warn({ etag: rec.etag, err: (e as Error).message }, 'dropping unreadable stored publication');
        void this.store.delete(key);
      }
    }
    for (const p of this.byPresentity.keys()) this.recompose(p);
    return { restored, expired };
  }

  handles(resource: string): boolean {
    const at = resource.lastIndexOf('@');
    return at > 0 && this.domains.includes(resource.slice(at + 1).toLowerCase());
  }

  watch(resource: string, update: (state: ProviderState) => void): ProviderWatch {
    let set = this.watchers.get(resource);
    if (!set) {
      set = new Set();
      this.watchers.set(resource, set);
    }
    set.add(update);
    update({ document: this.composed.get(resource) });
    return {
      stop: () => {
        set.delete(update);
        if (set.size === 0) this.watchers.delete(resource);
      },
    };
  }

  /** Whether the presentity has any current publication. */
  hasPublications(presentity: string): boolean {
    return (this.byPresentity.get(presentity)?.size ?? 0) > 0;
  }

  /** The composed document of a presentity (undefined: nothing published). */
  document(presentity: string): PidfDocument | undefined {
    return this.composed.get(presentity);
  }

  get publicationCount(): number {
    return this.byEtag.size;
  }

  /**
   * Applies one PUBLISH (RFC 3903 §6). Operations on one presentity run in order and each is
   * durable before it is acknowledged; a successful refresh or modify gets a new entity-tag (§6 step 6).
   */
  publish(op: PublishOp, now = Date.now()): Promise<PublishResult> {
    return this.queue.run(op.presentity, async () => {
      if (op.kind === 'initial') {
        const etag = newEtag();
        const rec: PublicationRecord = { etag, presentity: op.presentity, body: op.body, publishedAt: this.stamp(now), expiresAt: now + op.expires * 1000 };
        await this.store.put(etag, rec);
        this.add({ record: rec, document: op.document });
        this.recompose(op.presentity);
        return { ok: true, etag, expires: op.expires };
      }
      const old = this.byEtag.get(op.etag);
      // §6 step 4: an unknown (or expired, or someone else's) entity-tag is 412.
      if (!old || old.record.presentity !== op.presentity || old.record.expiresAt <= now) return { ok: false, status: 412 };
      if (op.kind === 'remove') {
        this.remove(old);
        await this.store.delete(op.etag);
        this.recompose(op.presentity);
        return { ok: true, etag: op.etag, expires: 0 };
      }
      const etag = newEtag();
      const rec: PublicationRecord =
        op.kind === 'modify'
          ? { etag, presentity: op.presentity, body: op.body, publishedAt: this.stamp(now), expiresAt: now + op.expires * 1000 }
          : { ...old.record, etag, expiresAt: now + op.expires * 1000 };
      await this.store.put(etag, rec);
      await this.store.delete(op.etag);
      this.remove(old);
      this.add({ record: rec, document: op.kind === 'modify' ? op.document : old.document });
      if (op.kind === 'modify') this.recompose(op.presentity);
      return { ok: true, etag, expires: op.expires };
    });
  }

  /** Drops publications whose time is up (RFC 3903 §6: the ESC removes expired state). */
  sweep(now = Date.now()): void {
    const touched = new Set<string>();
    for (const etag of this.expiry.due(now)) {
      const p = this.byEtag.get(etag);
      if (!p) continue;
      if (p.record.expiresAt > now) {
        this.expiry.set(etag, p.record.expiresAt);
        continue;
      }
      this.remove(p);
      void this.store.delete(etag);
      touched.add(p.record.presentity);
    }
    for (const presentity of touched) this.recompose(presentity);
  }

  /** A strictly increasing publication time, so "newest wins" has no ties. */
  private stamp(now: number): number {
    this.lastStamp = Math.max(now, this.lastStamp + 1);
    return this.lastStamp;
  }

  private add(p: Publication): void {
    this.byEtag.set(p.record.etag, p);
    let set = this.byPresentity.get(p.record.presentity);
    if (!set) {
      set = new Set();
      this.byPresentity.set(p.record.presentity, set);
    }
    set.add(p);
    this.expiry.set(p.record.etag, p.record.expiresAt);
  }

  private remove(p: Publication): void {
    this.byEtag.delete(p.record.etag);
    this.expiry.delete(p.record.etag);
    const set = this.byPresentity.get(p.record.presentity);
    set?.delete(p);
    if (set && set.size === 0) this.byPresentity.delete(p.record.presentity);
  }

  /** Composes the presentity's publications once and hands the result to its watchers. */
  private recompose(presentity: string): void {
    const pubs: PublishedDocument[] = [...(this.byPresentity.get(presentity) ?? [])].map((p) => ({
      etag: p.record.etag,
      publishedAt: p.record.publishedAt,
      doc: p.document,
    }));
    const doc = pubs.length > 0 ? composePresence(presentity, pubs) : undefined;
    if (doc) this.composed.set(presentity, doc);
    else this.composed.delete(presentity);
    const set = this.watchers.get(presentity);
    if (set) for (const u of set) u({ document: doc });
  }
}
