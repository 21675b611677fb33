// The RFC 6665 subscriber: SUBSCRIBE out, subscription dialogs kept (and persisted), NOTIFY in.
// The mirror of notifier.ts. Owners (the SIP gateway, the reg-event source) name what to subscribe to
// and get notices back; this module owns the subscription: refresh before expiry, unsubscribe, the
// NOTIFY that arrives before the 2xx (§4.1.2.4), Timer N, error answers (423, 401/407, 4xx/5xx/6xx,
// 481, timeouts) and Subscription-State reasons (§4.1.3). The RFC 3261 §12 dialog rules (tags, CSeq
// order, route sets, strict routers, which answers are fatal) are src/sip/dialog.ts.
import type { Logger } from 'pino';
import { acceptInDialog, classifyFailure, inDialogTarget, newCallId, newTag, outOfOrder, refreshAnswerEnds, uacDialog, uasDialog } from '../sip/dialog.js';
import { header, type HeaderList, type OutgoingRequest, type SipRequest, type SipResponse } from '../sip/message.js';
import type { ServerTx, SipStack } from '../sip/stack.js';
import type { Collection } from '../store/store.js';
import { T1 } from '../sip/transaction.js';
import { parseDeltaSeconds, parseEventHeader } from './subscription.js';

/** What the owner asks for. Persisted with the dialog, so a restart can re-create it. */
export interface SubscribeSpec {
  /** The owner's key for this subscription: unique, stable across restarts, used as the store key. */
  id: string;
  /** The Request-URI of the initial SUBSCRIBE (and the To URI). */
  target: string;
  /** The From URI: whose identity the notifier applies its rules to. */
  from: string;
  /** The event package (RFC 6665 §8.2.1), e.g. "presence", "reg". */
  event: string;
  /** Accept header values in preference order. */
  accept: readonly string[];
  /** Requested duration in seconds; raised by a 423's Min-Expires. */
  expires: number;
  /** Offer RFC 4662 lists (`Supported: eventlist`) in case the target is a list at the remote RLS. */
  eventlist?: boolean;
  /**
   * An outbound proxy (RFC 3261 §8.1.2) every request of this subscription goes through: the first
   * Route of the initial SUBSCRIBE, and of in-dialog requests when the dialog has no route set.
   */
  proxy?: string;
  /** The peer (the target's domain): names the credentials for 401/407. */
  peer: string;
}

/** One subscription as persisted: the spec plus the RFC 3261 §12 dialog state. */
export interface SubscriberRecord {
  spec: SubscribeSpec;
  callId: string;
  localTag: string;
  /** Undefined until the 2xx or the first NOTIFY names it. */
  remoteTag: string | undefined;
  localCseq: number;
  /** The highest NOTIFY CSeq seen in this dialog; -1 before the first. */
  remoteCseq: number;
  routeSet: string[];
  remoteTarget: string;
  /** When the granted subscription ends (ms since the epoch). */
  expiresAt: number;
  /** True once a 2xx or NOTIFY created the dialog; false while (re)subscribing or backing off. */
  established: boolean;
}

/** RFC 6665 §8.2.3 Subscription-State, parsed. */
export interface SubscriptionStateHeader {
  state: 'active' | 'pending' | 'terminated';
  reason: string | undefined;
  expires: number | undefined;
  retryAfter: number | undefined;
}

/** What the owner hears. */
export type SubscriptionNotice =
  /** A NOTIFY with the subscription active or pending, and its body (undefined: none). */
  | { kind: 'notify'; state: 'active' | 'pending'; body: string | undefined; contentType: string | undefined }
  /**
   * The upstream was lost (481, timeout, resubscription under way) and the last state's validity ran
   * out before it came back: what the owner showed is no longer known to be true.
   */
  | { kind: 'stale' }
  /**
   * The subscription is over for good: refused (status set: 403, 404, 489, 603…) or terminated by
   * the notifier with a reason that means "do not retry" (rejected, noresource, giveup, invariant).
   * No notice follows.
   */
  | { kind: 'terminated'; reason: string; status: number | undefined };

export interface SubscriberOptions {
  /** Refresh when this fraction of the granted duration has passed (RFC 6665 §4.1.2.2: before expiry). */
  refreshFraction: number;
  /** Backoff bounds for new subscriptions after a failure (ms): min, doubling, capped at max. */
  minRetryMs: number;
  maxRetryMs: number;
  /** RFC 6665 §4.1.2.4 Timer N: no NOTIFY this long after the 2xx ⇒ the subscription failed. Default 64·T1. */
  timerNMs?: number;
  /**
   * Credentials for a 401/407 (RFC 3261 §22.2): the Authorization or Proxy-Authorization header to
   * retry with, or undefined when there is nothing to answer with. Called once per challenged request.
   */
  authorize?: (peer: string, challenge: SipResponse, method: string, uri: string) => readonly [string, string] | undefined;
  /** Extra headers on every SUBSCRIBE (e.g. User-Agent). */
  headers?: HeaderList;
  /**
   * A cluster's leases (src/cluster/upstream.ts): each subscription is claimed by the node that holds it
   * and released when it ends, so a survivor can take a dead node's dialog over (adopt) and refresh it
   * in-dialog. Undefined on a single node.
   */
  lease?: SubscriptionLease;
}

