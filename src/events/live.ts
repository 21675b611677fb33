// One held subscription as the notifier keeps it in memory: the durable record's fields (what
// toJSON() writes, SubscriptionRecord) and the notifier's own state, in one object of fixed shape.
//
// Why it is laid out like this (issue 9: a held subscription in 1 KB): no closure and no Map per
// subscription, booleans in one small integer, times relative to the process's start (small integers
// stay unboxed in V8; a Date.now() value would be a boxed number per field), Call-ID and local tag
// read from the key they make up, and the strings many subscriptions share (URIs, Contact, content
// type, the flow) taken from the notifier's pools instead of each holding a copy. Nothing of the
// SUBSCRIBE is kept: every string is an own copy, not a slice of the message.
import type { Flow } from '../sip/message.js';
import type { Interner, StringPool } from '../util/intern.js';
import { owned } from '../util/intern.js';
import { EPOCH, sinceEpoch } from '../util/epoch.js';
import { nextVersion, type Binding, type SubscriptionHandle, type SubscriptionRecord, type TerminationReason } from './subscription.js';

const NEVER = -1;

const VERSION_UNWRITTEN = 1;
const IN_FLIGHT = 2;
const AGAIN = 4;
const FORCED = 8;
const GONE = 16;
/**
 * `bits` holds the flags above in its lowest five bits, the last NOTIFY's answer in the next ten (see
 * lastAnswer) and the remote tag's length in the fifteen above them (see remote): all in a small
 * integer, 30 bits, unboxed on every V8 build.
 */
const ANSWER_SHIFT = 5;
const ANSWER_MASK = 0x3ff << ANSWER_SHIFT;
const TIMEOUT = 1;
const TAG_SHIFT = 15;
const TAG_MAX = 0x7fff;

/** The route set of the many dialogs without one (never mutated: route sets are replaced, not edited). */
const NO_ROUTES: string[] = [];

/** A binding before admission, or of a restored subscription whose package refused it. */
export const UNBOUND: Binding = {
  content: () => ({ state: 'active', body: undefined, contentType: undefined, tag: undefined }),
  close: () => undefined,
};

/** Where the shared copies come from (one set per notifier). */
export interface Pools {
  strings: StringPool;
  flows: Interner<Flow>;
  kinds: Interner<Kind>;
}

/**
 * What many subscriptions have in common: the event package, the content type negotiated, the
 * subscriber's User-Agent and the notifier's change handler. One shared object per combination (and
 * notifier), and one pointer on each subscription instead of four (issue 9).
 */
export class Kind {
  constructor(
    private readonly pools: Pools,
    readonly event: string,
    readonly contentType: string,
    readonly userAgent: string | undefined,
    readonly onChange: (s: LiveSubscription) => void,
  ) {}

  static of(pools: Pools, event: string, contentType: string, userAgent: string | undefined, onChange: (s: LiveSubscription) => void): Kind {
    // "\n" cannot occur in a header value; a User-Agent absent and one present differ by the marker.
    const key = `${event}\n${contentType}\n${userAgent === undefined ? '' : `+${userAgent}`}`;
    const s = pools.strings;
    return pools.kinds.get(key, () => new Kind(pools, s.intern(event), s.intern(contentType), s.intern(userAgent), onChange));
  }

  /** The same with another content type (the one admission negotiated). */
  typed(contentType: string): Kind {
    return contentType === this.contentType ? this : Kind.of(this.pools, this.event, contentType, this.userAgent, this.onChange);
  }
}

/** A flow shared by every subscription that came on it (a TLS flow with its peer's names too). */
function sharedFlow(pools: Pools, f: Flow): Flow {
  const names = f.tlsNames ? `|${f.tlsNames.join(',')}` : '';
  return pools.flows.get(`${f.protocol}|${f.address}|${f.port}|${f.localPort ?? ''}${names}`, () => JSON.parse(JSON.stringify(f)) as Flow);
}

/**
 * The fields most subscriptions never set (an event spelled in capitals, an event id, document
 * versions, a termination under way, a local URI other than the resource, a watcher other than the
 * From URI): one pointer on the subscription while unset, instead of seven.
 */
class Rare {
  /** A remote tag too long for `bits` to hold its length (never from a real client). */
  remoteTag: string | undefined = undefined;
  localUri: string | undefined = undefined;
  watcher: string | undefined = undefined;
  eventSpelling: string | undefined = undefined;
  eventId: string | undefined = undefined;
  version = 0;
  versions: Record<string, number> | undefined = undefined;
  terminating: TerminationReason | undefined = undefined;
}

