// The RFC 6665 notifier: SUBSCRIBE in, subscription dialogs kept (and persisted), NOTIFY out.
// Event packages (presence, presence.winfo; lists through the RLS) supply the content; this module
// owns the subscriptions: expiry, refresh, termination, NOTIFY pacing. The RFC 3261 §12 dialog rules
// (tags, CSeq order, route sets, strict routers, which NOTIFY answers are fatal) are src/sip/dialog.ts.
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { acceptInDialog, grantExpires, inDialogTarget, newTag, notifyAnswerEnds, outOfOrder, uasDialog } from '../sip/dialog.js';
import { header, mergeHeaders, type Flow, type HeaderList } from '../sip/message.js';
import type { PreparedRequest, ServerTx, SipStack } from '../sip/stack.js';
import { unexpired, type Collection } from '../store/store.js';
import { ExpiryWheel } from '../util/expiry.js';
import {
  nextVersion,
  parseDeltaSeconds,
  parseEventHeader,
  type Binding,
  type EventPackage,
  type NotifyContent,
  type SubscriptionRecord,
  type TerminationReason,
  ANONYMOUS_WATCHER,
} from './subscription.js';

export interface NotifierOptions {
  minExpires: number;
  defaultExpires: number;
  maxExpires: number;
  /** Headers every answer carries (Allow, Allow-Events, Accept, Supported). */
  commonHeaders: () => HeaderList;
  /**
   * Who is subscribing: the authenticated identity ('' when anonymous), or undefined when the
   * request was answered (a 401 challenge). Without it the From address is taken.
   */
  identify?: (tx: ServerTx) => Promise<string | undefined>;
  /** Told of every NOTIFY leaving and of its answer (undefined: timeout); the admin's metrics and views. */
  observer?: { sent(rec: SubscriptionRecord): void; answered(rec: SubscriptionRecord, status: number | undefined): void };
  /** Most subscriptions one source address may hold (limits.max_subscriptions_per_source). */
  maxPerSource?: number;
  /** Sources the bound does not apply to (trusted peers: a proxy carries everybody's). */
  unbounded?: (address: string) => boolean;
  /**
   * Several nodes on one Redis (src/cluster/dialogs.ts): who owns each dialog. Absent on a single node,
   * where nothing below asks it anything (no Redis, no extra work on the NOTIFY path).
   */
  ownership?: DialogOwnership;
}

/**
 * What an in-dialog request at a node that does not own the dialog tells the owner (CLUSTER.md): the
 * receiving node validated and answered it and wrote the record; the owner applies the same dialog
 * changes to its copy and sends the NOTIFY, so the dialog keeps one CSeq sequence.
 */
export interface InDialogNotice {
  kind: 'refresh' | 'unsubscribe';
  dialog: string;
  expiresAt: number;
  remoteCseq: number;
  remoteTarget: string;
  flow: Flow;
}

/**
 * Dialog ownership as the notifier needs it (the cluster's leases, src/cluster/lease.ts). One owner
 * per dialog; the owner sends its NOTIFYs, with CSeqs from blocks reserved in Redis.
 */
export interface DialogOwnership {
  /** The local fence: this node's lease is known to run (a clock comparison, no I/O). */
  mayAct(): boolean;
  /** The fence was closed: re-check in Redis (dialogs lost meanwhile are dropped first); true: go on. */
  check(): Promise<boolean>;
  /** Takes a new dialog (or one whose owner is dead); ok with the highest CSeq any owner reserved. */
  claim(key: string, cseq: number): Promise<{ ok: true; cseq: number } | { ok: false; owner: string }>;
  /** Raises the dialog's CSeq reservation; false when another node owns it now. */
  reserve(key: string, upTo: number): Promise<boolean>;
  /** The dialog is over. */
  release(key: string): void;
  /** The owner of a dialog not held here, and whether it lives. */
  ownerOf(key: string): Promise<{ node: string; alive: boolean } | undefined>;
  /** Tells the owning node of an in-dialog request answered here. */
  forward(node: string, notice: InDialogNotice): Promise<void>;
}


interface Live {
  rec: SubscriptionRecord;
  binding: Binding;
  /** The tag of the last NOTIFY's body as sent (rec.lastTag is that, or undefined while not durable). */
  sentTag: string | undefined;
  /** When the last NOTIFY left (ms; 0: none since start). */
  sentAt: number;
  /**
   * A document version (rec.version or a nested one in rec.versions) was spent since the record was
   * last written: a versioned package's NOTIFY waits for its version to be durable.
   */
  versionUnwritten: boolean;
  /** The dialog's NOTIFY serialized but for CSeq, state and body, while the dialog is busy. */
  prepared: PreparedRequest | undefined;
  inFlight: boolean;
  /** Another NOTIFY is due once the one in flight is answered. */
  again: boolean;
  /** ...and it must go out even if its body is unchanged (a refresh came in meanwhile, RFC 6665 §4.2.1.2). */
  forced: boolean;
  terminating: TerminationReason | undefined;
  gone: boolean;
}