/** One owner per upstream subscription among a cluster's nodes, by subscription id. */
export interface SubscriptionLease {
  /** Takes the subscription (new, ours, or its owner dead); false: a live node owns it. */
  claim(id: string): Promise<boolean>;
  /** The subscription is over here (best effort). */
  release(id: string): void;
  /** The local fence: this node's lease is known to run (a clock comparison, no I/O). */
  mayAct(): boolean;
}

/** How soon a refresh held back by a closed fence is tried again. */
const FENCE_RETRY_MS = 1000;

export type NoticeHandler = (n: SubscriptionNotice) => void;

/** What the NOTIFY handling reads of a request: one received, or one another node of a cluster passed on. */
export type NotifyRequest = Pick<SipRequest, 'method' | 'callId' | 'from' | 'to' | 'cseq' | 'headers' | 'contact' | 'recordRoute' | 'body' | 'bodyBytes'>;
export interface NotifyTx {
  readonly request: NotifyRequest;
  respond: ServerTx['respond'];
}

export interface SubscriptionHandle {
  readonly id: string;
  /** Unsubscribes (Expires: 0 in the dialog, RFC 6665 §4.1.2.3); resolves when the answer came. */
  stop(): Promise<void>;
  /** The dialog state (for tests and stats). */
  readonly record: Readonly<SubscriberRecord>;
  /** True while a dialog with the notifier exists. */
  readonly established: boolean;
}

/**
 * The subscriber's state, as RFC 6665 §4.1.2 names it (Figure 2): `init` before the SUBSCRIBE,
 * `notify_wait` until the first NOTIFY (bounded by Timer N), then `pending` or `active` as the
 * NOTIFYs say, `terminated` when it is over — for good (`gone`), or until a new subscription
 * starts from `init` again after the backoff or Retry-After.
 */
type State = 'init' | 'notify_wait' | 'pending' | 'active' | 'terminated';

/** A SUBSCRIBE transaction the subscriber is in, besides its state. */
type Doing = 'subscribing' | 'refreshing' | 'unsubscribing' | undefined;

interface Sub {
  rec: SubscriberRecord;
  onNotice: NoticeHandler;
  state: State;
  doing: Doing;
  /** Terminated for good: nothing follows. */
  gone: boolean;
  /** Bumped for every new dialog; answers for an older one are ignored. */
  gen: number;
  /** Consecutive failures (backoff exponent). */
  attempt: number;
  timer: NodeJS.Timeout | undefined;
  staleTimer: NodeJS.Timeout | undefined;
  /** RFC 6665 §4.1.2.4 Timer N: no NOTIFY this long after the SUBSCRIBE ⇒ the subscription failed. */
  timerN: NodeJS.Timeout | undefined;
  /** A NOTIFY arrived in the current dialog. */
  notified: boolean;
  /** The owner holds a state from this subscription that a loss makes stale. */
  hasState: boolean;
  /** When the current dialog got its first NOTIFY (to tell a flapping notifier from a long-lived one). */
  since: number;
  stopping: Promise<void> | undefined;
}

/** RFC 6665 §4.1.3 reasons after which a new subscription is in order (with retry-after, if given). */
const RESUBSCRIBE_REASONS = new Set(['deactivated', 'probation', 'timeout']);
/** ... and after which the subscriber gives up. */
const FINAL_REASONS = new Set(['rejected', 'noresource', 'giveup', 'invariant']);

/** Read afresh (it changes across awaits; TypeScript's narrowing does not know). */
function doingOf(sub: Sub): Doing {
  return sub.doing;
}

/** A dialog with the notifier, and no SUBSCRIBE of ours in flight: a refresh may be scheduled. */
function settled(sub: Sub): boolean {
  return sub.doing === undefined && !sub.gone && (sub.state === 'notify_wait' || sub.state === 'pending' || sub.state === 'active');
}

function withLr(uri: string): string {
  const bare = uri.replace(/^<|>$/g, '');
  return /;lr\b/i.test(bare) ? `<${bare}>` : `<${bare};lr>`;
}

