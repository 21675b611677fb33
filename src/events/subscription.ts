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
  event: string;
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
}

export interface Binding {
  content(): NotifyContent;
  /** The subscription is over; `reason` says why (undefined: Herald is shutting down, not an end). */
  close(reason?: TerminationReason): void;
  /** The subscriber refreshed: the next content must be full state (RFC 6665 §4.2.1.2). */
  refreshed?(): void;
}

export type Admission =
  | { ok: false; status: number; reason: string; headers?: HeaderList }
  | { ok: true; contentType: string; binding: Binding; headers?: HeaderList };

export interface AdmitContext {
  /** The subscription's key (stable across restarts). */
  key: string;
  resource: string;
  watcher: string;
  /** The SUBSCRIBE being admitted; undefined when a stored subscription is restored after a restart. */
  request: SipRequest | undefined;
  /** The content type stored with a restored subscription. */
  contentType: string | undefined;
  /** Call when the content changed; the notifier sends a NOTIFY (coalescing if one is in flight). */
  changed: () => void;
  /** The next document version of this subscription (RFC 3858 §4, RFC 4662 §5.2): 0, 1, 2…, persisted. */
  nextVersion: () => number;
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