/** CSeqs reserved per dialog write: a NOTIFY costs a store write once per this many. */
const CSEQ_BLOCK = 1000;
/**
 * A dialog whose last NOTIFY is older than this is quiet: a change then writes the tag it sends, so a
 * restart does not repeat it. A busy dialog's tag is not written per NOTIFY (it is marked unknown
 * once, and written again by sweep() when the dialog has been quiet this long).
 */
const QUIET_MS = 5000;
/** Bound on the quiet dialogs written back per sweep (a background write, batched by the store). */
const CLEAN_PER_SWEEP = 5000;

function newLive(rec: SubscriptionRecord): Live {
  return { rec, binding: undefined as unknown as Binding, sentTag: rec.lastTag, sentAt: 0, versionUnwritten: false, prepared: undefined, inFlight: false, again: false, forced: false, terminating: undefined, gone: false };
}

/** The package's version counter for this dialog (RFC 4662 nested lists included), marked unwritten. */
function versionCounter(live: Live): (nested?: string) => number {
  return (nested) => {
    live.versionUnwritten = true;
    return nextVersion(live.rec, nested);
  };
}

function ownCopy<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}


/**
 * RFC 5839 §3.2 Suppress-If-Match: an entity-tag (or "*") the subscriber already holds. True when it
 * names the current one; "*" matches any current entity-tag.
 */
export function suppressMatches(value: string | undefined, current: string | undefined): boolean {
  if (value === undefined || current === undefined) return false;
  const v = value.trim();
  return v === '*' || v === current;
}

export class Notifier {
  private readonly packages = new Map<string, EventPackage>();
  private readonly live = new Map<string, Live>();
  /** Live subscriptions per source address (what one peer makes Herald hold). */
  private readonly perSource = new Map<string, number>();
  private readonly expiry = new ExpiryWheel<string>();
  /** Dialogs whose stored lastTag is unknown (undefined) while their last body's tag is not. */
  private readonly unknownTag = new Set<Live>();
  /** Dialogs that sent a NOTIFY lately (they keep their prepared NOTIFY until sweep() finds them quiet). */
  private readonly busy = new Set<Live>();
  /**
   * Cluster only: dialogs whose NOTIFY waits for the fence to open again or for Redis to record a CSeq
   * reservation (true: a forced one). Sent by retryOwed() once this node knows it still owns them.
   */
  private readonly owed = new Map<Live, boolean>();
  private checking = false;
  private stopped = false;
  /** NOTIFY transactions sent; the bench and the metrics read it. */
  notifiesSent = 0;
  /** NOTIFY bodies not sent: RFC 5839 204s and bodyless NOTIFYs, restored subscriptions left quiet. */
  suppressed = 0;

  constructor(
    private readonly stack: SipStack,
    private readonly store: Collection<SubscriptionRecord>,
    private readonly opts: NotifierOptions,
    private readonly log: Logger,
  ) {}

  register(pkg: EventPackage): void {
    this.packages.set(pkg.event, pkg);
  }

  get events(): string[] {
    return [...this.packages.keys()];
  }

  get size(): number {
    return this.live.size;
  }

  /** Every live subscription dialog (the admin API). */
  records(): SubscriptionRecord[] {
    return [...this.live.values()].map((l) => l.rec);
  }

  /** Subscriptions of one resource (for tests, winfo and debugging). */
  subscriptionsOf(resource: string): SubscriptionRecord[] {
    return [...this.live.values()].filter((l) => l.rec.resource === resource).map((l) => l.rec);
  }

  /** A package's default duration over the notifier's (RFC 6665 §7.2). */
  private bounds(pkg: EventPackage): { minExpires: number; defaultExpires: number; maxExpires: number } {
    return { minExpires: this.opts.minExpires, defaultExpires: pkg.defaultExpires ?? this.opts.defaultExpires, maxExpires: this.opts.maxExpires };
  }

  private answer(tx: ServerTx, status: number, reason: string, extra: HeaderList = [], toTag?: string): void {
    tx.respond({ status, reason, headers: mergeHeaders(this.opts.commonHeaders(), extra), ...(toTag ? { toTag } : {}) });
  }

  // ---- SUBSCRIBE -------------------------------------------------------------------------------