/** Parses a Subscription-State value (RFC 6665 §8.2.3); undefined when malformed. */
export function parseSubscriptionState(v: string | undefined): SubscriptionStateHeader | undefined {
  if (!v) return undefined;
  const parts = v.split(';').map((p) => p.trim());
  const state = parts[0]!.toLowerCase();
  if (state !== 'active' && state !== 'pending' && state !== 'terminated') return undefined;
  const out: SubscriptionStateHeader = { state, reason: undefined, expires: undefined, retryAfter: undefined };
  for (const p of parts.slice(1)) {
    const m = /^([A-Za-z-]+)\s*=\s*"?([^"]*)"?$/.exec(p);
    if (!m) continue;
    const name = m[1]!.toLowerCase();
    const value = m[2]!.trim();
    if (name === 'reason') out.reason = value.toLowerCase();
    else if (name === 'expires' || name === 'retry-after') {
      const n = parseDeltaSeconds(value);
      if (typeof n === 'number') {
        if (name === 'expires') out.expires = n;
        else out.retryAfter = n;
      }
    }
  }
  return out;
}

export class Subscriber {
  private readonly subs = new Map<string, Sub>();
  /** In-dialog requests find their subscription by Call-ID and our tag (RFC 3261 §12.2.2). */
  private readonly byDialog = new Map<string, Sub>();
  private stopped = false;
  /** SUBSCRIBE transactions sent (initial, refresh, unsubscribe, challenged retries). */
  subscribesSent = 0;

  constructor(
    private readonly stack: SipStack,
    private readonly store: Collection<SubscriberRecord>,
    private readonly opts: SubscriberOptions,
    private readonly log: Logger,
  ) {}

  /** Subscriptions held (in any state but terminated for good). */
  get size(): number {
    return this.subs.size;
  }

  /** Subscriptions with a dialog at the notifier right now. */
  get establishedCount(): number {
    let n = 0;
    for (const s of this.subs.values()) if (s.rec.established) n++;
    return n;
  }

  /** Each subscription's dialog record and RFC 6665 state, as its phase (the admin API and metrics). */
  dialogs(): { rec: SubscriberRecord; phase: string }[] {
    return [...this.subs.values()].map((s) => ({ rec: s.rec, phase: s.state }));
  }

  get(id: string): SubscriptionHandle | undefined {
    const s = this.subs.get(id);
    return s ? this.handle(s) : undefined;
  }

  /** Starts a new subscription (a new dialog). An existing one with the same id is replaced. */
  subscribe(spec: SubscribeSpec, onNotice: NoticeHandler): SubscriptionHandle {
    const old = this.subs.get(spec.id);
    if (old) void this.unsubscribe(old);
    const sub = this.newSub(this.freshRecord(spec), onNotice);
    void (this.opts.lease ? this.takeStoredOrStart(sub) : this.startNew(sub));
    return this.handle(sub);
  }

  /**
   * In a cluster, the stored dialog of this id may be a dead node's (its watchers taken over here
   * before its upstream lease was): claimed, it goes on in-dialog rather than as a new subscription.
   */
  private async takeStoredOrStart(sub: Sub): Promise<void> {
    const id = sub.rec.spec.id;
    const rec = await this.store.get(id).catch(() => undefined);
    if (this.subs.get(id) !== sub || sub.gone || sub.stopping) return;
    if (rec && this.live(rec) && (await this.opts.lease!.claim(id).catch(() => false)) && this.subs.get(id) === sub && !sub.gone && !sub.stopping) {
      sub.rec = rec;
      this.resumeLive(sub);
      return;
    }
    await this.startNew(sub);
  }

  /**
   * A cluster's takeover: the subscription `id` of a dead node is this node's now (its lease moved
   * here). Loads its dialog from the shared store and goes on with it as a restart does. False: no
   * record (it ended meanwhile), or it is held here already.
   */
  async adopt(id: string, bind: (spec: SubscribeSpec) => NoticeHandler | undefined): Promise<boolean> {
    if (this.subs.has(id)) return false;
    const rec = await this.store.get(id);
    if (!rec?.spec?.id || this.subs.has(id)) {
      if (!rec) this.opts.lease?.release(id);
      return false;
    }
    const handler = bind(rec.spec);
    if (!handler) {
      this.drop(id, rec);
      return true;
    }
    this.resume(rec, handler);
    return true;
  }

  /** A dialog still granted at the notifier (with a second to spare for the refresh to arrive). */
  private live(rec: SubscriberRecord, now = Date.now()): boolean {
    return rec.established && rec.expiresAt > now + 1000;
  }

  /** A stored dialog taken up again: refreshed in-dialog when live, else re-created as a new subscription. */
  private resume(rec: SubscriberRecord, handler: NoticeHandler, now = Date.now()): 'resumed' | 'recreated' {
    if (this.live(rec, now)) {
      this.resumeLive(this.newSub(rec, handler));
      return 'resumed';
    }
    void this.startNew(this.newSub(this.freshRecord(rec.spec), handler));
    return 'recreated';
  }

