// The presence agent's event state compositor (RFC 3903 ESC) and the hub provider for local users.
// Protocol-independent: publish-handler.ts turns SIP PUBLISH requests into PublishOps.
import { randomBase64url } from '../util/random.js';
import type { Logger } from 'pino';
import { buildTuple, closedDocument, parsePidf, type PidfDocument } from '../formats/pidf.js';
import type { Provider, ProviderState, ProviderWatch } from '../hub/types.js';
import { unexpired, type Collection } from '../store/store.js';
import type { ResourceSharing } from '../store/sharing.js';
import { ExpiryWheel, KeyedQueue } from '../util/expiry.js';
import { Tally } from '../util/tally.js';
import { composePresence, type PublishedDocument } from './compose.js';

/** A publication as persisted: the raw PIDF is kept, and parsed again on restore. */
/** The store collection of publications (a shared store groups it by presentity). */
export const PUBLICATIONS = 'publication';

export interface PublicationRecord {
  etag: string;
  presentity: string;
  body: string;
  publishedAt: number;
  expiresAt: number;
  /** RFC 5262/5264: the pidf-diff version of the publication's state, when the EPA sends versions. */
  version?: number;
  /** The address the publication was last made or refreshed from (limits.max_publications_per_source). */
  source?: string;
}

/** RFC 5264 partial publication: the change against the publication's current state and version. */
export type PatchResult = { ok: true; document: PidfDocument; body: string } | { ok: false; status: 400 | 412; reason: string };

/** `source`: the publisher's address; a publication is held from the address that last sent it. */
export type PublishOp = { source?: string } & (
  | { kind: 'initial'; presentity: string; document: PidfDocument; body: string; expires: number; version?: number; maxPerPresentity?: number }
  | { kind: 'refresh'; presentity: string; etag: string; expires: number }
  | { kind: 'modify'; presentity: string; etag: string; document: PidfDocument; body: string; expires: number; version?: number }
  | { kind: 'patch'; presentity: string; etag: string; version: number; apply: (old: PidfDocument) => PatchResult; expires: number }
  | { kind: 'remove'; presentity: string; etag: string }
);

export type PublishResult = { ok: true; etag: string; expires: number } | { ok: false; status: 400 | 403 | 412; reason?: string };

interface Publication {
  /**
   * The publication's key in the store: the entity-tag of its initial PUBLISH, kept while refreshes
   * and modifications change the entity-tag, so each of those is one write of one row.
   */
  key: string;
  record: PublicationRecord;
  document: PidfDocument;
}

/**
 * Registration state of local users (RFC 3680 reg event at the operator's registrar), for users who
 * publish nothing. Implemented by the SIP gateway's reg source; the PA knows only this.
 */
export interface RegistrationState {
  /** Watches an AOR's registration until the returned function is called. */
  watch(aor: string): () => void;
  /** true registered, false not, undefined not known. */
  isRegistered(aor: string): boolean | undefined;
  onChange(listener: (aor: string, registered: boolean | undefined) => void): () => void;
}

/**
 * RFC 3903 §4.1: an entity-tag needs to be unique per resource, across restarts too. A random prefix
 * per process (96 bits) and a counter give that without a CSPRNG call per PUBLISH. Guessing one gives
 * nothing: an entity-tag works only for its own presentity (412 otherwise), and only the owner may
 * publish for a presentity where Herald authenticates.
 */
const ETAG_PREFIX = randomBase64url(12);
let etagCounter = 0;

/** The source a (new version of a) publication is held from: the op's, else the old one's. */
function sourceOf(op: PublishOp, old?: PublicationRecord): { source?: string } {
  const source = op.source ?? old?.source;
  return source !== undefined ? { source } : {};
}