  async handleSubscribe(tx: ServerTx): Promise<void> {
    const rq = tx.request;
    const ev = parseEventHeader(header(rq, 'event'));
    if (!ev) return this.answer(tx, header(rq, 'event') ? 400 : 489, header(rq, 'event') ? 'Bad Event Header' : 'Bad Event');
    const pkg = this.packages.get(ev.event);
    if (!pkg) return this.answer(tx, 489, 'Bad Event');
    const expires = parseDeltaSeconds(header(rq, 'expires'));
    if (expires === 'bad') return this.answer(tx, 400, 'Bad Expires');
    const toTag = rq.to.params['tag'];
    if (toTag) return this.refresh(tx, toTag, ev.event, ev.id, expires);

    if (rq.contact.length !== 1) return this.answer(tx, 400, rq.contact.length === 0 ? 'Missing Contact' : 'Too Many Contacts');
    const max = this.opts.maxPerSource;
    if (max !== undefined && (this.perSource.get(rq.source.address) ?? 0) >= max && !this.opts.unbounded?.(rq.source.address)) {
      return this.answer(tx, 403, 'Too Many Subscriptions From This Address');
    }
    const fromTag = rq.from.params['tag'];
    if (!fromTag) return this.answer(tx, 400, 'Missing From Tag');
    const resource = rq.ruri ? aorOf(rq.uri) : undefined;
    if (!resource) return this.answer(tx, 404, 'Not Found');
    let watcher = aorOf(rq.from.uri) ?? rq.from.uri;
    if (this.opts.identify) {
      // In-dialog refreshes are not challenged: the dialog was, and its tags are unguessable.
      const id = await this.opts.identify(tx);
      if (id === undefined) return;
      watcher = id || ANONYMOUS_WATCHER;
    }
    // RFC 6665 §4.2.1.1: too brief ⇒ 423 with Min-Expires; too long ⇒ shortened.
    const g = grantExpires(expires, this.bounds(pkg));
    if (!g.ok) return this.answer(tx, 423, 'Interval Too Brief', [['Min-Expires', String(g.minExpires)]]);
    const granted = g.expires;

    const localTag = newTag();
    const dialog = uasDialog(rq);
    const key = `${rq.callId}|${localTag}`;
    // A JSON round trip gives the record strings of its own: the parser's substrings would otherwise
    // keep the whole SUBSCRIBE's text alive for as long as the subscription lives.
    const spelled = header(rq, 'event')!.split(';')[0]!.trim();
    const userAgent = header(rq, 'user-agent')?.slice(0, 64);
    const rec: SubscriptionRecord = ownCopy({
      key,
      event: ev.event,
      ...(spelled !== ev.event ? { eventSpelling: spelled } : {}),
      eventId: ev.id,
      resource,
      watcher,
      callId: rq.callId,
      localTag,
      remoteTag: fromTag,
      localUri: rq.to.uri,
      remoteUri: rq.from.uri,
      remoteTarget: dialog.remoteTarget ?? rq.from.uri,
      routeSet: dialog.routeSet,
      localCseq: 0,
      remoteCseq: dialog.remoteCseq,
      expiresAt: Date.now() + granted * 1000,
      contentType: '',
      flow: rq.source,
      lastTag: undefined,
      version: 0,
      ...(userAgent ? { userAgent } : {}),
    });
    const live = newLive(rec);
    const admission = await pkg.admit({ key: rec.key, resource: rec.resource, watcher: rec.watcher, request: rq, contentType: undefined, userAgent: rec.userAgent, changed: () => this.changed(live), nextVersion: versionCounter(live) });
    if (!admission.ok) return this.answer(tx, admission.status, admission.reason, admission.headers ?? []);
    rec.contentType = admission.contentType;
    live.binding = admission.binding;
    const okHeaders: HeaderList = [
      ...(admission.headers ?? []),
      ['Expires', String(granted)],
      ['Contact', `<${this.stack.contactUri(rq.source.protocol)}>`],
      ...dialog.routeSet.map((r): [string, string] => ['Record-Route', r]),
    ];
    if (granted === 0) {
      // A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, then the subscription is over.
      this.answer(tx, 200, 'OK', okHeaders, localTag);
      live.terminating = 'timeout';
      live.gone = true;
      await this.sendNotify(live);
      live.binding.close('timeout');
      return;
    }
    const own = this.opts.ownership;
    if (own) {
      // Cluster: the dialog is this node's before it exists, with its first CSeq block reserved in the
      // same step (so its first NOTIFYs need no further write). Redis away: the dispatcher answers 500
      // with Retry-After.
      const claimed = await own.claim(rec.key, CSEQ_BLOCK).catch((e: unknown) => {
        live.binding.close();
        throw e;
      });
      if (!claimed.ok) {
        live.binding.close();
        return this.answer(tx, 500, 'Server Internal Error', [['Retry-After', '1']]);
      }
      rec.cseqReserved = claimed.cseq;
    }
    this.hold(live);
    this.expiry.set(rec.key, rec.expiresAt);
    // The dialog is durable before the 200 says it exists.
    await this.persist(rec);
    this.answer(tx, 200, 'OK', okHeaders, localTag);
    // RFC 6665 §4.2.1.1: the notifier MUST send a NOTIFY at once. RFC 5839 §6.3: when the
    // subscriber already holds the current state (Suppress-If-Match names its entity-tag), that
    // NOTIFY carries no body, only the SIP-ETag.
    const tag = live.binding.currentTag?.();
    if (suppressMatches(header(rq, 'suppress-if-match'), tag)) {
      this.suppressed++;
      void this.sendNotify(live, true, tag);
      return;
    }
    this.changed(live);
  }