  /** The refresh also makes the notifier send the current state (RFC 6665 §4.1.2.2). */
  private resumeLive(sub: Sub): void {
    sub.state = 'active';
    sub.notified = true;
    this.index(sub);
    void this.refresh(sub);
  }

  /** A stored subscription its owner no longer wants: unsubscribed when live, else forgotten. */
  private drop(key: string, rec: SubscriberRecord, now = Date.now()): void {
    if (this.live(rec, now)) {
      const sub = this.newSub(rec, () => undefined);
      this.index(sub);
      sub.state = 'active';
      void this.unsubscribe(sub);
    } else {
      void this.store.delete(key);
      this.opts.lease?.release(rec.spec.id);
    }
  }

  /**
   * Reads the persisted subscriptions. For each, `bind` gives the handler (or undefined: the owner no
   * longer wants it, and it is unsubscribed). A live dialog is refreshed in-dialog at once (the refresh
   * also makes the notifier send the current state, §4.1.2.2); one that expired while Herald was down,
   * or was being re-established, is re-created as a new subscription.
   */
  async restore(bind: (spec: SubscribeSpec) => NoticeHandler | undefined, now = Date.now()): Promise<{ resumed: number; recreated: number; dropped: number }> {
    let resumed = 0;
    let recreated = 0;
    let dropped = 0;
    for (const [key, rec] of await this.store.all()) {
      if (!rec?.spec?.id || this.subs.has(rec.spec.id)) continue;
      const handler = bind(rec.spec);
      if (!handler) {
        dropped++;
        this.drop(key, rec, now);
        continue;
      }
      if (this.resume(rec, handler, now) === 'resumed') resumed++;
      else recreated++;
    }
    return { resumed, recreated, dropped };
  }

  /**
   * A cluster node that lost its lease: the subscriptions another node owns now are forgotten here
   * without a word (their new owner goes on in the same dialog; nothing is unsubscribed or deleted).
   */
  reconcile(stillOwned: (id: string) => boolean): void {
    for (const sub of [...this.subs.values()]) {
      if (stillOwned(sub.rec.spec.id)) continue;
      this.clearTimers(sub);
      sub.gone = true;
      this.subs.delete(sub.rec.spec.id);
      const k = this.dialogKey(sub.rec);
      if (this.byDialog.get(k) === sub) this.byDialog.delete(k);
    }
  }

  /** The stored record of a subscription (this node's or, in a cluster, another's). */
  stored(id: string): Promise<SubscriberRecord | undefined> {
    return this.store.get(id);
  }

