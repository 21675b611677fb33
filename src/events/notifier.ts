// The RFC 6665 notifier: SUBSCRIBE in, subscription dialogs kept (and persisted), NOTIFY out.
// Event packages (presence, presence.winfo; lists through the RLS) supply the content; this module
// owns the subscriptions: expiry, refresh, termination, NOTIFY pacing. The RFC 3261 §12 dialog rules
// (tags, CSeq order, route sets, strict routers, which NOTIFY answers are fatal) are src/sip/dialog.ts.
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { acceptInDialog, grantExpires, inDialogTarget, newTag, notifyAnswerEnds, outOfOrder, uasDialog } from '../sip/dialog.js';
import { header, mergeHeaders, type Flow, type HeaderList } from '../sip/message.js';
import { formatHeaderLines } from '../sip/codec.js';
import type { PreparedRequest, ServerTx, SipStack } from '../sip/stack.js';
import { unexpired, type Collection } from '../store/store.js';
import { Tally } from '../util/tally.js';
import { ExpiryBuckets } from '../util/expiry.js';
import { Interner, StringPool } from '../util/intern.js';
import type { SipRequest } from '../sip/message.js';
import { LiveSubscription, UNBOUND, type Kind, type Pools } from './live.js';
import {
  parseDeltaSeconds,
  parseEventHeader,
  type AdmitContext,
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
  observer?: {
    /** `previousAt`: when this subscription's NOTIFY before this one left (ms; 0: none since start). */
    sent(rec: SubscriptionRecord, previousAt: number): void;
    answered(rec: SubscriptionRecord, status: number | undefined): void;
  };
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

/** What a package is told at admission; `changed`/`nextVersion` closures only for a package that asks. */
function admitContext(sub: LiveSubscription, request: SipRequest | undefined): AdmitContext {
  return {
    key: sub.key,
    resource: sub.resource,
    watcher: sub.watcher,
    request,
    contentType: request ? undefined : sub.contentType,
    userAgent: sub.userAgent,
    subscription: sub,
    get changed() {
      return () => sub.changed();
    },
    get nextVersion() {
      return (nested?: string) => sub.nextVersion(nested);
    },
  };
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
  private readonly live = new Map<string, LiveSubscription>();
  /** Live subscriptions per source address (what one peer makes Herald hold). */
  private readonly perSource = new Tally<string>();
  private readonly expiry = new ExpiryBuckets<LiveSubscription>();
  /** Dialogs whose stored lastTag is unknown (undefined) while their last body's tag is not. */
  private readonly unknownTag = new Set<LiveSubscription>();
  /**
   * Dialogs that sent a NOTIFY lately, with their NOTIFY serialized but for CSeq, state and body (kept
   * until sweep() finds them quiet: here rather than on every held subscription).
   */
  private readonly busy = new Map<LiveSubscription, PreparedRequest>();
  /**
   * Cluster only: dialogs whose NOTIFY waits for the fence to open again or for Redis to record a CSeq
   * reservation (true: a forced one). Sent by retryOwed() once this node knows it still owns them.
   */
  private readonly owed = new Map<LiveSubscription, boolean>();
  private checking = false;
  /** Shared copies of what many subscriptions hold (URIs, Contacts, flows). */
  private readonly pools: Pools = { strings: new StringPool(), flows: new Interner<Flow>(), kinds: new Interner<Kind>() };
  /** The one change handler every subscription of this notifier calls. */
  private readonly onChange = (sub: LiveSubscription): void => this.changed(sub);
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
    return [...this.live.values()];
  }

  /** Subscriptions of one resource (for tests, winfo and debugging). */
  subscriptionsOf(resource: string): SubscriptionRecord[] {
    return [...this.live.values()].filter((l) => l.resource === resource);
  }

  /** The last NOTIFY of a subscription and its answer (the admin API); undefined before any answer. */
  lastNotify(key: string): { at: number; status: number | 'timeout' } | undefined {
    const sub = this.live.get(key);
    const status = sub?.lastAnswer;
    return sub && status !== undefined ? { at: sub.sentAt, status } : undefined;
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
    if (max !== undefined && this.perSource.get(rq.source.address) >= max && !this.opts.unbounded?.(rq.source.address)) {
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
    const spelled = header(rq, 'event')!.split(';')[0]!.trim();
    const userAgent = header(rq, 'user-agent')?.slice(0, 64);
    // The live subscription takes own (or shared) copies of these strings, never the parser's slices
    // of the SUBSCRIBE's text: the request is not kept once it is answered.
    const sub = new LiveSubscription(
      {
        key: `${rq.callId}|${localTag}`,
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
      },
      this.pools,
      this.onChange,
    );
    const admission = await pkg.admit(admitContext(sub, rq));
    if (!admission.ok) return this.answer(tx, admission.status, admission.reason, admission.headers ?? []);
    sub.contentType = admission.contentType;
    sub.binding = admission.binding;
    const okHeaders: HeaderList = [
      ...(admission.headers ?? []),
      ['Expires', String(granted)],
      ['Contact', `<${this.stack.contactUri(rq.source.protocol)}>`],
      ...dialog.routeSet.map((r): [string, string] => ['Record-Route', r]),
    ];
    if (granted === 0) {
      // A fetch (RFC 6665 §4.4.3): one NOTIFY with the state, then the subscription is over.
      this.answer(tx, 200, 'OK', okHeaders, localTag);
      sub.terminating = 'timeout';
      sub.gone = true;
      await this.sendNotify(sub);
      sub.binding.close('timeout');
      return;
    }
    const own = this.opts.ownership;
    if (own) {
      // Cluster: the dialog is this node's before it exists, with its first CSeq block reserved in the
      // same step (so its first NOTIFYs need no further write). Redis away: the dispatcher answers 500
      // with Retry-After.
      const claimed = await own.claim(sub.key, CSEQ_BLOCK).catch((e: unknown) => {
        sub.binding.close();
        throw e;
      });
      if (!claimed.ok) {
        sub.binding.close();
        return this.answer(tx, 500, 'Server Internal Error', [['Retry-After', '1']]);
      }
      sub.cseqReserved = claimed.cseq;
    }
    this.hold(sub);
    this.expiry.set(sub, sub.expiresAt);
    // The dialog is durable before the 200 says it exists.
    await this.persist(sub);
    this.answer(tx, 200, 'OK', okHeaders, localTag);
    // RFC 6665 §4.2.1.1: the notifier MUST send a NOTIFY at once. RFC 5839 §6.3: when the
    // subscriber already holds the current state (Suppress-If-Match names its entity-tag), that
    // NOTIFY carries no body, only the SIP-ETag.
    const tag = sub.binding.currentTag?.();
    if (suppressMatches(header(rq, 'suppress-if-match'), tag)) {
      this.suppressed++;
      void this.sendNotify(sub, true, tag);
      return;
    }
    this.changed(sub);
  }

  private async refresh(tx: ServerTx, toTag: string, event: string, eventId: string | undefined, expires: number | undefined): Promise<void> {
    const rq = tx.request;
    const key = `${rq.callId}|${toTag}`;
    let sub = this.live.get(key);
    // Cluster: a dialog held by no one here is another node's, or a dead node's (taken over first).
    const elsewhere = !sub && this.opts.ownership ? await this.notHeld(key) : undefined;
    if (elsewhere === 'adopted') sub = this.live.get(key);
    const rec: SubscriptionRecord | undefined = sub ?? (elsewhere !== 'adopted' ? elsewhere?.rec : undefined);
    if (!rec || sub?.gone || rec.remoteTag !== rq.from.params['tag'] || rec.event !== event || rec.eventId !== eventId) {
      return this.answer(tx, 481, 'Subscription Does Not Exist');
    }
    if (outOfOrder(rec, rq)) return this.answer(tx, 500, 'CSeq Out of Order');
    const g = grantExpires(expires, this.bounds(this.packages.get(event)!));
    if (!g.ok) return this.answer(tx, 423, 'Interval Too Brief', [['Min-Expires', String(g.minExpires)]]);
    const granted = g.expires;
    acceptInDialog(rec, rq);
    const okHeaders: HeaderList = [['Expires', String(granted)], ['Contact', `<${this.stack.contactUri(rq.source.protocol)}>`]];
    if (!sub) {
      // Another node owns it: the refresh is recorded here and passed on, with the flow it came on.
      rec.flow = rq.source;
      if (elsewhere && elsewhere !== 'adopted') await this.forwardInDialog(tx, rec, elsewhere.owner, granted, okHeaders);
      return;
    }
    // The subscription is now held from the refreshing address (a move is never refused: refusing a
    // refresh would end a subscription its owner keeps alive; the cap gates new ones).
    this.perSource.move(sub.flow.address, rq.source.address);
    // Shared copies, not the request's strings (a refresh from elsewhere moves the dialog's flow).
    sub.refreshed(rq.source, this.pools);
    this.busy.delete(sub); // the target and flow may have changed: prepared anew
    if (granted === 0) {
      // Unsubscribe: a final NOTIFY, terminated. The reason is "timeout", as for an expiry: the
      // subscription's duration has run out because the subscriber set it to zero.
      this.answer(tx, 200, 'OK', okHeaders);
      this.terminate(sub, 'timeout');
      return;
    }
    sub.expiresAt = Date.now() + granted * 1000;
    this.expiry.set(sub, sub.expiresAt);
    await this.persist(sub);
    // RFC 5839 §6.2: a refresh whose Suppress-If-Match names the entity-tag of the state the watcher
    // would be sent: 204 No Notification, and no NOTIFY (the state it holds is current).
    if (!sub.inFlight && suppressMatches(header(rq, 'suppress-if-match'), sub.binding.currentTag?.())) {
      this.suppressed++;
      this.answer(tx, 204, 'No Notification', okHeaders);
      return;
    }
    this.answer(tx, 200, 'OK', okHeaders);
    // RFC 6665 §4.2.1.2: a refresh is followed by a NOTIFY with the current (full) state.
    sub.binding.refreshed?.();
    this.changed(sub, true);
  }

  // ---- NOTIFY ----------------------------------------------------------------------------------

  /** The content behind a subscription changed: send a NOTIFY, or note that one is due. */
  private changed(sub: LiveSubscription, force = false): void {
    if (sub.gone && !sub.terminating) return;
    if (sub.inFlight) {
      sub.again = true;
      // A refresh's NOTIFY is owed even when its body equals the one in flight (RFC 6665 §4.2.1.2):
      // the force must survive the coalescing.
      if (force) sub.forced = true;
      return;
    }
    void this.sendNotify(sub, force);
  }

  /** Ends a subscription with a final NOTIFY (RFC 6665 §4.2.2). */
  terminate(sub: LiveSubscription, reason: TerminationReason): void {
    this.release(sub.key);
    this.expiry.delete(sub);
    sub.terminating = reason;
    sub.gone = true;
    if (sub.inFlight) sub.again = true;
    else void this.sendNotify(sub);
  }

  /**
   * Sends the next NOTIFY. `conditional`: the entity-tag the subscriber holds (RFC 5839 §6.3): the
   * NOTIFY carries it and no body, and the package is not asked for content (no version consumed).
   */
  private async sendNotify(sub: LiveSubscription, force = true, conditional?: string): Promise<void> {
    const own = this.opts.ownership;
    if (own && !own.mayAct()) return this.fenced(sub, force);
    // RFC 5839 §6.1: an unchanged entity-tag (after a restart, or a change that came back) owes the
    // watcher nothing. Packages whose content() spends something (RLMI versions) are asked before it;
    // the others after (one rendering, not two, on the hot path).
    if (!force && !sub.terminating && conditional === undefined && sub.localCseq > 0 && sub.sentTag !== undefined && sub.binding.synced && sub.binding.currentTag) {
      let now: string | undefined;
      try {
        now = sub.binding.currentTag();
      } catch {
        now = undefined;
      }
      if (now === sub.sentTag) {
        sub.binding.synced?.();
        return;
      }
    }
    let content: NotifyContent;
    try {
      content = conditional !== undefined ? { state: 'active', body: undefined, contentType: undefined, tag: conditional } : sub.binding.content();
    } catch (e) {
      this.log.error({ err: (e as Error).message, key: sub.key }, 'event package failed to render');
      return;
    }
    if (content.state === 'terminated' && !sub.terminating) {
      // The package ends it (e.g. rules now block the watcher): this NOTIFY is the final one.
      this.release(sub.key);
      this.expiry.delete(sub);
      sub.terminating = content.reason ?? 'deactivated';
      sub.gone = true;
    }
    // After a restart, and for changes that render to the same body, an unchanged body needs no NOTIFY.
    if (!force && !sub.terminating && !sub.binding.synced && content.tag !== undefined && content.tag === sub.sentTag && sub.localCseq > 0) return;
    sub.inFlight = true;
    sub.again = false;
    sub.forced = false;
    sub.localCseq++;
    const final = sub.terminating !== undefined;
    const tag = content.tag;
    // Cluster: a CSeq above the reservation is reserved in Redis first, and only by the owner (the
    // fencing that keeps a resumed old owner's CSeqs below a new owner's, src/cluster/lease.ts). A
    // fetch's dialog (never claimed, nobody else's) has no reservation.
    if (own && sub.cseqReserved !== undefined && sub.localCseq > sub.cseqReserved && !(await this.reserveCseqs(sub, sub.localCseq + CSEQ_BLOCK - 1))) return;
    if (final) {
      this.unknownTag.delete(sub);
      await this.persist(sub, true);
      if (own && sub.cseqReserved !== undefined) own.release(sub.key);
    } else {
      // The record is written before this NOTIFY leaves only when something durable must change:
      // its CSeq goes above the reserved block, its document version moved (winfo, RLMI), or the
      // stored tag would claim the watcher has a body it no longer has.
      const reserve = sub.localCseq > (sub.cseqReserved ?? 0);
      const staleTag = sub.lastTag !== undefined && sub.lastTag !== tag;
      if (reserve || staleTag || sub.versionUnwritten) {
        if (reserve) sub.cseqReserved = sub.localCseq + CSEQ_BLOCK - 1;
        const quiet = Date.now() - sub.sentAt >= QUIET_MS;
        // A busy dialog's tag stays unknown in the store (else its next NOTIFY would need a write too).
        // A versioned package's dialog (RLMI, winfo) is written before every NOTIFY anyway, for its
        // version: its tag goes with it at no cost, so a restored, unchanged list owes no NOTIFY (RFC 5839).
        sub.lastTag = quiet || sub.versionUnwritten ? tag : staleTag ? undefined : sub.lastTag;
        sub.versionUnwritten = false;
        await this.persist(sub);
      }
      if (sub.lastTag === undefined && tag !== undefined) this.unknownTag.add(sub);
      else this.unknownTag.delete(sub);
    }
    // The writes above took time: the fence is looked at again right before the NOTIFY leaves.
    if (own && !own.mayAct()) {
      sub.inFlight = false;
      return this.fenced(sub, true);
    }
    sub.sentTag = tag;
    const previousAt = sub.sentAt;
    sub.sentAt = Date.now();
    const remaining = Math.max(0, Math.round((sub.expiresAt - Date.now()) / 1000));
    const subState = final ? `terminated;reason=${sub.terminating}` : `${content.state};expires=${remaining}${content.stateParams ?? ''}`;
    // A terminated NOTIFY carries the last state only when the package still has something to show.
    const body = final && content.state !== 'active' ? undefined : content.body;
    // A list NOTIFY without a body still says it is one (RFC 4662 §4.5).
    const listRequire = conditional !== undefined && sub.contentType === 'multipart/related';
    this.notifiesSent++;
    this.opts.observer?.sent(sub, previousAt);
    // Whether the answer was told (a send that fails at once tells it before sendPrepared returns).
    let told = false;
    try {
      let prepared = this.busy.get(sub);
      if (prepared === undefined) this.busy.set(sub, (prepared = this.prepare(sub)));
      // RFC 6665 §8.2.1: event types compare byte by byte, so the subscriber's spelling is echoed; a
      // package may choose it per NOTIFY (client quirks), so Event is not in the prepared lines.
      // The per-NOTIFY lines are written as one string (no header list per NOTIFY).
      const more = `Event: ${content.eventSpelling ?? sub.eventSpelling ?? sub.event}${sub.eventId ? `;id=${sub.eventId}` : ''}\r\nSubscription-State: ${subState}\r\n${
        content.tag ? `SIP-ETag: ${content.tag}\r\n` : ''
      }${content.headers ? formatHeaderLines(content.headers) : ''}${listRequire ? 'Require: eventlist\r\n' : ''}`;
      const bytes = body === undefined ? undefined : (content.bodyBytes ?? Buffer.from(body, 'utf8'));
      // The answer comes to a callback, not to an awaited promise: no promise chain and no resumed
      // async frame per NOTIFY (issue 9).
      this.stack.sendPrepared(prepared, sub.localCseq, more, bytes, content.contentType, sub.flow, (status) => {
        told = true;
        this.answered(sub, final, status);
      });
    } catch (e) {
      this.log.warn({ err: (e as Error).message, key: sub.key }, 'NOTIFY could not be sent');
      if (!told) this.answered(sub, final, undefined);
    }
  }

  /** A NOTIFY's final answer (undefined: none came, or it could not be sent). */
  private answered(sub: LiveSubscription, final: boolean, status: number | undefined): void {
    sub.inFlight = false;
    sub.lastAnswer = status ?? 'timeout';
    this.opts.observer?.answered(sub, status);
    // Stopping (SIGTERM): a NOTIFY that could not leave says nothing about the subscription.
    if (this.stopped) return;
    if (final) {
      this.busy.delete(sub);
      sub.binding.close(sub.terminating);
      return;
    }
    if (notifyAnswerEnds(status)) {
      // RFC 6665 §4.2.2: a 481, a timeout (or another fatal answer) removes the subscription.
      this.log.info({ key: sub.key, status: status ?? 'timeout', resource: sub.resource }, 'NOTIFY failed; subscription removed');
      this.drop(sub);
      return;
    }
    if (sub.again && !this.stopped) this.changed(sub, sub.forced || sub.terminating !== undefined);
  }

  /**
   * The fixed part of this dialog's NOTIFYs, serialized once while the dialog is busy (sweep() drops
   * it when quiet, so a held subscription does not keep it).
   */
  private prepare(sub: LiveSubscription): PreparedRequest {
    const { uri, route } = inDialogTarget(sub);
    return this.stack.prepare({
      method: 'NOTIFY',
      uri,
      callId: sub.callId,
      from: { display: undefined, uri: sub.localUri, params: { tag: sub.localTag } },
      to: { display: undefined, uri: sub.remoteUri, params: { tag: sub.remoteTag } },
      route,
      contact: `<${this.stack.contactUri(sub.flow.protocol)}>`,
    });
  }

  /** Writes (or deletes) a record; a store failure is logged by the store and presence still flows. */
  private async persist(sub: SubscriptionRecord, remove = false): Promise<void> {
    try {
      if (remove) await this.store.delete(sub.key);
      // The live subscription itself: the store serializes it (toJSON: the durable fields) when the
      // batch is written, so a later change that lands before then is written too (only ever newer).
      else await this.store.put(sub.key, sub);
    } catch {
      // Restart safety is lost for this change only; the next write carries the whole record again.
    }
  }

  private hold(sub: LiveSubscription): void {
    if (this.live.has(sub.key)) return;
    this.live.set(sub.key, sub);
    this.perSource.add(sub.flow.address);
  }

  private release(key: string): void {
    const sub = this.live.get(key);
    if (!sub) return;
    this.live.delete(key);
    this.perSource.remove(sub.flow.address);
  }

  /** Removes a subscription without a NOTIFY. */
  private drop(sub: LiveSubscription): void {
    this.forget(sub, 'timeout');
    void this.store.delete(sub.key);
    if (sub.cseqReserved !== undefined) this.opts.ownership?.release(sub.key);
  }

  /**
   * Forgets a subscription here, nothing more: `reason` undefined when it goes on elsewhere (another
   * node owns it now, or Herald stops), so its binding does not report it ended.
   */
  private forget(sub: LiveSubscription, reason: TerminationReason | undefined): void {
    sub.gone = true;
    this.unknownTag.delete(sub);
    this.busy.delete(sub);
    this.owed.delete(sub);
    this.release(sub.key);
    this.expiry.delete(sub);
    sub.binding.close(reason);
  }

  // ---- cluster (src/cluster/dialogs.ts) --------------------------------------------------------

  /**
   * The fence is closed: nothing is sent. The NOTIFY is owed; Redis decides whether this node still
   * owns the dialog (dialogs lost meanwhile are dropped by reconcile() before the check resolves).
   */
  private fenced(sub: LiveSubscription, force: boolean): void {
    this.owed.set(sub, (this.owed.get(sub) ?? false) || force);
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
    for (const [sub, force] of owed) if (!sub.gone || sub.terminating) this.changed(sub, force);
  }

  /** Reserves CSeqs in Redis; false (and the NOTIFY not sent) when the dialog is lost or Redis is away. */
  private async reserveCseqs(sub: LiveSubscription, upTo: number): Promise<boolean> {
    let mine: boolean;
    try {
      mine = await this.opts.ownership!.reserve(sub.key, upTo);
    } catch {
      // Redis away: no CSeq goes above a reservation Redis has not recorded; this NOTIFY waits for it.
      sub.localCseq--;
      sub.inFlight = false;
      this.owed.set(sub, true);
      return false;
    }
    if (mine) return true;
    sub.inFlight = false;
    this.log.info({ key: sub.key }, 'cluster: dialog owned by another node now; dropped here without a NOTIFY');
    this.forget(sub, undefined);
    return false;
  }

  /**
   * After this node lost its lease and joined again: the dialogs another node took over meanwhile are
   * forgotten here without a word (the new owner notifies them, from the shared record).
   */
  reconcile(stillOwned: (key: string) => boolean): void {
    for (const sub of [...this.live.values()]) if (!stillOwned(sub.key)) this.forget(sub, undefined);
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
    const sub = await this.revive(key, rec);
    if (sub && notify) this.changed(sub, true);
  }

  /** An in-dialog request answered at another node (InDialogNotice): the owner's side. */
  inDialogElsewhere(n: InDialogNotice): void {
    const sub = this.live.get(n.dialog);
    if (!sub || sub.gone) return;
    sub.remoteCseq = Math.max(sub.remoteCseq, n.remoteCseq);
    sub.remoteTarget = n.remoteTarget;
    this.perSource.move(sub.flow.address, n.flow.address);
    sub.refreshed(n.flow, this.pools);
    this.busy.delete(sub);
    if (n.kind === 'unsubscribe') {
      this.terminate(sub, 'timeout');
      return;
    }
    sub.expiresAt = n.expiresAt;
    this.expiry.set(sub, sub.expiresAt);
    void this.persist(sub);
    sub.binding.refreshed?.();
    this.changed(sub, true);
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
    for (const sub of this.busy.keys()) {
      if (sub.inFlight || now - sub.sentAt < QUIET_MS) continue;
      this.busy.delete(sub);
    }
    let cleaned = 0;
    for (const sub of this.unknownTag) {
      if (cleaned >= CLEAN_PER_SWEEP) break;
      if (sub.inFlight || now - sub.sentAt < QUIET_MS) continue;
      this.unknownTag.delete(sub);
      if (sub.gone) continue;
      // In the background: until it is written, a restart would resend the state (harmless).
      sub.lastTag = sub.sentTag;
      void this.persist(sub);
      cleaned++;
    }
    for (const sub of this.expiry.due(now)) {
      if (this.live.get(sub.key) !== sub) continue;
      if (sub.expiresAt > now) {
        this.expiry.set(sub, sub.expiresAt);
        continue;
      }
      if (this.opts.ownership) void this.expireShared(sub);
      else this.terminate(sub, 'timeout');
    }
  }

  /**
   * Cluster: a refresh answered at another node reaches the owner on the bus, which may lose a message;
   * the shared record, written before that refresh was answered, has the last word on expiry.
   */
  private async expireShared(sub: LiveSubscription): Promise<void> {
    const stored = await this.store.get(sub.key).catch(() => undefined);
    if (sub.gone) return;
    if (stored && stored.remoteTag === sub.remoteTag && stored.expiresAt > Date.now()) {
      sub.expiresAt = stored.expiresAt;
      sub.remoteCseq = Math.max(sub.remoteCseq, stored.remoteCseq);
      this.expiry.set(sub, sub.expiresAt);
      return;
    }
    this.terminate(sub, 'timeout');
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
      const sub = await this.revive(key, rec);
      if (!sub) continue;
      restored++;
      this.changed(sub);
    }
    return { restored, expired };
  }

  /**
   * A stored dialog bound to its package again and held (a restart, a takeover); undefined when the
   * package no longer admits it (it is terminated, noresource).
   */
  private async revive(key: string, rec: SubscriptionRecord): Promise<LiveSubscription | undefined> {
    const pkg = this.packages.get(rec.event)!;
    const sub = new LiveSubscription(rec, this.pools, this.onChange);
    // Go on above every CSeq the dialog may have used before the restart.
    sub.localCseq = Math.max(rec.localCseq, rec.cseqReserved ?? 0);
    const admission = await pkg.admit(admitContext(sub, undefined));
    if (!admission.ok) {
      sub.binding = UNBOUND;
      this.terminate(sub, 'noresource');
      return undefined;
    }
    sub.binding = admission.binding;
    this.hold(sub);
    this.expiry.set(sub, sub.expiresAt);
    return sub;
  }


  /** Stops sending; subscriptions stay in the store for the next start (SIGTERM is not an unsubscribe). */
  async stop(): Promise<void> {
    this.stopped = true;
    // A clean stop writes the tags busy dialogs sent, so the next start resends nothing unchanged.
    const writes: Promise<void>[] = [];
    for (const l of this.unknownTag) {
      l.lastTag = l.sentTag;
      writes.push(this.persist(l));
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