  private async refresh(tx: ServerTx, toTag: string, event: string, eventId: string | undefined, expires: number | undefined): Promise<void> {
    const rq = tx.request;
    const key = `${rq.callId}|${toTag}`;
    let live = this.live.get(key);
    // Cluster: a dialog held by no one here is another node's, or a dead node's (taken over first).
    const elsewhere = !live && this.opts.ownership ? await this.notHeld(key) : undefined;
    if (elsewhere === 'adopted') live = this.live.get(key);
    const rec = live?.rec ?? (elsewhere !== 'adopted' ? elsewhere?.rec : undefined);
    if (!rec || live?.gone || rec.remoteTag !== rq.from.params['tag'] || rec.event !== event || rec.eventId !== eventId) {
      return this.answer(tx, 481, 'Subscription Does Not Exist');
    }
    if (outOfOrder(rec, rq)) return this.answer(tx, 500, 'CSeq Out of Order');
    const g = grantExpires(expires, this.bounds(this.packages.get(event)!));
    if (!g.ok) return this.answer(tx, 423, 'Interval Too Brief', [['Min-Expires', String(g.minExpires)]]);
    const granted = g.expires;
    acceptInDialog(rec, rq);
    rec.flow = rq.source;
    const okHeaders: HeaderList = [['Expires', String(granted)], ['Contact', `<${this.stack.contactUri(rq.source.protocol)}>`]];
    if (!live) {
      if (elsewhere && elsewhere !== 'adopted') await this.forwardInDialog(tx, rec, elsewhere.owner, granted, okHeaders);
      return;
    }
    live.prepared = undefined; // the target and flow may have changed
    if (granted === 0) {
      // Unsubscribe: a final NOTIFY, terminated. The reason is "timeout", as for an expiry: the
      // subscription's duration has run out because the subscriber set it to zero.
      this.answer(tx, 200, 'OK', okHeaders);
      this.terminate(live, 'timeout');
      return;
    }
    rec.expiresAt = Date.now() + granted * 1000;
    this.expiry.set(rec.key, rec.expiresAt);
    await this.persist(rec);
    // RFC 5839 §6.2: a refresh whose Suppress-If-Match names the entity-tag of the state the watcher
    // would be sent: 204 No Notification, and no NOTIFY (the state it holds is current).
    if (!live.inFlight && suppressMatches(header(rq, 'suppress-if-match'), live.binding.currentTag?.())) {
      this.suppressed++;
      this.answer(tx, 204, 'No Notification', okHeaders);
      return;
    }
    this.answer(tx, 200, 'OK', okHeaders);
    // RFC 6665 §4.2.1.2: a refresh is followed by a NOTIFY with the current (full) state.
    live.binding.refreshed?.();
    this.changed(live, true);
  }

  // ---- NOTIFY ----------------------------------------------------------------------------------

  /** The content behind a subscription changed: send a NOTIFY, or note that one is due. */
  private changed(live: Live, force = false): void {
    if (live.gone && !live.terminating) return;
    if (live.inFlight) {
      live.again = true;
      // A refresh's NOTIFY is owed even when its body equals the one in flight (RFC 6665 §4.2.1.2):
      // the force must survive the coalescing.
      if (force) live.forced = true;
      return;
    }
    void this.sendNotify(live, force);
  }

  /** Ends a subscription with a final NOTIFY (RFC 6665 §4.2.2). */
  terminate(live: Live, reason: TerminationReason): void {
    this.release(live.rec.key);
    this.expiry.delete(live.rec.key);
    live.terminating = reason;
    live.gone = true;
    if (live.inFlight) live.again = true;
    else void this.sendNotify(live);
  }