  /** Shutdown: timers stop, dialogs stay in the store for the next start (no unsubscribe). */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const s of this.subs.values()) this.clearTimers(s);
    await this.store.flush();
  }

  // ---- NOTIFY (RFC 6665 §4.1.2.4, §4.1.3) ------------------------------------------------------

  /**
   * Handles a NOTIFY if it belongs to one of this subscriber's dialogs (or to a SUBSCRIBE of it still
   * waiting for its 2xx). Returns false, without answering, when it does not.
   */
  handleNotify(tx: NotifyTx): boolean {
    const rq = tx.request;
    if (rq.method !== 'NOTIFY') return false;
    const toTag = rq.to.params['tag'];
    if (!toTag) return false;
    const sub = this.byDialog.get(`${rq.callId}|${toTag}`);
    if (!sub) return false;
    const rec = sub.rec;
    const fromTag = rq.from.params['tag'] ?? undefined;
    const ev = parseEventHeader(header(rq, 'event'));
    if (!ev || ev.event !== rec.spec.event) {
      tx.respond({ status: 489, reason: 'Bad Event' });
      return true;
    }
    if (rec.remoteTag !== undefined && fromTag !== rec.remoteTag) {
      // A second dialog from a forked SUBSCRIBE (§4.1.2.4 allows keeping it; Herald keeps one): a 481
      // ends it at its notifier.
      tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
      return true;
    }
    // RFC 3261 §12.2.2: requests in a dialog arrive in CSeq order; an older one is refused.
    if (outOfOrder(rec, rq)) {
      tx.respond({ status: 500, reason: 'CSeq Out of Order' });
      return true;
    }
    const ss = parseSubscriptionState(header(rq, 'subscription-state'));
    if (!ss) {
      tx.respond({ status: 400, reason: 'Missing or Bad Subscription-State' });
      return true;
    }
    if (rec.remoteTag === undefined) {
      // §4.1.2.4: a NOTIFY before the 2xx creates the dialog. We are the UAS of this request
      // (RFC 3261 §12.1.1).
      const d = uasDialog(rq);
      rec.remoteTag = d.remoteTag;
      rec.routeSet = d.routeSet;
      rec.established = true;
    }
    acceptInDialog(rec, rq);
    tx.respond({ status: 200, reason: 'OK' });
    if (sub.doing === 'unsubscribing' || sub.gone) {
      if (ss.state === 'terminated') this.finish(sub);
      return true;
    }
    if (sub.timerN) clearTimeout(sub.timerN);
    sub.timerN = undefined;
    if (!sub.notified) sub.since = Date.now();
    sub.notified = true;
    if (ss.state === 'terminated') {
      this.terminatedByNotifier(sub, ss);
      return true;
    }
    sub.state = ss.state;
    if (ss.expires !== undefined) {
      // §4.1.2.3: the notifier may shorten the subscription; the refresh moves accordingly.
      const at = Date.now() + ss.expires * 1000;
      if (at < rec.expiresAt || rec.expiresAt === 0) {
        rec.expiresAt = at;
        if (settled(sub)) this.scheduleRefresh(sub);
      }
    }
    if (sub.staleTimer) clearTimeout(sub.staleTimer);
    sub.staleTimer = undefined;
    // A dialog that lived a while resets the backoff; one ended straight away keeps it growing.
    if (Date.now() - sub.since >= this.opts.minRetryMs) sub.attempt = 0;
    void this.persist(sub);
    sub.hasState = true;
    const ct = header(rq, 'content-type');
    sub.onNotice({ kind: 'notify', state: ss.state, body: rq.bodyBytes > 0 ? rq.body : undefined, contentType: ct });
    return true;
  }

  private terminatedByNotifier(sub: Sub, ss: SubscriptionStateHeader): void {
    const reason = ss.reason;
    this.dropDialog(sub);
    if (reason !== undefined && FINAL_REASONS.has(reason)) {
      this.end(sub, { kind: 'terminated', reason, status: undefined });
      return;
    }
    // deactivated/timeout: re-subscribe at once; probation: after retry-after (§4.1.3). No reason or an
    // unknown one: §4.1.3 says re-subscribe too.
    const immediate = reason === 'deactivated' || reason === 'timeout';
    const delay = ss.retryAfter !== undefined ? ss.retryAfter * 1000 : immediate && sub.attempt === 0 ? 0 : this.backoff(sub);
    if (reason === undefined || !RESUBSCRIBE_REASONS.has(reason)) this.log.info({ id: sub.rec.spec.id, reason }, 'upstream subscription terminated without a known reason; re-subscribing');
    sub.attempt++;
    this.wait(sub, delay);
  }

  // ---- requests --------------------------------------------------------------------------------

  private newSub(rec: SubscriberRecord, onNotice: NoticeHandler): Sub {
    const sub: Sub = { rec, onNotice, state: 'init', doing: undefined, gone: false, gen: 0, attempt: 0, timer: undefined, staleTimer: undefined, timerN: undefined, notified: false, hasState: false, since: 0, stopping: undefined };
    this.subs.set(rec.spec.id, sub);
    return sub;
  }

  private freshRecord(spec: SubscribeSpec): SubscriberRecord {
    return { spec: { ...spec }, callId: newCallId(), localTag: newTag(), remoteTag: undefined, localCseq: 0, remoteCseq: -1, routeSet: [], remoteTarget: spec.target, expiresAt: 0, established: false };
  }

  private handle(sub: Sub): SubscriptionHandle {
    return {
      id: sub.rec.spec.id,
      stop: () => this.unsubscribe(sub),
      get record() {
        return sub.rec;
      },
      get established() {
        return sub.rec.established;
      },
    };
  }

  private dialogKey(rec: SubscriberRecord): string {
    return `${rec.callId}|${rec.localTag}`;
  }

  private index(sub: Sub): void {
    this.byDialog.set(this.dialogKey(sub.rec), sub);
  }

  private clearTimers(sub: Sub): void {
    for (const t of [sub.timer, sub.staleTimer, sub.timerN]) if (t) clearTimeout(t);
    sub.timer = sub.staleTimer = sub.timerN = undefined;
  }

  /** The request for the current dialog state (initial when there is no remote tag yet). */
  private build(sub: Sub, expires: number, auth: readonly [string, string] | undefined): OutgoingRequest {
    const rec = sub.rec;
    const spec = rec.spec;
    const inDialog = rec.remoteTag !== undefined;
    const target = inDialog ? inDialogTarget(rec) : { uri: spec.target, route: [] };
    const uri = target.uri;
    const route = target.route.length === 0 && spec.proxy ? [withLr(spec.proxy)] : target.route;
    const headers: [string, string][] = [
      ['Event', spec.event],
      ['Accept', spec.accept.join(', ')],
      ['Expires', String(expires)],
      ...(spec.eventlist ? ([['Supported', 'eventlist']] as [string, string][]) : []),
      ...((this.opts.headers ?? []) as [string, string][]),
    ];
    if (auth) headers.push([auth[0], auth[1]]);
    return {
      method: 'SUBSCRIBE',
      uri,
      callId: rec.callId,
      from: { display: undefined, uri: spec.from, params: { tag: rec.localTag } },
      to: { display: undefined, uri: spec.target, params: inDialog ? { tag: rec.remoteTag! } : {} },
      cseq: rec.localCseq,
      ...(route.length > 0 ? { route } : {}),
      headers,
    };
  }

  /**
   * One SUBSCRIBE, answered: retried once with credentials after a 401/407 (§22.2), and with the
   * Min-Expires after a 423 (RFC 6665 §4.1.2.1). Each try takes a new CSeq, durable first when a dialog
   * exists (a crash must not make Herald reuse it).
   */
  private async transact(sub: Sub, expires: number): Promise<SipResponse | undefined> {
    let auth: readonly [string, string] | undefined;
    let challenged = false;
    let e = expires;
    await this.whenListening();
    for (let i = 0; i < 4; i++) {
      sub.rec.localCseq++;
      if (sub.rec.established) await this.persist(sub);
      const req = this.build(sub, e, auth);
      this.subscribesSent++;
      let res: SipResponse | undefined;
      try {
        // RFC 3263 targets tried in order by the stack; the Contact names the transport of each try.
        res = await this.stack.send(req, { selfContact: true });
      } catch (err) {
        this.log.warn({ err: (err as Error).message, id: sub.rec.spec.id }, 'SUBSCRIBE could not be sent');
        return undefined;
      }
      if (!res) return undefined;
      if ((res.status === 401 || res.status === 407) && !challenged) {
        challenged = true;
        auth = this.opts.authorize?.(sub.rec.spec.peer, res, 'SUBSCRIBE', req.uri);
        if (auth) continue;
      }
      if (res.status === 423 && e !== 0) {
        const min = parseDeltaSeconds(header(res, 'min-expires'));
        if (typeof min === 'number' && min > e) {
          e = min;
          sub.rec.spec.expires = min; // refreshes ask for at least as much
          continue;
        }
      }
      return res;
    }
    return undefined;
  }

  /**
   * Subscriptions restored (or watched) during start-up may be due before the stack has bound its
   * sockets; a request sent then would only time out. Wait for it, boundedly (10 s).
   */
  private async whenListening(): Promise<void> {
    for (let i = 0; i < 200 && this.stack.listening.length === 0 && !this.stopped; i++) {
      await new Promise((r) => setTimeout(r, 50).unref?.());
    }
  }

  /** A new subscription: a new dialog (Call-ID, tag, CSeq), the initial SUBSCRIBE. */
  private async startNew(sub: Sub): Promise<void> {
    if (this.stopped || sub.doing === 'unsubscribing' || sub.gone) return;
    const old = this.dialogKey(sub.rec);
    if (this.byDialog.get(old) === sub) this.byDialog.delete(old);
    sub.rec = this.freshRecord(sub.rec.spec);
    sub.gen++;
    sub.notified = false;
    sub.state = 'notify_wait';
    sub.doing = 'subscribing';
    this.index(sub); // a NOTIFY may come before the 2xx (§4.1.2.4)
    const gen = sub.gen;
    // In a cluster the subscription is this node's from its first SUBSCRIBE (a node that lost the claim
    // to a live owner of the same id subscribes as before: its watchers need the state).
    if (this.opts.lease) await this.opts.lease.claim(sub.rec.spec.id).catch(() => false);
    await this.persist(sub);
    const res = await this.transact(sub, sub.rec.spec.expires);
    if (gen !== sub.gen || sub.gone) return;
    if (res && res.status >= 200 && res.status < 300) {
      this.onEstablished(sub, res);
      if (doingOf(sub) === 'unsubscribing' || sub.stopping) {
        // Stopped while the SUBSCRIBE was in flight: end the dialog it created.
        await this.sendUnsubscribe(sub);
        return;
      }
      if (!sub.notified) {
        sub.timerN = setTimeout(() => {
          sub.timerN = undefined;
          if (gen !== sub.gen || sub.notified || sub.gone) return;
          this.log.info({ id: sub.rec.spec.id }, 'Timer N: no NOTIFY after the 2xx; subscription considered failed');
          this.failed(sub, undefined);
        }, this.opts.timerNMs ?? 64 * T1);
        sub.timerN.unref?.();
      }
      return;
    }
    if (doingOf(sub) === 'unsubscribing') {
      this.finish(sub);
      return;
    }
    this.failed(sub, res?.status);
  }

  /** A 2xx to a SUBSCRIBE: the dialog (if a NOTIFY did not already create it) and the granted time. */
  private onEstablished(sub: Sub, res: SipResponse): void {
    const rec = sub.rec;
    if (rec.remoteTag === undefined) {
      // As UAC of the SUBSCRIBE (RFC 3261 §12.1.2).
      const d = uacDialog(res);
      rec.remoteTag = d.remoteTag;
      rec.routeSet = d.routeSet;
      if (d.remoteTarget !== undefined) rec.remoteTarget = d.remoteTarget;
    }
    rec.established = true;
    // §4.1.2.1: the 2xx's Expires is the granted duration (it must be there; else what we asked for).
    const granted = parseDeltaSeconds(header(res, 'expires'));
    const secs = typeof granted === 'number' ? granted : rec.spec.expires;
    const at = Date.now() + secs * 1000;
    // A NOTIFY that came first may have said less already.
    rec.expiresAt = sub.notified && rec.expiresAt > 0 ? Math.min(rec.expiresAt, at) : at;
    if (sub.doing === 'subscribing') sub.doing = undefined;
    void this.persist(sub);
    if (settled(sub)) this.scheduleRefresh(sub);
  }

  private scheduleRefresh(sub: Sub): void {
    if (sub.timer) clearTimeout(sub.timer);
    if (this.stopped) return;
    const left = Math.max(0, sub.rec.expiresAt - Date.now());
    const delay = Math.floor(left * this.opts.refreshFraction);
    this.log.debug({ id: sub.rec.spec.id, refreshInMs: delay, expiresInMs: left }, 'upstream subscription refresh scheduled');
    sub.timer = setTimeout(() => {
      sub.timer = undefined;
      void this.refresh(sub);
    }, delay);
    sub.timer.unref?.();
  }

  /** An in-dialog refresh (RFC 6665 §4.1.2.2). */
  private async refresh(sub: Sub): Promise<void> {
    if (this.stopped || !settled(sub)) return;
    // Cluster: a node whose lease is not known to run (it may have been paused past it, and a survivor
    // may own the dialog now) sends nothing in the dialog: a resumed old owner must not reuse a CSeq the
    // new one sent. The refresh waits until the lease is confirmed; a dialog lost meanwhile is forgotten
    // by reconcile() first (src/cluster/upstream.ts), as the notifier's fence does for NOTIFYs.
    if (this.opts.lease && !this.opts.lease.mayAct()) {
      sub.timer = setTimeout(() => {
        sub.timer = undefined;
        void this.refresh(sub);
      }, FENCE_RETRY_MS);
      sub.timer.unref?.();
      return;
    }
    sub.doing = 'refreshing';
    const gen = sub.gen;
    const res = await this.transact(sub, sub.rec.spec.expires);
    if (gen !== sub.gen) return;
    if (doingOf(sub) === 'unsubscribing' || sub.gone) return;
    sub.doing = undefined;
    if (res && res.status >= 200 && res.status < 300) {
      const granted = parseDeltaSeconds(header(res, 'expires'));
      const secs = typeof granted === 'number' ? granted : sub.rec.spec.expires;
      if (secs === 0) {
        // The notifier ends it with the refresh; its terminated NOTIFY says why, or the backoff starts.
        this.failed(sub, 481);
        return;
      }
      sub.rec.expiresAt = Date.now() + secs * 1000;
      void this.persist(sub);
      this.scheduleRefresh(sub);
      return;
    }
    const status = res?.status;
    // §4.1.2.2: a refresh failing with a code not listed as fatal leaves the subscription valid until it
    // expires: try the refresh again later while there is time.
    const fatal = refreshAnswerEnds(status);
    const left = sub.rec.expiresAt - Date.now();
    if (!fatal && left > 2 * this.opts.minRetryMs) {
      sub.timer = setTimeout(() => {
        sub.timer = undefined;
        void this.refresh(sub);
      }, this.opts.minRetryMs);
      sub.timer.unref?.();
      return;
    }
    this.failed(sub, status);
  }

  /** An error answer or a timeout: new subscription after a backoff, or the end. */
  private failed(sub: Sub, status: number | undefined): void {
    const c = classifyFailure(status);
    this.dropDialog(sub);
    if (c.action === 'final') {
      this.log.info({ id: sub.rec.spec.id, status, reason: c.reason }, 'upstream subscription refused');
      this.end(sub, { kind: 'terminated', reason: c.reason, status });
      return;
    }
    // The first retry after a lost dialog (481) goes at once: the notifier most likely restarted.
    const delay = sub.attempt === 0 && status === 481 ? 0 : this.backoff(sub);
    sub.attempt++;
    this.log.info({ id: sub.rec.spec.id, status: status ?? 'timeout', retryInMs: delay }, 'upstream subscription lost; re-subscribing');
    this.wait(sub, delay);
  }

  private backoff(sub: Sub): number {
    const base = Math.min(this.opts.maxRetryMs, this.opts.minRetryMs * 2 ** Math.min(sub.attempt, 20));
    // Up to 10% jitter so that many subscriptions lost together do not come back in one burst.
    return Math.round(base * (1 + Math.random() * 0.1));
  }

  /** Back off, then subscribe anew. The owner's state goes stale when the last granted time runs out. */
  private wait(sub: Sub, delay: number): void {
    if (this.stopped) return;
    sub.state = 'terminated';
    sub.doing = undefined;
    void this.persist(sub);
    if (sub.timer) clearTimeout(sub.timer);
    this.log.debug({ id: sub.rec.spec.id, subscribeInMs: delay, attempt: sub.attempt }, 'new upstream subscription scheduled');
    sub.timer = setTimeout(() => {
      sub.timer = undefined;
      void this.startNew(sub);
    }, delay);
    sub.timer.unref?.();
    if (sub.hasState && !sub.staleTimer) {
      const left = Math.max(0, sub.rec.expiresAt - Date.now());
      sub.staleTimer = setTimeout(() => {
        sub.staleTimer = undefined;
        if (sub.gone || sub.rec.established) return;
        sub.hasState = false;
        sub.onNotice({ kind: 'stale' });
      }, Math.min(left, 2 ** 31 - 1));
      sub.staleTimer.unref?.();
    }
  }

  /** Forgets the current dialog (it is over at the notifier, or never was). */
  private dropDialog(sub: Sub): void {
    const k = this.dialogKey(sub.rec);
    if (this.byDialog.get(k) === sub) this.byDialog.delete(k);
    if (sub.timerN) clearTimeout(sub.timerN);
    sub.timerN = undefined;
    sub.rec.established = false;
    sub.rec.remoteTag = undefined;
    sub.gen++;
  }

  /** The subscription is over for good; the owner hears it once. */
  private end(sub: Sub, notice: SubscriptionNotice): void {
    this.finish(sub);
    sub.onNotice(notice);
  }

  private finish(sub: Sub): void {
    this.clearTimers(sub);
    sub.state = 'terminated';
    sub.doing = undefined;
    sub.gone = true;
    const k = this.dialogKey(sub.rec);
    if (this.byDialog.get(k) === sub) this.byDialog.delete(k);
    if (this.subs.get(sub.rec.spec.id) === sub) {
      this.subs.delete(sub.rec.spec.id);
      void this.store.delete(sub.rec.spec.id).catch(() => undefined);
      this.opts.lease?.release(sub.rec.spec.id);
    }
  }

  /** RFC 6665 §4.1.2.3: unsubscribe with Expires: 0 in the dialog. */
  private unsubscribe(sub: Sub): Promise<void> {
    if (sub.stopping) return sub.stopping;
    const inFlight = sub.doing === 'subscribing' && !sub.rec.established;
    this.clearTimers(sub);
    if (sub.gone) return Promise.resolve();
    if (this.subs.get(sub.rec.spec.id) === sub) this.subs.delete(sub.rec.spec.id);
    void this.store.delete(sub.rec.spec.id).catch(() => undefined);
    this.opts.lease?.release(sub.rec.spec.id);
    if (inFlight) {
      // The initial SUBSCRIBE's answer decides: a 2xx is followed by the unsubscribe (startNew).
      sub.doing = 'unsubscribing';
      sub.stopping = Promise.resolve();
      return sub.stopping;
    }
    if (!sub.rec.established || sub.state === 'terminated' || sub.state === 'init') {
      this.finish(sub);
      return Promise.resolve();
    }
    sub.stopping = this.sendUnsubscribe(sub);
    return sub.stopping;
  }

  private async sendUnsubscribe(sub: Sub): Promise<void> {
    sub.doing = 'unsubscribing';
    this.clearTimers(sub);
    const res = await this.transact(sub, 0);
    if (!res || res.status >= 300) {
      this.finish(sub);
      return;
    }
    // Keep answering the final NOTIFY (terminated) with 200 rather than 481, for a bounded while.
    const t = setTimeout(() => this.finish(sub), 64 * T1);
    t.unref?.();
    sub.timer = t;
  }

  private async persist(sub: Sub): Promise<void> {
    if (sub.gone || sub.doing === 'unsubscribing' || this.subs.get(sub.rec.spec.id) !== sub) return;
    try {
      await this.store.put(sub.rec.spec.id, { ...sub.rec, spec: { ...sub.rec.spec }, routeSet: [...sub.rec.routeSet] });
    } catch {
      // Restart safety is lost for this change only; the next write carries the whole record again.
    }
  }
}