function newEtag(): string {
  etagCounter = (etagCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${ETAG_PREFIX}.${etagCounter.toString(36)}`;
}

export class PresenceAgent implements Provider {
  readonly name = 'local-pa';
  private readonly byEtag = new Map<string, Publication>();
  private readonly byPresentity = new Map<string, Set<Publication>>();
  private readonly bySource = new Tally<string>();
  private readonly watchers = new Map<string, Set<(s: ProviderState) => void>>();
  /** Per watched presentity, ends listening to the other nodes' changes (in a cluster). */
  private readonly unhold = new Map<string, () => void>();
  private readonly composed = new Map<string, PidfDocument | undefined>();
  private readonly expiry = new ExpiryWheel<string>();
  private readonly queue = new KeyedQueue();
  private lastStamp = 0;
  private sharing: ResourceSharing<PublicationRecord> | undefined;

  constructor(
    private readonly domains: readonly string[],
    private readonly store: Collection<PublicationRecord>,
    private readonly log: Logger,
    private readonly registration?: RegistrationState,
  ) {
    registration?.onChange((aor) => {
      if (this.watchers.has(aor) || this.byPresentity.has(aor)) this.recompose(aor);
    });
  }

  /** Loads publications from the store, dropping those that expired while Herald was down. */
  async restore(now = Date.now()): Promise<{ restored: number; expired: number }> {
    let restored = 0;
    const { live, expired } = await unexpired(this.store, now);
    for (const [key, rec] of live) {
      try {
        this.add({ key, record: rec, document: parsePidf(rec.body) });
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

  /** Joins a cluster: publications are read from, and changes told to, the other nodes. */
  share(sharing: ResourceSharing<PublicationRecord>): void {
    this.sharing = sharing;
  }

  /**
   * Reads a presentity's publications again from the shared store (another node changed them, or Redis
   * is back) and notifies the watchers if the set changed. In the presentity's queue, after any PUBLISH
   * being applied here.
   */
  resync(presentity: string, now = Date.now()): Promise<void> {
    return this.queue.run(presentity, async () => {
      await this.reload(presentity, now);
    });
  }

  /**
   * Brings this node's copy of a presentity's publications up to date before a decision on it (a new
   * SUBSCRIBE: whether the presentity exists, its first NOTIFY). At once on a single node.
   */
  fresh(presentity: string): Promise<void> {
    return this.sharing ? this.resync(presentity) : Promise.resolve();
  }

  /**
   * The shared store's publications of a presentity replace this node's copy (publications are
   * immutable per entity-tag: a refresh or modify makes a new one, so comparing entity-tags is enough).
   * Returns whether anything changed.
   */
  private async reload(presentity: string, now: number): Promise<boolean> {
    if (!this.sharing) return false;
    const stored = await this.sharing.load(presentity);
    // By current entity-tag; the store key is the publication's first entity-tag (see Publication.key).
    const live = new Map<string, { key: string; record: PublicationRecord }>();
    for (const [key, r] of stored) {
      if (r.presentity !== presentity) continue;
      // Expired while its node was away (or dead): the first node that sees it removes it.
      if (r.expiresAt <= now) void this.store.delete(key);
      else live.set(r.etag, { key, record: r });
    }
    let changed = false;
    for (const p of [...(this.byPresentity.get(presentity) ?? [])]) {
      if (!live.has(p.record.etag)) {
        this.remove(p);
        changed = true;
      }
    }
    for (const { key, record: r } of live.values()) {
      if (this.byEtag.has(r.etag)) continue;
      try {
        this.add({ key, record: r, document: parsePidf(r.body) });
        this.lastStamp = Math.max(this.lastStamp, r.publishedAt);
        changed = true;
      } catch (e) {
        this.log.warn({ etag: r.etag, err: (e as Error).message }, 'unreadable shared publication ignored');
      }
    }
    if (changed) this.recompose(presentity);
    return changed;
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
    const release = this.registration?.watch(resource);
    // The first watcher of a presentity on this node: listen for other nodes' changes (and read what
    // the shared store has once listening, so nothing falls between).
    if (set.size === 0 && this.sharing) this.unhold.set(resource, this.sharing.hold(resource, () => void this.resync(resource).catch(() => undefined)));
    set.add(update);
    update({ document: this.composedDocument(resource) });
    return {
      stop: () => {
        release?.();
        set.delete(update);
        if (set.size === 0 && this.watchers.get(resource) === set) {
          this.watchers.delete(resource);
          this.unhold.get(resource)?.();
          this.unhold.delete(resource);
        }
      },
    };
  }

  /** Whether the presentity has any current publication. */
  hasPublications(presentity: string): boolean {
    return this.publicationCountOf(presentity) > 0;
  }

  /** Live publications of one presentity (one per device, RFC 3903). */
  publicationCountOf(presentity: string): number {
    return this.byPresentity.get(presentity)?.size ?? 0;
  }

  /** Live publications made or last refreshed from one address. */
  publicationCountFrom(address: string): number {
    return this.bySource.get(address);
  }

  /** The composed document of a presentity (undefined: nothing published). */
  document(presentity: string): PidfDocument | undefined {
    return this.composedDocument(presentity);
  }

  /** The cached composition, computed now if a change left it out of date. */
  private composedDocument(presentity: string): PidfDocument | undefined {
    if (!this.composed.has(presentity)) {
      const doc = this.compose(presentity);
      if (doc) this.composed.set(presentity, doc);
      return doc;
    }
    return this.composed.get(presentity);
  }

  /** Presentities with at least one live publication (the admin API). */
  presentities(): string[] {
    return [...this.byPresentity.keys()];
  }

  /** The live publications of a presentity, as persisted (the admin API). */
  publicationsOf(presentity: string): PublicationRecord[] {
    return [...(this.byPresentity.get(presentity) ?? [])].map((p) => p.record);
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
      // In a cluster the entity-tag may have been made on another node, and composition and the
      // per-presentity limit count every node's publications: read them first (one round trip).
      if (this.sharing) await this.reload(op.presentity, now);
      const result = await this.apply(op, now);
      if (result.ok) this.sharing?.changed(op.presentity);
      return result;
    });
  }

  /** One PUBLISH against this node's (reloaded) copy: durable before it resolves. */
  private async apply(op: PublishOp, now: number): Promise<PublishResult> {
    if (op.kind === 'initial') {
      // Each initial PUBLISH makes a publication that lives until it expires: bounded per presentity,
      // counted here after the reload so that a cluster counts every node's.
      if (op.maxPerPresentity !== undefined && this.publicationCountOf(op.presentity) >= op.maxPerPresentity) return { ok: false, status: 403, reason: 'Too Many Publications For Presentity' };
      const etag = newEtag();
      const rec: PublicationRecord = { etag, presentity: op.presentity, body: op.body, publishedAt: this.stamp(now), expiresAt: now + op.expires * 1000, ...(op.version !== undefined ? { version: op.version } : {}), ...sourceOf(op) };
      await this.store.put(etag, rec);
      this.add({ key: etag, record: rec, document: op.document });
      this.recompose(op.presentity);
      return { ok: true, etag, expires: op.expires };
    }
    const old = this.byEtag.get(op.etag);
    // §6 step 4: an unknown (or expired, or someone else's) entity-tag is 412.
    if (!old || old.record.presentity !== op.presentity || old.record.expiresAt <= now) return { ok: false, status: 412 };
    if (op.kind === 'remove') {
      this.remove(old);
      await this.store.delete(old.key);
      this.recompose(op.presentity);
      return { ok: true, etag: op.etag, expires: 0 };
    }
    let change: { document: PidfDocument; body: string; version?: number } | undefined;
    if (op.kind === 'modify') change = { document: op.document, body: op.body, ...(op.version !== undefined ? { version: op.version } : {}) };
    else if (op.kind === 'patch') {
      // RFC 5264 §5: a partial change applies to the version the ESC holds, the next one exactly.
      if (old.record.version === undefined || op.version !== old.record.version + 1) return { ok: false, status: 412, reason: 'Version Out Of Sequence' };
      const r = op.apply(old.document);
      if (!r.ok) return { ok: false, status: r.status, reason: r.reason };
      change = { document: r.document, body: r.body, version: op.version };
    }
    const etag = newEtag();
    const rec: PublicationRecord = change
      ? { etag, presentity: op.presentity, body: change.body, publishedAt: this.stamp(now), expiresAt: now + op.expires * 1000, ...(change.version !== undefined ? { version: change.version } : {}), ...sourceOf(op, old.record) }
      : { ...old.record, etag, expiresAt: now + op.expires * 1000, ...sourceOf(op, old.record) };
    // One write of the publication's row: the new entity-tag is durable exactly when the old one is gone.
    await this.store.put(old.key, rec);
    this.remove(old);
    this.add({ key: old.key, record: rec, document: change ? change.document : old.document });
    if (change) this.recompose(op.presentity);
    return { ok: true, etag, expires: op.expires };
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
      const presentity = p.record.presentity;
      // The other nodes that watch it learn of the expiry once the store has it.
      this.store.delete(p.key).then(() => this.sharing?.changed(presentity), () => undefined);
      touched.add(presentity);
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
    if (p.record.source !== undefined) this.bySource.add(p.record.source);
  }

  private remove(p: Publication): void {
    this.byEtag.delete(p.record.etag);
    this.expiry.delete(p.record.etag);
    const set = this.byPresentity.get(p.record.presentity);
    set?.delete(p);
    if (set && set.size === 0) this.byPresentity.delete(p.record.presentity);
    if (p.record.source !== undefined) this.bySource.remove(p.record.source);
  }

  /**
   * A user who publishes nothing is shown by registration state where a registrar tells it (the SER PA
   * and repro do the same): registered ⇒ one open tuple, not registered ⇒ closed. Any publication wins
   * over registration state: a device that publishes knows better than the registrar.
   */
  private fromRegistration(presentity: string): PidfDocument | undefined {
    const r = this.registration?.isRegistered(presentity);
    if (r === undefined) return undefined;
    if (!r) return closedDocument(presentity);
    return { ...closedDocument(presentity), tuples: [buildTuple({ id: 'reg', basic: 'open', contact: presentity })] };
  }

  private compose(presentity: string): PidfDocument | undefined {
    const pubs: PublishedDocument[] = [...(this.byPresentity.get(presentity) ?? [])].map((p) => ({
      etag: p.record.etag,
      publishedAt: p.record.publishedAt,
      doc: p.document,
    }));
    return pubs.length > 0 ? composePresence(presentity, pubs) : this.fromRegistration(presentity);
  }

  /**
   * A presentity's state changed: compose its publications once and hand the result to its watchers.
   * Nobody watching: the composition waits until somebody asks (a PUBLISH to an unwatched user costs
   * no composition).
   */
  private recompose(presentity: string): void {
    this.composed.delete(presentity);
    const set = this.watchers.get(presentity);
    if (!set) return;
    const doc = this.composedDocument(presentity);
    for (const u of set) u({ document: doc });
  }
}
