// Error mapping, RFC 7247 §7 (suggested mappings; §7.1 XMPP → SIP, §7.2 SIP → XMPP), and what a SIP
// failure means for an XMPP presence authorization (RFC 8048 §5.2.2). Pure.

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

export interface StanzaError {
  /** RFC 6120 §8.3.3 defined condition. */
  condition: string;
  type: StanzaErrorType;
  text?: string;
}

/**
 * RFC 7247 §7.1. Where the RFC gives a pair, the first applies to a full JID and the second to a
 * bare JID (4xx: this endpoint; 6xx: the user everywhere). service-unavailable is never 503: 503
 * says the whole SIP server is down (RFC 3261 §21.5.4); 403/405 keep the failure on this request.
 */
const XMPP_TO_SIP: Readonly<Record<string, readonly [full: number, bare: number]>> = {
  'bad-request': [400, 400],
  conflict: [400, 400],
  'feature-not-implemented': [405, 501],
  forbidden: [403, 603],
  gone: [410, 410],
  'internal-server-error': [500, 500],
  'item-not-found': [404, 604],
  'jid-malformed': [400, 400],
  'not-acceptable': [406, 606],
  'not-allowed': [403, 403],
  'not-authorized': [401, 401],
  'policy-violation': [403, 403],
  'recipient-unavailable': [480, 600],
  redirect: [302, 302],
  'registration-required': [407, 407],
  'remote-server-not-found': [404, 404],
  'remote-server-timeout': [408, 408],
  'resource-constraint': [500, 500],
  'service-unavailable': [403, 405],
  'subscription-required': [400, 400],
  'undefined-condition': [400, 400],
  'unexpected-request': [491, 491],
};

const REASON_PHRASES: Readonly<Record<number, string>> = {
  302: 'Moved Temporarily', 400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found',
  405: 'Method Not Allowed', 406: 'Not Acceptable', 407: 'Proxy Authentication Required', 408: 'Request Timeout',
  410: 'Gone', 480: 'Temporarily Unavailable', 491: 'Request Pending', 500: 'Server Internal Error',
  501: 'Not Implemented', 600: 'Busy Everywhere', 603: 'Decline', 604: 'Does Not Exist Anywhere', 606: 'Not Acceptable',
};

/** RFC 7247 §7.1: an XMPP stanza error → SIP status and reason phrase (the <text/>, if any). */
export function xmppErrorToSip(e: StanzaError, addressedTo: 'full' | 'bare' = 'bare'): { status: number; reason: string } {
  const pair = XMPP_TO_SIP[e.condition] ?? [400, 400];
  const status = addressedTo === 'full' ? pair[0] : pair[1];
  return { status, reason: e.text ?? REASON_PHRASES[status] ?? 'Error' };
}

/** RFC 7247 §7.2: SIP status → XMPP condition (codes not listed fall back by class). */
const SIP_TO_XMPP: Readonly<Record<number, string>> = {
  301: 'gone', 380: 'not-acceptable', 400: 'bad-request', 401: 'not-authorized', 402: 'bad-request', 403: 'forbidden',
  404: 'item-not-found', 405: 'feature-not-implemented', 406: 'not-acceptable', 407: 'registration-required',
  408: 'remote-server-timeout', 410: 'gone', 413: 'policy-violation', 414: 'policy-violation', 415: 'not-acceptable',
  416: 'not-acceptable', 420: 'feature-not-implemented', 421: 'not-acceptable', 423: 'resource-constraint',
  430: 'recipient-unavailable', 439: 'feature-not-implemented', 440: 'policy-violation', 480: 'recipient-unavailable',
  481: 'item-not-found', 482: 'not-acceptable', 483: 'not-acceptable', 484: 'item-not-found', 485: 'item-not-found',
  486: 'recipient-unavailable', 487: 'recipient-unavailable', 488: 'not-acceptable', 489: 'policy-violation',
  491: 'unexpected-request', 493: 'bad-request', 500: 'internal-server-error', 501: 'feature-not-implemented',
  502: 'remote-server-not-found', 503: 'internal-server-error', 504: 'remote-server-timeout', 505: 'not-acceptable',
  513: 'policy-violation', 600: 'recipient-unavailable', 603: 'recipient-unavailable', 604: 'item-not-found',
  606: 'not-acceptable',
};