  /**
   * Sends the next NOTIFY. `conditional`: the entity-tag the subscriber holds (RFC 5839 §6.3): the
   * NOTIFY carries it and no body, and the package is not asked for content (no version consumed).
   */
  private async sendNotify(live: Live, force = true, conditional?: string): Promise<void> {
    const rec = live.rec;
    const own = this.opts.ownership;
    if (own && !own.mayAct()) return this.fenced(live, force);
    // RFC 5839 §6.1: an unchanged entity-tag (after a restart, or a change that came back) owes the
    // watcher nothing. Packages whose content() spends something (RLMI versions) are asked before it;
    // the others after (one rendering, not two, on the hot path).
    if (!force && !live.terminating && conditional === undefined && rec.localCseq > 0 && live.sentTag !== undefined && live.binding.synced && live.binding.currentTag) {
      let now: string | undefined;
      try {
        now = live.binding.currentTag();
      } catch {
        now = undefined;
      }
      if (now === live.sentTag) {
        live.binding.synced?.();
        return;
      }
    }
    let content: NotifyContent;
    try {
      content = conditional !== undefined ? { state: 'active', body: undefined, contentType: undefined, tag: conditional } : live.binding.content();
    } catch (e) {
      this.log.error({ err: (e as Error).message, key: rec.key }, 'event package failed to render');
      return;
    }
    if (content.state === 'terminated' && !live.terminating) {
      // The package ends it (e.g. rules now block the watcher): this NOTIFY is the final one.
      this.release(rec.key);
      this.expiry.delete(rec.key);
      live.terminating = content.reason ?? 'deactivated';
      live.gone = true;
    }
    // After a restart, and for changes that render to the same body, an unchanged body needs no NOTIFY.
    if (!force && !live.terminating && !live.binding.synced && content.tag !== undefined && content.tag === live.sentTag && rec.localCseq > 0) return;
    live.inFlight = true;
    live.again = false;
    live.forced = false;
    rec.localCseq++;
    const final = live.terminating !== undefined;
    const tag = content.tag;
    // Cluster: a CSeq above the reservation is reserved in Redis first, and only by the owner (the
    // fencing that keeps a resumed old owner's CSeqs below a new owner's, src/cluster/lease.ts). A
    // fetch's dialog (never claimed, nobody else's) has no reservation.
    if (own && rec.cseqReserved !== undefined && rec.localCseq > rec.cseqReserved && !(await this.reserveCseqs(live, rec.localCseq + CSEQ_BLOCK - 1))) return;
    if (final) {
      this.unknownTag.delete(live);
      await this.persist(rec, true);
      if (own && rec.cseqReserved !== undefined) own.release(rec.key);
    } else {
      // The record is written before this NOTIFY leaves only when something durable must change:
      // its CSeq goes above the reserved block, its document version moved (winfo, RLMI), or the
      // stored tag would claim the watcher has a body it no longer has.
      const reserve = rec.localCseq > (rec.cseqReserved ?? 0);
      const staleTag = rec.lastTag !== undefined && rec.lastTag !== tag;
      if (reserve || staleTag || live.versionUnwritten) {
        if (reserve) rec.cseqReserved = rec.localCseq + CSEQ_BLOCK - 1;
        const quiet = Date.now() - live.sentAt >= QUIET_MS;
        // A busy dialog's tag stays unknown in the store (else its next NOTIFY would need a write too).
        // A versioned package's dialog (RLMI, winfo) is written before every NOTIFY anyway, for its
        // version: its tag goes with it at no cost, so a restored, unchanged list owes no NOTIFY (RFC 5839).
        rec.lastTag = quiet || live.versionUnwritten ? tag : staleTag ? undefined : rec.lastTag;
        live.versionUnwritten = false;
        await this.persist(rec);
      }
      if (rec.lastTag === undefined && tag !== undefined) this.unknownTag.add(live);
      else this.unknownTag.delete(live);
    }
    // The writes above took time: the fence is looked at again right before the NOTIFY leaves.
    if (own && !own.mayAct()) {
      live.inFlight = false;
      return this.fenced(live, true);
    }
    live.sentTag = tag;
    live.sentAt = Date.now();
    this.busy.add(live);
    const remaining = Math.max(0, Math.round((rec.expiresAt - Date.now()) / 1000));
    const subState = final ? `terminated;reason=${live.terminating}` : `${content.state};expires=${remaining}${content.stateParams ?? ''}`;
    // A terminated NOTIFY carries the last state only when the package still has something to show.
    const body = final && content.state !== 'active' ? undefined : content.body;
    // A list NOTIFY without a body still says it is one (RFC 4662 §4.5).
    if (conditional !== undefined && rec.contentType === 'multipart/related') content.headers = [['Require', 'eventlist']];
    this.notifiesSent++;
    this.opts.observer?.sent(rec);
    let status: number | undefined;
    try {
      live.prepared ??= this.prepare(rec);
      // RFC 6665 §8.2.1: event types compare byte by byte, so the subscriber's spelling is echoed; a
      // package may choose it per NOTIFY (client quirks), so Event is not in the prepared lines.
      const headers: (readonly [string, string])[] = [
        ['Event', `${content.eventSpelling ?? rec.eventSpelling ?? rec.event}${rec.eventId ? `;id=${rec.eventId}` : ''}`],
        ['Subscription-State', subState],
      ];
      if (content.tag) headers.push(['SIP-ETag', content.tag]);
      if (content.headers) headers.push(...content.headers);
      const bytes = body === undefined ? undefined : (content.bodyBytes ?? Buffer.from(body, 'utf8'));
      status = await this.stack.sendPrepared(live.prepared, rec.localCseq, headers, bytes, content.contentType, { flow: rec.flow });
    } catch (e) {
      this.log.warn({ err: (e as Error).message, key: rec.key }, 'NOTIFY could not be sent');
    }
    live.inFlight = false;
    this.opts.observer?.answered(rec, status);
    // Stopping (SIGTERM): a NOTIFY that could not leave says nothing about the subscription.
    if (this.stopped) return;
    if (final) {
      this.busy.delete(live);
      live.binding.close(live.terminating);
      return;
    }
    if (notifyAnswerEnds(status)) {
      // RFC 6665 §4.2.2: a 481, a timeout (or another fatal answer) removes the subscription.
      this.log.info({ key: rec.key, status: status ?? 'timeout', resource: rec.resource }, 'NOTIFY failed; subscription removed');
      this.drop(live);
      return;
    }
    if (live.again && !this.stopped) this.changed(live, live.forced || live.terminating !== undefined);
  }

