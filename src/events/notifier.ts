// The RFC 6665 notifier: SUBSCRIBE in, subscription dialogs kept (and persisted), NOTIFY out.
// Event packages (presence, presence.winfo; lists through the RLS) supply the content; this module
// owns the subscriptions: expiry, refresh, termination, NOTIFY pacing. The RFC 3261 §12 dialog rules
// (tags, CSeq order, route sets, strict routers, which NOTIFY answers are fatal) are src/sip/dialog.ts.
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { acceptInDialog, grantExpires, inDialogTarget, newTag, notifyAnswerEnds, outOfOrder, uasDialog } from '../sip/dialog.js';
import { header, mergeHeaders, type HeaderList } from '../sip/message.js';
import type { PreparedRequest, ServerTx, SipStack } from '../sip/stack.js';
import { unexpired, type Collection } from '../store/store.js';
import { Tally } from '../util/tally.js';
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
  private readonly perSource = new Tally<string>();
  private readonly expiry = new ExpiryWheel<string>();
  /** Dialogs whose stored lastTag is unknown (undefined) while their last body's tag is not. */
  private readonly unknownTag = new Set<Live>();
  /** Dialogs that sent a NOTIFY lately (they keep their prepared NOTIFY until sweep() finds them quiet). */
  private readonly busy = new Set<Live>();
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
    const live = this.live.get(`${rq.callId}|${toTag}`);
    if (!live || live.gone || live.rec.remoteTag !== rq.from.params['tag'] || live.rec.event !== event || live.rec.eventId !== eventId) {
      return this.answer(tx, 481, 'Subscription Does Not Exist');
    }
    const rec = live.rec;
    if (outOfOrder(rec, rq)) return this.answer(tx, 500, 'CSeq Out of Order');
    const g = grantExpires(expires, this.bounds(this.packages.get(event)!));
    if (!g.ok) return this.answer(tx, 423, 'Interval Too Brief', [['Min-Expires', String(g.minExpires)]]);
    const granted = g.expires;
    acceptInDialog(rec, rq);
    // The subscription is now held from the refreshing address (a move is never refused: refusing a
    // refresh would end a subscription its owner keeps alive; the cap gates new ones).
    this.perSource.move(rec.flow.address, rq.source.address);
    rec.flow = rq.source;
    live.prepared = undefined; // the target and flow may have changed
    const okHeaders: HeaderList = [['Expires', String(granted)], ['Contact', `<${this.stack.contactUri(rq.source.protocol)}>`]];
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
    if (final) {
      this.unknownTag.delete(live);
      await this.persist(rec, true);
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
    this.perSource.add(live.rec.flow.address);
  }

  private release(key: string): void {
    const live = this.live.get(key);
    if (!live) return;
    this.live.delete(key);
    this.perSource.remove(live.rec.flow.address);
  }

  /** Removes a subscription without a NOTIFY. */
  private drop(live: Live): void {
    live.gone = true;
    this.unknownTag.delete(live);
    this.busy.delete(live);
    this.release(live.rec.key);
    this.expiry.delete(live.rec.key);
    live.binding.close('timeout');
    void this.store.delete(live.rec.key);
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
      this.terminate(live, 'timeout');
    }
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
      const pkg = this.packages.get(rec.event);
      if (!pkg) {
        void this.store.delete(key);
        continue;
      }
      // Go on above every CSeq the dialog may have used before the restart.
      rec.localCseq = Math.max(rec.localCseq, rec.cseqReserved ?? 0);
      const live = newLive(rec);
      const admission = await pkg.admit({ key, resource: rec.resource, watcher: rec.watcher, request: undefined, contentType: rec.contentType, userAgent: rec.userAgent, changed: () => this.changed(live), nextVersion: versionCounter(live) });
      if (!admission.ok) {
        live.binding = { content: () => ({ state: 'active', body: undefined, contentType: undefined, tag: undefined }), close: () => undefined };
        this.terminate(live, 'noresource');
        continue;
      }
      live.binding = admission.binding;
      this.hold(live);
      this.expiry.set(key, rec.expiresAt);
      restored++;
      this.changed(live);
    }
    return { restored, expired };
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
    for (const l of this.live.values()) l.binding.close();
    this.live.clear();
    this.perSource.clear();
    await Promise.all(writes);
  }
}