/** RFC 6120 §8.3.3: the error type that goes with each condition. */
const CONDITION_TYPE: Readonly<Record<string, StanzaErrorType>> = {
  'bad-request': 'modify', conflict: 'cancel', 'feature-not-implemented': 'cancel', forbidden: 'auth', gone: 'cancel',
  'internal-server-error': 'cancel', 'item-not-found': 'cancel', 'jid-malformed': 'modify', 'not-acceptable': 'modify',
  'not-allowed': 'cancel', 'not-authorized': 'auth', 'policy-violation': 'modify', 'recipient-unavailable': 'wait',
  redirect: 'modify', 'registration-required': 'auth', 'remote-server-not-found': 'cancel', 'remote-server-timeout': 'wait',
  'resource-constraint': 'wait', 'service-unavailable': 'cancel', 'subscription-required': 'auth',
  'undefined-condition': 'cancel', 'unexpected-request': 'wait',
};

/** RFC 7247 §7.2: SIP status (and reason phrase → <text/>) → XMPP stanza error. */
export function sipStatusToXmpp(status: number, reason?: string): StanzaError {
  const condition =
    SIP_TO_XMPP[status] ??
    (status >= 300 && status < 400 ? 'redirect' : status < 500 ? 'bad-request' : status < 600 ? 'internal-server-error' : 'recipient-unavailable');
  const e: StanzaError = { condition, type: CONDITION_TYPE[condition] ?? 'cancel' };
  if (reason !== undefined && reason !== '') e.text = reason;
  return e;
}

/**
 * RFC 8048 §5.2.2: what a failed SIP subscription (or refresh) means for the XMPP authorization that
 * caused it. 403, 489 and 603 cancel it for good; 423 (interval too brief) and 481 (dialog gone) are
 * transient, to be retried. Also accepts RFC 6665 §4.1.3 termination reasons, as the hub reports
 * them: rejected/noresource/invariant are final, the others transient.
 */
export function authorizationFate(statusOrReason: number | string | undefined): 'cancelled' | 'transient' {
  if (typeof statusOrReason === 'number') {
    if (statusOrReason === 403 || statusOrReason === 489 || statusOrReason === 603) return 'cancelled';
    if (statusOrReason === 423 || statusOrReason === 481) return 'transient';
    // Other final failures: 404/604/410 (no such user) end it too; 5xx/408/480 are passing trouble.
    if ([404, 410, 604, 606].includes(statusOrReason)) return 'cancelled';
    return 'transient';
  }
  if (statusOrReason !== undefined && /^\d{3}$/.test(statusOrReason)) return authorizationFate(Number(statusOrReason));
  return statusOrReason === 'rejected' || statusOrReason === 'noresource' || statusOrReason === 'invariant' ? 'cancelled' : 'transient';
}

/** An XMPP stanza error as a termination reason for the hub (RFC 6665 §4.1.3), by RFC 7247 §7.1 status. */
export function xmppErrorToReason(e: StanzaError): { reason: string; fate: 'cancelled' | 'transient' } {
  const { status } = xmppErrorToSip(e, 'bare');
  const fate = e.type === 'wait' ? 'transient' : authorizationFate(status) === 'cancelled' || status === 401 || status === 405 || status === 501 || status === 400 ? 'cancelled' : 'transient';
  const reason = status === 404 || status === 604 || status === 410 ? 'noresource' : fate === 'cancelled' ? 'rejected' : 'probation';
  return { reason, fate };
}
