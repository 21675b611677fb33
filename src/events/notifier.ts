// The RFC 6665 notifier: SUBSCRIBE in, subscription dialogs kept (and persisted), NOTIFY out.
// Event packages (presence, presence.winfo; lists through the RLS) supply the content; this module
// owns the subscriptions: expiry, refresh, termination, NOTIFY pacing. The RFC 3261 §12 dialog rules
// (tags, CSeq order, route sets, strict routers, which NOTIFY answers are fatal) are src/sip/dialog.ts.
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { acceptInDialog, grantExpires, inDialogTarget, newTag, notifyAnswerEnds, outOfOrder, uasDialog } from '../sip/dialog.js';
import { header, mergeHeaders, type HeaderList, type SipResponse } from '../sip/message.js';
import type { ServerTx, SipStack } from '../sip/stack.js';
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
}


interface Live {
  rec: SubscriptionRecord;
  binding: Binding;
  inFlight: boolean;
  /** Another NOTIFY is due once the one in flight is answered. */
  again: boolean;
  terminating: TerminationReason | undefined;
  gone: boolean;
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
  private readonly expiry = new ExpiryWheel<string>();
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
    const rec: SubscriptionRecord = ownCopy({
      key,
      event: ev.event,
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
    });
    const live: Live = { rec, binding: undefined as unknown as Binding, inFlight: false, again: false, terminating: undefined, gone: false };
    const admission = await pkg.admit({ key: rec.key, resource: rec.resource, watcher: rec.watcher, request: rq, contentType: undefined, changed: () => this.changed(live), nextVersion: (n) => nextVersion(rec, n) });
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
    this.live.set(rec.key, live);
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
    rec.flow = rq.source;
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
      return;
    }
    void this.sendNotify(live, force);
  }

  /** Ends a subscription with a final NOTIFY (RFC 6665 §4.2.2). */
  terminate(live: Live, reason: TerminationReason): void {
    this.live.delete(live.rec.key);
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
    if (!force && !live.terminating && conditional === undefined && rec.localCseq > 0 && rec.lastTag !== undefined && live.binding.synced && live.binding.currentTag) {
      let now: string | undefined;
      try {
        now = live.binding.currentTag();
      } catch {
        now = undefined;
      }
      if (now === rec.lastTag) {
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
      this.live.delete(rec.key);
      this.expiry.delete(rec.key);
      live.terminating = content.reason ?? 'deactivated';
      live.gone = true;
    }
    // After a restart, and for changes that render to the same body, an unchanged body needs no NOTIFY.
    if (!force && !live.terminating && !live.binding.synced && content.tag !== undefined && content.tag === rec.lastTag && rec.localCseq > 0) return;
    live.inFlight = true;
    live.again = false;
    rec.localCseq++;
    rec.lastTag = content.tag;
    const final = live.terminating !== undefined;
    // The CSeq is durable before the NOTIFY leaves: a crash cannot make Herald reuse it.
    await this.persist(rec, final);
    const remaining = Math.max(0, Math.round((rec.expiresAt - Date.now()) / 1000));
    const subState = final ? `terminated;reason=${live.terminating}` : `${content.state};expires=${remaining}${content.stateParams ?? ''}`;
    // A terminated NOTIFY carries the last state only when the package still has something to show.
    const body = final && content.state !== 'active' ? undefined : content.body;
    // A list NOTIFY without a body still says it is one (RFC 4662 §4.5).
    if (conditional !== undefined && rec.contentType === 'multipart/related') content.headers = [['Require', 'eventlist']];
    const { uri, route } = inDialogTarget(rec);
    this.notifiesSent++;
    let res: SipResponse | undefined;
    try {
      res = await this.stack.send(
        {
          method: 'NOTIFY',
          uri,
          callId: rec.callId,
          from: { display: undefined, uri: rec.localUri, params: { tag: rec.localTag } },
          to: { display: undefined, uri: rec.remoteUri, params: { tag: rec.remoteTag } },
          cseq: rec.localCseq,
          route,
          contact: `<${this.stack.contactUri(rec.flow.protocol)}>`,
          headers: [
            ['Event', rec.eventId ? `${rec.event};id=${rec.eventId}` : rec.event],
            ['Subscription-State', subState],
            ...(content.tag ? ([['SIP-ETag', content.tag]] as [string, string][]) : []),
            ...(content.headers ?? []),
          ],
          ...(body !== undefined ? { body, contentType: content.contentType } : {}),
        },
        { flow: rec.flow },
      );
    } catch (e) {
      this.log.warn({ err: (e as Error).message, key: rec.key }, 'NOTIFY could not be sent');
    }
    live.inFlight = false;
    if (final) {
      live.binding.close(live.terminating);
      return;
    }
    if (notifyAnswerEnds(res?.status)) {
      // RFC 6665 §4.2.2: a 481, a timeout (or another fatal answer) removes the subscription.
      this.log.info({ key: rec.key, status: res?.status ?? 'timeout', resource: rec.resource }, 'NOTIFY failed; subscription removed');
      this.drop(live);
      return;
    }
    if (live.again && !this.stopped) this.changed(live, live.terminating !== undefined);
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

  /** Removes a subscription without a NOTIFY. */
  private drop(live: Live): void {
    live.gone = true;
    this.live.delete(live.rec.key);
    this.expiry.delete(live.rec.key);
    live.binding.close('timeout');
    void this.store.delete(live.rec.key);
  }

  /** Ends subscriptions whose time ran out, with `terminated;reason=timeout`. */
  sweep(now = Date.now()): void {
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
      const live: Live = { rec, binding: undefined as unknown as Binding, inFlight: false, again: false, terminating: undefined, gone: false };
      const admission = await pkg.admit({ key, resource: rec.resource, watcher: rec.watcher, request: undefined, contentType: rec.contentType, changed: () => this.changed(live), nextVersion: (n) => nextVersion(rec, n) });
      if (!admission.ok) {
        live.binding = { content: () => ({ state: 'active', body: undefined, contentType: undefined, tag: undefined }), close: () => undefined };
        this.terminate(live, 'noresource');
        continue;
      }
      live.binding = admission.binding;
      this.live.set(key, live);
      this.expiry.set(key, rec.expiresAt);
      restored++;
      this.changed(live);
    }
    return { restored, expired };
  }

  /** Stops sending; subscriptions stay in the store for the next start (SIGTERM is not an unsubscribe). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const l of this.live.values()) l.binding.close();
    this.live.clear();
  }
}
