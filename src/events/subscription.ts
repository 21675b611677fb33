// RFC 6665 subscription vocabulary: the persisted dialog record, the event packages' contract, and
// the header grammar the notifier needs (Event, Subscription-State).
import type { Flow, HeaderList, SipRequest } from '../sip/message.js';

/** How an anonymous watcher is named in records and watcher info (RFC 3261 §8.1.1.3 anonymous URI style). */
export const ANONYMOUS_WATCHER = 'sip:anonymous@anonymous.invalid';

/** RFC 6665 §4.1.3 reason codes. */
export type TerminationReason = 'deactivated' | 'probation' | 'rejected' | 'timeout' | 'giveup' | 'noresource' | 'invariant';

/**
 * One subscription dialog as the notifier keeps it and persists it: flat and small (RFC 3261 §12
 * dialog state plus the RFC 6665 subscription). Everything a NOTIFY after a restart needs is here.
 */
export interface SubscriptionRecord {
  key: string;
  /** The event package, lower-cased (how packages are looked up). */
  event: string;
  /** The package as the subscriber spelled it, when not lower case: echoed in NOTIFYs (RFC 6665 §8.2.1). */
  eventSpelling?: string;
  eventId: string | undefined;
  /** The watched resource (the Request-URI's address of record). */
  resource: string;
  /** The watcher's identity (the From address of record; authenticated once authentication lands). */
  watcher: string;
  callId: string;
  localTag: string;
  remoteTag: string;
  /** Our URI in the dialog (the SUBSCRIBE's To URI) and the watcher's (its From URI). */
  localUri: string;
  remoteUri: string;
  remoteTarget: string;
  routeSet: string[];
  /** The CSeq of the last NOTIFY sent (in memory; the stored copy may lag behind, see cseqReserved). */
  localCseq: number;
  /**
   * The highest CSeq this dialog may use before the record is written again (RFC 3261 §12.2.1.1 asks
   * only that each CSeq be higher than the last): CSeqs are reserved in blocks, the block durable
   * before a NOTIFY goes above the previous one, and a restart goes on above it. A CSeq may jump after
   * a crash; it never repeats. Absent in records written before blocks: localCseq is exact there.
   */
  cseqReserved?: number;
  remoteCseq: number;
  expiresAt: number;
  contentType: string;
  /** Where the SUBSCRIBE came from; reused for NOTIFY while the connection lives. */
  flow: Flow;
  /**
   * The entity tag of the last body sent, so a restart resends only what changed; undefined when not
   * known durably (a busy dialog is not written per NOTIFY): the restart then sends the current state.
   */
  lastTag: string | undefined;
  /** For packages with versioned documents (winfo, RLMI): the next version to send. */
  version: number;
  /** The subscriber's User-Agent (at most 64 characters), for packages with per-client quirks. */
  userAgent?: string;
  /** RFC 4662 §5.2: nested lists' own next versions, by the nested list's URI. */
  versions?: Record<string, number>;
}

/** The next version of a subscription's document, or of one of its nested lists: 0, 1, 2… */
export function nextVersion(rec: SubscriptionRecord, nested?: string): number {
  if (nested === undefined) return rec.version++;
  const versions = (rec.versions ??= {});
  const v = versions[nested] ?? 0;
  versions[nested] = v + 1;
  return v;
}

/**
 * What the next NOTIFY carries. `body` undefined: no body (e.g. pending presence). A package that
 * answers 'terminated' ends the subscription with that reason (e.g. the presentity's rules now block).
 */
export interface NotifyContent {
  state: 'active' | 'pending' | 'terminated';
  reason?: TerminationReason;
  body: string | undefined;
  /** The body as UTF-8 bytes, when the package has them (shared by every watcher of one view). */
  bodyBytes?: Buffer;
  contentType: string | undefined;
  tag: string | undefined;
  /** Extra NOTIFY headers (RFC 4662 §4.3: Require: eventlist). */
  headers?: HeaderList;
  /** Extra Subscription-State parameters (RFC 6446 §5.2: the rates the notifier applies), e.g. ";max-rate=1". */
  stateParams?: string;
  /** The Event package spelling for this NOTIFY instead of the subscriber's (a client quirk, src/rls/client-quirks.ts). */
  eventSpelling?: string;
}