  /**
   * The fixed part of this dialog's NOTIFYs, serialized once while the dialog is busy (sweep() drops
   * it when quiet, so a held subscription does not keep it).
   */
  private prepare(rec: SubscriptionRecord): PreparedRequest {
    const { uri, route } = inDialogTarget(rec);
    return this.stack.prepare({
      method: 'NOTIFY',
      uri,
      callId: rec.callId,
      from: { display: undefined, uri: rec.localUri, params: { tag: rec.localTag } },
      to: { display: undefined, uri: rec.remoteUri, params: { tag: rec.remoteTag } },
      route,
      contact: `<${this.stack.contactUri(rec.flow.protocol)}>`,
    });
  }

  /** Writes (or deletes) a record; a store failure is logged by the store and presence still flows. */
  private async persist(rec: SubscriptionRecord, remove = false): Promise<void> {
    try {
      if (remove) await this.store.delete(rec.key);
      // The live record itself: the store serializes it when the batch is written, so a later change
      // that lands before then is written too (it is only ever newer).
      else await this.store.put(rec.key, rec);
    } catch {
      // Restart safety is lost for this change only; the next write carries the whole record again.
    }
  }

  private hold(live: Live): void {
    if (this.live.has(live.rec.key)) return;
    this.live.set(live.rec.key, live);
    const a = live.rec.flow.address;
    this.perSource.set(a, (this.perSource.get(a) ?? 0) + 1);
  }

  private release(key: string): void {
    const live = this.live.get(key);
    if (!live) return;
    this.live.delete(key);
    const a = live.rec.flow.address;
    const n = (this.perSource.get(a) ?? 1) - 1;
    if (n <= 0) this.perSource.delete(a);
    else this.perSource.set(a, n);
  }

  /** Removes a subscription without a NOTIFY. */
  private drop(live: Live): void {
    this.forget(live, 'timeout');
    void this.store.delete(live.rec.key);
    if (live.rec.cseqReserved !== undefined) this.opts.ownership?.release(live.rec.key);
  }

  /**
   * Forgets a subscription here, nothing more: `reason` undefined when it goes on elsewhere (another
   * node owns it now, or Herald stops), so its binding does not report it ended.
   */
  private forget(live: Live, reason: TerminationReason | undefined): void {
    live.gone = true;
    this.unknownTag.delete(live);
    this.busy.delete(live);
    this.owed.delete(live);
    this.release(live.rec.key);
    this.expiry.delete(live.rec.key);
    live.binding.close(reason);
  }

  // ---- cluster (src/cluster/dialogs.ts) --------------------------------------------------------

  /**
   * The fence is closed: nothing is sent. The NOTIFY is owed; Redis decides whether this node still
   * owns the dialog (dialogs lost meanwhile are dropped by reconcile() before the check resolves).
   */
  private fenced(live: Live, force: boolean): void {
    this.owed.set(live, (this.owed.get(live) ?? false) || force);
    if (this.checking) return;
    this.checking = true;
    void this.opts.ownership!.check().then(
      (ok) => {
        this.checking = false;
        if (ok) this.retryOwed();
      },
      () => (this.checking = false),
    );
  }

