// RFC 3261 §12 dialog rules, once, for both sides of a subscription: the notifier (UAS of the
// SUBSCRIBE) and the subscriber (UAC of the SUBSCRIBE, UAS of each NOTIFY). A dialog is built from
// the request that creates it (§12.1.1) or from the 2xx that answers it (§12.1.2); in-dialog
// requests go to the remote target through the route set (§12.2.1.1, strict routers included),
// arrive in CSeq order (§12.2.2), and refresh the remote target. Which answers end a subscription,
// and how long one may last (Min-Expires), are here too: RFC 6665 writes them per dialog usage.
// The records that hold these fields (and persist them) are the callers'; this module only reads
// and writes the fields.
import { randomHex } from '../util/random.js';
import { formatParams } from './codec.js';
import type { NameAddr, SipRequest, SipResponse } from './message.js';

/** The RFC 3261 §12 dialog state a subscription's record carries (besides Call-ID and tags). */
export interface DialogState {
  /** Route header values in the order they are sent (RFC 3261 §12.1.1/§12.1.2). */
  routeSet: string[];
  remoteTarget: string;
  /** The highest CSeq of a request received in the dialog; -1 before the first. */
  remoteCseq: number;
}

/** A local tag (RFC 3261 §19.3: at least 32 bits of randomness). */
export function newTag(): string {
  return randomHex(8);
}

/** A Call-ID for a dialog Herald creates as UAC (RFC 3261 §8.1.1.4). */
export function newCallId(): string {
  return `${randomHex(12)}@herald`;
}

/** A Record-Route entry as a Route header value. */
export function formatRoute(na: NameAddr): string {
  return `<${na.uri}>${formatParams(na.params)}`;
}

/** The dialog as its UAS builds it from the creating request (RFC 3261 §12.1.1): the route set is
 *  the Record-Route list in order, the remote target the Contact, the remote tag From's. */
export function uasDialog(rq: Pick<SipRequest, 'recordRoute' | 'contact' | 'cseq' | 'from'>): { routeSet: string[]; remoteTarget: string | undefined; remoteCseq: number; remoteTag: string | undefined } {
  return {
    routeSet: rq.recordRoute.map(formatRoute),
    remoteTarget: rq.contact[0]?.uri,
    remoteCseq: rq.cseq.seq,
    remoteTag: rq.from.params['tag'] ?? undefined,
  };
}

/** The dialog as its UAC builds it from a 2xx (RFC 3261 §12.1.2): the route set is the
 *  Record-Route list reversed, the remote target the Contact (when there is one), the remote tag To's. */
export function uacDialog(res: SipResponse): { routeSet: string[]; remoteTarget: string | undefined; remoteTag: string | undefined } {
  return {
    routeSet: res.recordRoute.map(formatRoute).reverse(),
    remoteTarget: res.contact[0]?.uri,
    remoteTag: res.to.params['tag'] ?? undefined,
  };
}

/**
 * Where an in-dialog request goes (RFC 3261 §12.2.1.1): to the remote target through the route
 * set; when the first route is a strict router (no `lr`), it becomes the Request-URI and the remote
 * target the last Route.
 */
export function inDialogTarget(d: Pick<DialogState, 'routeSet' | 'remoteTarget'>): { uri: string; route: string[] } {
  const first = d.routeSet[0];
  if (first === undefined || /;lr\b/i.test(first)) return { uri: d.remoteTarget, route: [...d.routeSet] };
  return { uri: first.replace(/^<|>.*$/g, ''), route: [...d.routeSet.slice(1), `<${d.remoteTarget}>`] };
}

/** RFC 3261 §12.2.2: an in-dialog request whose CSeq is not above the last one is out of order
 *  (answer 500). */
export function outOfOrder(d: Pick<DialogState, 'remoteCseq'>, rq: Pick<SipRequest, 'cseq'>): boolean {
  return rq.cseq.seq <= d.remoteCseq;
}

/** An in-dialog request accepted: its CSeq is the new remote one, and a Contact refreshes the
 *  remote target (SUBSCRIBE and NOTIFY are target refresh requests, RFC 6665 §4.1.2.1, §4.1.2.4). */
export function acceptInDialog(d: DialogState, rq: Pick<SipRequest, 'cseq' | 'contact'>): void {
  d.remoteCseq = rq.cseq.seq;
  if (rq.contact[0]) d.remoteTarget = rq.contact[0].uri;
}

// ---------------------------------------------------------------------------------------------
// Answers that end a subscription (RFC 6665; RFC 5057 for which failures end a dialog usage)
// ---------------------------------------------------------------------------------------------

/** RFC 6665 §4.2.2: NOTIFY answers (undefined: none came) after which the subscription is gone. */
export function notifyAnswerEnds(status: number | undefined): boolean {
  return status === undefined || status === 481 || status === 408 || status === 404 || status === 410 || status === 489 || status === 403 || status >= 600;
}

/**
 * RFC 6665 §4.1.2.2: a refresh that fails leaves the subscription valid until it expires, except
 * for answers that end the usage (RFC 5057 §5.1) or refuse it for good.
 */
export function refreshAnswerEnds(status: number | undefined): boolean {
  return status === undefined || status === 481 || status === 408 || status === 404 || status === 405 || status === 410 || status === 416 ||
    (status >= 480 && status <= 485) || status === 489 || status === 501 || status === 604 || status === 403 || status === 603;
}

/**
 * After a SUBSCRIBE failed (or its dialog was lost): 'retry' opens a new subscription after a
 * backoff, 'final' ends it with the reason for the owner (RFC 6665 §4.1.2.1, §4.1.2.2; RFC 5057
 * for 408/481).
 */
export function classifyFailure(status: number | undefined): { action: 'retry' } | { action: 'final'; reason: string } {
  if (status === undefined || status === 408 || status === 481 || status === 480 || status === 486 || status === 482 || status === 483) return { action: 'retry' };
  if (status >= 500 && status < 600 && status !== 501) return { action: 'retry' };
  if (status === 404 || status === 604 || status === 410 || status === 489 || status === 405 || status === 501) return { action: 'final', reason: 'noresource' };
  // 403, 603, an unanswerable 401/407 and every other refusal: the notifier does not want us.
  return { action: 'final', reason: 'rejected' };
}

// ---------------------------------------------------------------------------------------------
// Durations
// ---------------------------------------------------------------------------------------------

export interface ExpiresBounds { minExpires: number; defaultExpires: number; maxExpires: number }

/**
 * The duration granted for a requested one (undefined: the default), or the Min-Expires to answer
 * 423 with (RFC 6665 §4.2.1.1, RFC 3903 §6 step 3): too brief is refused, too long shortened;
 * 0 (an unsubscribe, a removal) is always granted.
 */
export function grantExpires(requested: number | undefined, b: ExpiresBounds): { ok: true; expires: number } | { ok: false; minExpires: number } {
  const e = requested ?? b.defaultExpires;
  if (e !== 0 && e < b.minExpires) return { ok: false, minExpires: b.minExpires };
  return { ok: true, expires: Math.min(e, b.maxExpires) };
}