export interface Binding {
  content(): NotifyContent;
  /** The subscription is over; `reason` says why (undefined: Herald is shutting down, not an end). */
  close(reason?: TerminationReason): void;
  /** The subscriber refreshed: the next content must be full state (RFC 6665 §4.2.1.2). */
  refreshed?(): void;
  /**
   * RFC 5839 §6.1: the entity-tag of the full state as this watcher would see it now, without
   * producing a NOTIFY (no version consumed); undefined when none applies (pending, terminated).
   * A package whose `content()` has side effects (RLMI versions) must provide it.
   */
  currentTag?(): string | undefined;
  /**
   * The subscriber is known to hold the current state (restored, unchanged): nothing is owed. A
   * package whose content() spends something (RLMI versions) provides it, and is then asked for
   * currentTag() before content() is produced.
   */
  synced?(): void;
}

export type Admission =
  | { ok: false; status: number; reason: string; headers?: HeaderList }
  | { ok: true; contentType: string; binding: Binding; headers?: HeaderList };

/**
 * The subscription itself, as its package sees it: the same two calls as AdmitContext's `changed` and
 * `nextVersion`, on an object the package can keep instead of a closure per subscription.
 */
export interface SubscriptionHandle {
  changed(): void;
  nextVersion(nested?: string): number;
}

export interface AdmitContext {
  /** The subscription's key (stable across restarts). */
  key: string;
  resource: string;
  watcher: string;
  /** The SUBSCRIBE being admitted; undefined when a stored subscription is restored after a restart. */
  request: SipRequest | undefined;
  /** The content type stored with a restored subscription. */
  contentType: string | undefined;
  /** The subscriber's User-Agent (from the SUBSCRIBE, or stored with a restored subscription). */
  userAgent: string | undefined;
  /** Call when the content changed; the notifier sends a NOTIFY (coalescing if one is in flight). */
  changed: () => void;
  /**
   * The next document version of this subscription (RFC 3858 §4, RFC 4662 §5.2): 0, 1, 2…, persisted;
   * with `nested`, the next version of that nested list's own RLMI (RFC 4662 §5.4).
   */
  nextVersion: (nested?: string) => number;
  /** The same calls on the subscription (what a binding keeps, rather than the two closures above). */
  subscription?: HeldSubscription;
}

/** What a binding keeps of its subscription for the subscription's life: its names and its handle. */
export interface HeldSubscription extends SubscriptionHandle {
  readonly key: string;
  readonly resource: string;
  readonly watcher: string;
}

/**
 * The part of an admission a binding may keep: the subscription itself (the notifier's own flat record)
 * — never the AdmitContext, whose SUBSCRIBE and parsed headers would then live as long as the
 * subscription does (issue 9: a held subscription in 1 KB).
 */
export function heldSubscription(ctx: AdmitContext): HeldSubscription {
  if (ctx.subscription) return ctx.subscription;
  const { key, resource, watcher, changed, nextVersion } = ctx;
  return { key, resource, watcher, changed, nextVersion };
}

export interface EventPackage {
  readonly event: string;
  /** Default subscription duration when SUBSCRIBE has no Expires (RFC 6665 §7.2). */
  readonly defaultExpires?: number;
  admit(ctx: AdmitContext): Promise<Admission> | Admission;
}

/** RFC 6665 §8.2.1 Event header: `package[.template][;id=..]`. */
export function parseEventHeader(v: string | undefined): { event: string; id: string | undefined } | undefined {
  if (!v) return undefined;
  const parts = v.split(';');
  const event = parts[0]!.trim().toLowerCase();
  if (!/^[a-z0-9!%*_+`'~.-]+$/i.test(event)) return undefined;
  let id: string | undefined;
  for (const p of parts.slice(1)) {
    const m = /^\s*id\s*=\s*(.+?)\s*$/i.exec(p);
    if (m) id = m[1];
  }
  return { event, id };
}

/** Parses a delta-seconds header value (Expires, Min-Expires); undefined if absent or malformed. */
export function parseDeltaSeconds(v: string | undefined): number | undefined | 'bad' {
  if (v === undefined) return undefined;
  const t = v.trim();
  if (!/^\d{1,10}$/.test(t)) return 'bad';
  return Math.min(Number(t), 2 ** 32 - 1);
}