  /** Sends the NOTIFYs that waited for the fence or for Redis (the wiring calls it when Redis is back). */
  retryOwed(): void {
    const owed = [...this.owed];
    this.owed.clear();
    for (const [live, force] of owed) if (!live.gone || live.terminating) this.changed(live, force);
  }

  /** Reserves CSeqs in Redis; false (and the NOTIFY not sent) when the dialog is lost or Redis is away. */
  private async reserveCseqs(live: Live, upTo: number): Promise<boolean> {
    let mine: boolean;
    try {
      mine = await this.opts.ownership!.reserve(live.rec.key, upTo);
    } catch {
      // Redis away: no CSeq goes above a reservation Redis has not recorded; this NOTIFY waits for it.
      live.rec.localCseq--;
      live.inFlight = false;
      this.owed.set(live, true);
      return false;
    }
    if (mine) return true;
    live.inFlight = false;
    this.log.info({ key: live.rec.key }, 'cluster: dialog owned by another node now; dropped here without a NOTIFY');
    this.forget(live, undefined);
    return false;
  }

  /**
   * After this node lost its lease and joined again: the dialogs another node took over meanwhile are
   * forgotten here without a word (the new owner notifies them, from the shared record).
   */
  reconcile(stillOwned: (key: string) => boolean): void {
    for (const live of [...this.live.values()]) if (!stillOwned(live.rec.key)) this.forget(live, undefined);
  }

  /**
   * A dialog is this node's now (its owner died): loaded from the shared store and, unless `notify` is
   * false, sent a NOTIFY at once — the watcher learns the dialog lives on and gets what changed while
   * no node held it. `cseq`: the highest CSeq any owner reserved; the next NOTIFY goes above it.
   */
  async adopt(key: string, cseq: number, notify = true): Promise<void> {
    if (this.live.has(key) || this.stopped) return;
    const rec = await this.store.get(key);
    if (!rec || rec.expiresAt <= Date.now() || !this.packages.has(rec.event)) {
      if (rec) void this.store.delete(key);
      this.opts.ownership?.release(key);
      return;
    }
    rec.localCseq = Math.max(rec.localCseq, rec.cseqReserved ?? 0, cseq);
    rec.cseqReserved = rec.localCseq;
    const live = await this.revive(key, rec);
    if (live && notify) this.changed(live, true);
  }

  /** An in-dialog request answered at another node (InDialogNotice): the owner's side. */
  inDialogElsewhere(n: InDialogNotice): void {
    const live = this.live.get(n.dialog);
    if (!live || live.gone) return;
    const rec = live.rec;
    rec.remoteCseq = Math.max(rec.remoteCseq, n.remoteCseq);
    rec.remoteTarget = n.remoteTarget;
    rec.flow = n.flow;
    live.prepared = undefined;
    if (n.kind === 'unsubscribe') {
      this.terminate(live, 'timeout');
      return;
    }
    rec.expiresAt = n.expiresAt;
    this.expiry.set(rec.key, rec.expiresAt);
    void this.persist(rec);
    live.binding.refreshed?.();
    this.changed(live, true);
  }

  /**
   * A dialog not held here: its stored record and live owner, or 'adopted' when its owner was dead
   * (or none) and this node took it over; undefined when there is no such dialog.
   */
  private async notHeld(key: string): Promise<{ rec: SubscriptionRecord; owner: string } | 'adopted' | undefined> {
    const own = this.opts.ownership!;
    const rec = await this.store.get(key);
    if (!rec || rec.expiresAt <= Date.now()) return undefined;
    const owner = await own.ownerOf(key);
    if (owner?.alive) return { rec, owner: owner.node };
    const claimed = await own.claim(key, 0);
    if (!claimed.ok) return { rec, owner: claimed.owner };
    this.log.info({ key, dead: owner?.node }, 'cluster: took over a dead node’s dialog for a request in it');
    // The request itself is answered (and its NOTIFY sent) as a refresh here.
    await this.adopt(key, claimed.cseq, false);
    return this.live.has(key) ? 'adopted' : undefined;
  }

  /** Answers an in-dialog SUBSCRIBE for a dialog another node owns; the owner sends the NOTIFY. */
  private async forwardInDialog(tx: ServerTx, rec: SubscriptionRecord, owner: string, granted: number, okHeaders: HeaderList): Promise<void> {
    if (granted > 0) rec.expiresAt = Date.now() + granted * 1000;
    // The record is durable before the answer: if the owner dies now, its successor has the refresh.
    await this.persist(rec);
    this.answer(tx, 200, 'OK', okHeaders);
    const notice: InDialogNotice = { kind: granted === 0 ? 'unsubscribe' : 'refresh', dialog: rec.key, expiresAt: rec.expiresAt, remoteCseq: rec.remoteCseq, remoteTarget: rec.remoteTarget, flow: rec.flow };
    await this.opts.ownership!.forward(owner, notice).catch((e: unknown) => this.log.warn({ err: (e as Error).message, key: rec.key, owner }, 'cluster: in-dialog request not passed to the owner'));
  }