export class LiveSubscription implements SubscriptionRecord, SubscriptionHandle {
  readonly key: string;
  readonly resource: string;
  readonly remoteUri: string;
  /**
   * The remote tag and the remote target as one string of their own (one string's header, not two;
   * both are read when a dialog's NOTIFY is prepared, not per NOTIFY): the tag is its first
   * characters, as many as `bits` says.
   */
  private remote: string;
  readonly routeSet: string[];
  localCseq: number;
  cseqReserved: number | undefined;
  remoteCseq: number;
  /** The event package, content type, User-Agent and change handler (shared: see Kind). */
  private kind: Kind;
  flow: Flow;
  lastTag: string | undefined;
  /** Set on first use only (see Rare). */
  private rare: Rare | undefined = undefined;
  /** expiresAt − EPOCH. */
  private expires: number;

  // ---- the notifier's state (not durable) ----
  binding: Binding = UNBOUND;
  /** The tag of the last NOTIFY's body as sent (lastTag is that, or undefined while not durable). */
  sentTag: string | undefined;
  /** When the last NOTIFY left, − EPOCH (NEVER: none since start). */
  private sent = NEVER;
  /** The second its expiry is filed under (ExpiryBuckets). */
  expirySlot = 0;
  /** The flags, and the last NOTIFY's answer above them: its status, TIMEOUT for none, 0 before any. */
  private bits = 0;

  constructor(
    r: SubscriptionRecord,
    pools: Pools,
    /** The notifier's one change handler (shared by all its subscriptions). */
    onChange: (s: LiveSubscription) => void,
  ) {
    const s = pools.strings;
    this.key = owned(r.key);
    this.kind = Kind.of(pools, r.event, r.contentType, r.userAgent, onChange);
    if (r.eventSpelling !== undefined) this.more().eventSpelling = s.intern(r.eventSpelling);
    if (r.eventId !== undefined) this.more().eventId = s.intern(r.eventId);
    this.resource = s.intern(r.resource);
    if (r.remoteTag.length <= TAG_MAX) {
      this.remote = owned(r.remoteTag + r.remoteTarget);
      this.bits = r.remoteTag.length << TAG_SHIFT;
    } else {
      this.more().remoteTag = owned(r.remoteTag);
      this.remote = owned(r.remoteTarget);
    }
    // Our URI in the dialog is most often the resource itself (the To URI is the Request-URI).
    if (r.localUri !== r.resource) this.more().localUri = s.intern(r.localUri);
    // The watcher's own strings are copies, not pooled: a pool entry costs about as much as the copy,
    // and pays only when one watcher holds several subscriptions. Its address of record is most often
    // its From URI itself: then one string serves both.
    this.remoteUri = owned(r.remoteUri);
    if (r.watcher !== r.remoteUri) this.more().watcher = owned(r.watcher);
    this.routeSet = r.routeSet.length === 0 ? NO_ROUTES : r.routeSet.map((x) => s.intern(x));
    this.localCseq = r.localCseq;
    this.cseqReserved = r.cseqReserved;
    this.remoteCseq = r.remoteCseq;
    this.flow = sharedFlow(pools, r.flow);
    this.lastTag = r.lastTag;
    this.version = r.version;
    this.versions = r.versions;
    this.expires = sinceEpoch(r.expiresAt);
    this.sentTag = r.lastTag;
  }

  /** The event package, lower-cased (how packages are looked up). */
  get event(): string {
    return this.kind.event;
  }

  get contentType(): string {
    return this.kind.contentType;
  }

  set contentType(ct: string) {
    this.kind = this.kind.typed(ct);
  }

  get userAgent(): string | undefined {
    return this.kind.userAgent;
  }

  get remoteTag(): string {
    return this.rare?.remoteTag ?? this.remote.slice(0, this.bits >>> TAG_SHIFT);
  }

  /** The watcher's Contact (RFC 3261 §12.2.2: a target refresh replaces it); kept as an own copy. */
  get remoteTarget(): string {
    return this.remote.slice(this.bits >>> TAG_SHIFT);
  }

  set remoteTarget(uri: string) {
    this.remote = owned(this.remote.slice(0, this.bits >>> TAG_SHIFT) + uri);
  }

  /** Our URI in the dialog (the SUBSCRIBE's To URI). */
  get localUri(): string {
    return this.rare?.localUri ?? this.resource;
  }

  /** The watcher's identity (its address of record, or the authenticated one). */
  get watcher(): string {
    return this.rare?.watcher ?? this.remoteUri;
  }

  private more(): Rare {
    return (this.rare ??= new Rare());
  }

  get eventSpelling(): string | undefined {
    return this.rare?.eventSpelling;
  }

  get eventId(): string | undefined {
    return this.rare?.eventId;
  }

  /** For packages with versioned documents (winfo, RLMI, pidf-diff): the next version to send. */
  get version(): number {
    return this.rare?.version ?? 0;
  }

  set version(v: number) {
    if (v !== 0 || this.rare) this.more().version = v;
  }

  get versions(): Record<string, number> | undefined {
    return this.rare?.versions;
  }