  /** Ends subscriptions whose time ran out, with `terminated;reason=timeout`; writes back quiet dialogs' tags. */
  sweep(now = Date.now()): void {
    for (const live of this.busy) {
      if (live.inFlight || now - live.sentAt < QUIET_MS) continue;
      this.busy.delete(live);
      live.prepared = undefined;
    }
    let cleaned = 0;
    for (const live of this.unknownTag) {
      if (cleaned >= CLEAN_PER_SWEEP) break;
      if (live.inFlight || now - live.sentAt < QUIET_MS) continue;
      this.unknownTag.delete(live);
      if (live.gone) continue;
      // In the background: until it is written, a restart would resend the state (harmless).
      live.rec.lastTag = live.sentTag;
      void this.persist(live.rec);
      cleaned++;
    }
    for (const key of this.expiry.due(now)) {
      const live = this.live.get(key);
      if (!live) continue;
      if (live.rec.expiresAt > now) {
        this.expiry.set(key, live.rec.expiresAt);
        continue;
      }
      if (this.opts.ownership) void this.expireShared(live);
      else this.terminate(live, 'timeout');
    }
  }

  /**
   * Cluster: a refresh answered at another node reaches the owner on the bus, which may lose a message;
   * the shared record, written before that refresh was answered, has the last word on expiry.
   */
  private async expireShared(live: Live): Promise<void> {
    const stored = await this.store.get(live.rec.key).catch(() => undefined);
    if (live.gone) return;
    if (stored && stored.remoteTag === live.rec.remoteTag && stored.expiresAt > Date.now()) {
      live.rec.expiresAt = stored.expiresAt;
      live.rec.remoteCseq = Math.max(live.rec.remoteCseq, stored.remoteCseq);
      this.expiry.set(live.rec.key, live.rec.expiresAt);
      return;
    }
    this.terminate(live, 'timeout');
  }

  // ---- restart ---------------------------------------------------------------------------------

  /**
   * Restores persisted subscriptions: expired ones are deleted (their subscribers already consider them
   * over), the others are bound to their packages again and get a NOTIFY only if their state changed.
   */
  async restore(now = Date.now()): Promise<{ restored: number; expired: number }> {
    let restored = 0;
    const { live: records, expired } = await unexpired(this.store, now);
    for (const [key, rec] of records) {
      if (!this.packages.has(rec.event)) {
        void this.store.delete(key);
        continue;
      }
      const live = await this.revive(key, rec);
      if (!live) continue;
      restored++;
      this.changed(live);
    }
    return { restored, expired };
  }

  /**
   * A stored dialog bound to its package again and held (a restart, a takeover); undefined when the
   * package no longer admits it (it is terminated, noresource).
   */
  private async revive(key: string, rec: SubscriptionRecord): Promise<Live | undefined> {
    const pkg = this.packages.get(rec.event)!;
    // Go on above every CSeq the dialog may have used before the restart.
    rec.localCseq = Math.max(rec.localCseq, rec.cseqReserved ?? 0);
    const live = newLive(rec);
    const admission = await pkg.admit({ key, resource: rec.resource, watcher: rec.watcher, request: undefined, contentType: rec.contentType, userAgent: rec.userAgent, changed: () => this.changed(live), nextVersion: versionCounter(live) });
    if (!admission.ok) {
      live.binding = { content: () => ({ state: 'active', body: undefined, contentType: undefined, tag: undefined }), close: () => undefined };
      this.terminate(live, 'noresource');
      return undefined;
    }
    live.binding = admission.binding;
    this.hold(live);
    this.expiry.set(key, rec.expiresAt);
    return live;
  }

  /** Stops sending; subscriptions stay in the store for the next start (SIGTERM is not an unsubscribe). */
  async stop(): Promise<void> {
    this.stopped = true;
    // A clean stop writes the tags busy dialogs sent, so the next start resends nothing unchanged.
    const writes: Promise<void>[] = [];
    for (const l of this.unknownTag) {
      l.rec.lastTag = l.sentTag;
      writes.push(this.persist(l.rec));
    }
    this.unknownTag.clear();
    this.busy.clear();
    this.owed.clear();
    for (const l of this.live.values()) l.binding.close();
    this.live.clear();
    this.perSource.clear();
    await Promise.all(writes);
  }
}