  set versions(v: Record<string, number> | undefined) {
    if (v !== undefined || this.rare) this.more().versions = v;
  }

  /** Why the subscription is ending (its final NOTIFY is due or under way); undefined while it lives on. */
  get terminating(): TerminationReason | undefined {
    return this.rare?.terminating;
  }

  set terminating(reason: TerminationReason | undefined) {
    if (reason !== undefined || this.rare) this.more().terminating = reason;
  }

  /** The Call-ID and local tag: the key is `${callId}|${localTag}` (a local tag has no "|"). */
  get callId(): string {
    return this.key.slice(0, this.key.lastIndexOf('|'));
  }

  get localTag(): string {
    return this.key.slice(this.key.lastIndexOf('|') + 1);
  }

  get expiresAt(): number {
    return this.expires + EPOCH;
  }

  set expiresAt(ms: number) {
    this.expires = sinceEpoch(ms);
  }

  /** When the last NOTIFY left (ms; 0: none since start). */
  get sentAt(): number {
    return this.sent === NEVER ? 0 : this.sent + EPOCH;
  }

  set sentAt(ms: number) {
    this.sent = sinceEpoch(ms);
  }

  /** The last NOTIFY's answer (undefined: none yet; 'timeout': none came). */
  get lastAnswer(): number | 'timeout' | undefined {
    const answer = (this.bits & ANSWER_MASK) >> ANSWER_SHIFT;
    return answer === 0 ? undefined : answer === TIMEOUT ? 'timeout' : answer;
  }

  set lastAnswer(status: number | 'timeout' | undefined) {
    // A SIP status is 100–699 (the codec refuses others): it never collides with TIMEOUT.
    const answer = status === undefined ? 0 : status === 'timeout' ? TIMEOUT : status;
    this.bits = (this.bits & ~ANSWER_MASK) | (answer << ANSWER_SHIFT);
  }

  /** After a refresh: its flow, shared like the first (the target is an own copy already: see remoteTarget). */
  refreshed(flow: Flow, pools: Pools): void {
    this.flow = sharedFlow(pools, flow);
  }

  private flag(bit: number): boolean {
    return (this.bits & bit) !== 0;
  }

  private setFlag(bit: number, on: boolean): void {
    this.bits = on ? this.bits | bit : this.bits & ~bit;
  }

  /**
   * A document version (version or a nested one in versions) was spent since the record was last
   * written: a versioned package's NOTIFY waits for its version to be durable.
   */
  get versionUnwritten(): boolean {
    return this.flag(VERSION_UNWRITTEN);
  }
  set versionUnwritten(v: boolean) {
    this.setFlag(VERSION_UNWRITTEN, v);
  }
  get inFlight(): boolean {
    return this.flag(IN_FLIGHT);
  }
  set inFlight(v: boolean) {
    this.setFlag(IN_FLIGHT, v);
  }
  /** Another NOTIFY is due once the one in flight is answered. */
  get again(): boolean {
    return this.flag(AGAIN);
  }
  set again(v: boolean) {
    this.setFlag(AGAIN, v);
  }
  /** ...and it must go out even if its body is unchanged (a refresh came in meanwhile, RFC 6665 §4.2.1.2). */
  get forced(): boolean {
    return this.flag(FORCED);
  }
  set forced(v: boolean) {
    this.setFlag(FORCED, v);
  }
  get gone(): boolean {
    return this.flag(GONE);
  }
  set gone(v: boolean) {
    this.setFlag(GONE, v);
  }

  // ---- SubscriptionHandle: what its event package may do ----

  changed(): void {
    this.kind.onChange(this);
  }

  nextVersion(nested?: string): number {
    this.versionUnwritten = true;
    return nextVersion(this, nested);
  }

  /** The durable record (the store serializes through this): the fields of SubscriptionRecord only. */
  toJSON(): SubscriptionRecord {
    return {
      key: this.key,
      event: this.event,
      ...(this.eventSpelling !== undefined ? { eventSpelling: this.eventSpelling } : {}),
      eventId: this.eventId,
      resource: this.resource,
      watcher: this.watcher,
      callId: this.callId,
      localTag: this.localTag,
      remoteTag: this.remoteTag,
      localUri: this.localUri,
      remoteUri: this.remoteUri,
      remoteTarget: this.remoteTarget,
      routeSet: this.routeSet,
      localCseq: this.localCseq,
      ...(this.cseqReserved !== undefined ? { cseqReserved: this.cseqReserved } : {}),
      remoteCseq: this.remoteCseq,
      expiresAt: this.expiresAt,
      contentType: this.contentType,
      flow: this.flow,
      lastTag: this.lastTag,
      version: this.version,
      ...(this.userAgent !== undefined ? { userAgent: this.userAgent } : {}),
      ...(this.versions !== undefined ? { versions: this.versions } : {}),
    };
  }
}
