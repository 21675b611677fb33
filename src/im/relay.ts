// SIP MESSAGE (RFC 3428) for the users of Herald's domains: the sender authenticated like any other
// request (or believed from a trusted peer), bounded (body size, rate per sender), authorized by the
// recipient's IM rules, then relayed like a stateful proxy would for this one method (own Via on
// top of the received ones, Max-Forwards less one, the final answer relayed back) to the operator's
// proxy/registrar (`[im] route`) or, with none, to the contacts the registrar reported in its reg
// event (RFC 3680). Nothing is stored: no contact is 480 (RFC 3428 §7 leaves offline storage to
// others). Messages to addresses of a bridge (the XMPP gateway) leave through it.
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import { aorOf } from '../formats/uri.js';
import { header, mergeHeaders, type HeaderList, type OutgoingRequest, type SipRequest } from '../sip/message.js';
import type { ServerTx } from '../sip/stack.js';
import { isOwnBranch } from '../sip/transaction.js';
import { forward, type Forwarded, type Send, type Target } from './forward.js';
import { SenderRate } from './rate.js';
import type { ImAuthorizer, ImBridge, ImHandling, ImOutcome, ImSender } from './types.js';

export interface ImConfig {
  /** The next hop for every delivery (the operator's proxy/registrar); '' for the reg event's contacts. */
  route: string;
  maxBodyBytes: number;
  rate: number;
  burst: number;
  /** Seconds to wait for a final answer before answering 408. */
  timeout: number;
  /** Seconds to wait for the registrar's first reg NOTIFY of a user not watched yet. */
  lookupWait: number;
  /** Seconds a reg watch opened for delivery is kept after the last message. */
  linger: number;
}

/** Where the registered contacts of a local AOR come from (the reg event source). */
export interface ContactSource {
  watch(aor: string): () => void;
  contacts(aor: string, waitMs?: number): Promise<readonly string[] | undefined>;
}

export interface RelayDeps {
  config: ImConfig;
  domains: readonly string[];
  send: Send;
  authorizer: ImAuthorizer;
  /** The sender's identity, or undefined when the request was answered (401). */
  identify: (tx: ServerTx) => Promise<ImSender | undefined>;
  contacts?: ContactSource;
  /** Headers on every answer (Allow, ...). */
  common: () => HeaderList;
  log: Logger;
}

export interface ImCounters {
  received: number;
  delivered: number;
  blocked: number;
  politeBlocked: number;
  failed: number;
  rateLimited: number;
  bridgedOut: number;
  bridgedIn: number;
}

/** A message from a bridge to a local user (XMPP → SIP): Herald is the UAC here. */
export interface GatewayMessage {
  /** Who the rules see (the RFC 7247 mapping of the Jabber user, e.g. sip:juliet@xmpp.test). */
  sender: string;
  /** The From Herald sends (the gateway address replies go back to). */
  from: string;
  /** The local recipient's AOR. */
  recipient: string;
  callId: string;
  cseq: number;
  body: string;
  contentType: string;
  headers: HeaderList;
}

/** Per RFC 3261 §16.6 these do not travel end to end: a proxy rewrites or consumes them. */
const HOP_BY_HOP = new Set([
  'via', 'max-forwards', 'route', 'record-route', 'content-length', 'content-type', 'call-id', 'cseq', 'from', 'to',
  'authorization', 'proxy-authorization', 'proxy-require', 'p-asserted-identity', 'contact',
]);

const headerName = (n: string): string => n.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase());

export class MessageRelay {
  readonly counters: ImCounters = { received: 0, delivered: 0, blocked: 0, politeBlocked: 0, failed: 0, rateLimited: 0, bridgedOut: 0, bridgedIn: 0 };
  private readonly rate: SenderRate;
  private readonly domains: Set<string>;
  private readonly bridges: ImBridge[] = [];
  /** Reg watches opened to learn a recipient's contacts, kept `linger` seconds after the last use. */
  private readonly lingering = new Map<string, { stop: () => void; timer: NodeJS.Timeout }>();
  private readonly maxLingering = 10_000;

  constructor(private readonly d: RelayDeps) {
    this.rate = new SenderRate({ rate: d.config.rate, burst: d.config.burst });
    this.domains = new Set(d.domains.map((x) => x.toLowerCase()));
  }

  addBridge(b: ImBridge): void {
    this.bridges.push(b);
  }

  stop(): void {
    for (const l of this.lingering.values()) {
      clearTimeout(l.timer);
      l.stop();
    }
    this.lingering.clear();
  }

  /** A MESSAGE from the SIP side. */
  async handle(tx: ServerTx): Promise<void> {
    const rq = tx.request;
    this.counters.received++;
    const answer = (status: number, reason: string, extra: HeaderList = [], toTag?: string): void => {
      if (status >= 300) this.counters.failed++;
      tx.respond({ status, reason, headers: mergeHeaders(this.d.common(), extra), ...(toTag ? { toTag } : {}) });
    };
    const mf = Number(header(rq, 'max-forwards') ?? '70');
    if (!Number.isInteger(mf) || mf <= 0) return answer(483, 'Too Many Hops');
    // RFC 3261 §16.3 step 4: a request Herald itself forwarded has come back (a next hop routing it
    // to Herald again): refused at once instead of circling until Max-Forwards runs out.
    if (rq.via.some((v) => isOwnBranch(v.params['branch']))) return answer(482, 'Loop Detected');
    if (rq.bodyBytes > this.d.config.maxBodyBytes) return answer(413, 'Request Entity Too Large');
    const sender = await this.d.identify(tx);
    if (!sender) return; // challenged
    const wait = this.rate.take(sender.anonymous ? `addr:${rq.source.address}` : sender.uri);
    if (wait > 0) {
      this.counters.rateLimited++;
      return answer(503, 'Too Many Messages', [['Retry-After', String(wait)]]);
    }
    const bridge = this.bridges.find((b) => b.handles(rq.uri));
    if (bridge) {
      // Only Herald's own authenticated users reach the other network: no open relay (RFC 8048 §8).
      if (sender.anonymous || !this.isLocal(sender.uri)) return answer(403, 'Forbidden');
      const text = bridgeText(rq);
      if (text === undefined) return answer(415, 'Unsupported Media Type', [['Accept', 'text/plain, message/cpim']]);
      const out = await bridge.send({ ...text, from: sender.uri, to: rq.uri, thread: rq.callId });
      if (out.status < 300) this.counters.bridgedOut++;
      return answer(out.status, out.reason);
    }
    const recipient = aorOf(rq.uri);
    if (!recipient || !this.isLocal(recipient)) return answer(404, 'Not Found');
    const handling = await this.authorize(sender, recipient);
    if (handling === 'block') return answer(403, 'Forbidden');
    // Polite blocking (as pres-rules' polite-block): the sender cannot tell it from a delivery to a store.
    if (handling === 'polite-block') return answer(202, 'Accepted');
    const r = await this.deliver(recipient, rq.uri, {
      method: 'MESSAGE',
      from: rq.from,
      to: rq.to,
      callId: rq.callId,
      cseq: rq.cseq.seq,
      viaBelow: rq.via,
      maxForwards: mf - 1,
      headers: this.endToEnd(rq, sender),
      ...(rq.body !== '' ? { body: rq.body, contentType: header(rq, 'content-type') ?? 'text/plain' } : {}),
    });
    answer(r.status, r.reason, [], r.toTag);
  }

  /** A message from a bridge to a local user: the same rules and the same delivery, Herald as the UAC. */
  async fromGateway(m: GatewayMessage): Promise<ImOutcome> {
    this.counters.received++;
    const fail = (o: ImOutcome): ImOutcome => {
      if (o.status >= 300) this.counters.failed++;
      return o;
    };
    if (Buffer.byteLength(m.body) > this.d.config.maxBodyBytes) return fail({ status: 413, reason: 'Request Entity Too Large' });
    const wait = this.rate.take(m.sender);
    if (wait > 0) {
      this.counters.rateLimited++;
      return fail({ status: 503, reason: 'Too Many Messages' });
    }
    if (!this.isLocal(m.recipient)) return fail({ status: 404, reason: 'Not Found' });
    const handling = await this.authorize({ uri: m.sender, anonymous: false }, m.recipient);
    if (handling === 'block') return fail({ status: 403, reason: 'Forbidden' });
    if (handling === 'polite-block') return { status: 202, reason: 'Accepted' };
    const r = await this.deliver(m.recipient, m.recipient, {
      method: 'MESSAGE',
      from: { display: undefined, uri: m.from, params: { tag: randomBytes(6).toString('hex') } },
      to: { display: undefined, uri: m.recipient, params: {} },
      callId: m.callId,
      cseq: m.cseq,
      headers: m.headers,
      body: m.body,
      contentType: m.contentType,
    });
    if (r.status < 300) this.counters.bridgedIn++;
    return fail(r);
  }

  private isLocal(uri: string): boolean {
    return this.domains.has(uri.slice(uri.lastIndexOf('@') + 1).toLowerCase());
  }

  private async authorize(sender: ImSender, recipient: string): Promise<ImHandling> {
    const h = await this.d.authorizer.decide(sender, recipient);
    if (h === 'block') this.counters.blocked++;
    if (h === 'polite-block') this.counters.politeBlocked++;
    return h;
  }

  /** The request's end-to-end headers, and the identity Herald vouches for towards its next hop. */
  private endToEnd(rq: SipRequest, sender: ImSender): HeaderList {
    const out: [string, string][] = [];
    for (const [n, v] of rq.headers) if (!HOP_BY_HOP.has(n)) out.push([headerName(n), v]);
    // RFC 3325: the operator's proxy is in Herald's trust domain; a UA's contact gets no assertion.
    if (this.d.config.route && !sender.anonymous) out.push(['P-Asserted-Identity', `<${sender.uri}>`]);
    return out;
  }

  private async deliver(recipient: string, ruri: string, base: Omit<OutgoingRequest, 'uri' | 'route'>): Promise<Forwarded> {
    const targets = await this.targets(recipient, ruri);
    if (targets.length === 0) return { status: 480, reason: 'Temporarily Unavailable' };
    const r = await forward(this.d.send, base, targets, this.d.config.timeout * 1000);
    if (r.status < 300) this.counters.delivered++;
    return r;
  }

  private async targets(recipient: string, ruri: string): Promise<Target[]> {
    const route = this.d.config.route;
    if (route) return [{ uri: ruri, route: [`<${/;lr\b/.test(route) ? route : `${route};lr`}>`] }];
    const src = this.d.contacts;
    if (!src) return [];
    this.keepWatching(src, recipient);
    const contacts = await src.contacts(recipient, this.d.config.lookupWait * 1000);
    return (contacts ?? []).map((uri) => ({ uri }));
  }

  private keepWatching(src: ContactSource, aor: string): void {
    const l = this.lingering.get(aor);
    const ms = this.d.config.linger * 1000;
    if (l) {
      l.timer.refresh();
      // Refreshed ones go to the end, so the first is the least recently used.
      this.lingering.delete(aor);
      this.lingering.set(aor, l);
      return;
    }
    if (this.lingering.size >= this.maxLingering) {
      const [k, oldest] = this.lingering.entries().next().value!;
      clearTimeout(oldest.timer);
      oldest.stop();
      this.lingering.delete(k);
    }
    const stop = src.watch(aor);
    const timer = setTimeout(() => {
      this.lingering.delete(aor);
      stop();
    }, ms);
    timer.unref?.();
    this.lingering.set(aor, { stop, timer });
  }
}

/** The text of a MESSAGE for a bridge: text/plain as is, message/cpim (RFC 3862) unwrapped. */
function bridgeText(rq: SipRequest): { text: string; subject?: string; lang?: string; sentAt?: number } | undefined {
  const ct = (header(rq, 'content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase();
  const subject = header(rq, 'subject');
  const lang = header(rq, 'content-language');
  const date = header(rq, 'date');
  const sentAt = date ? Date.parse(date) : NaN;
  const meta = { ...(subject ? { subject } : {}), ...(lang ? { lang } : {}), ...(Number.isFinite(sentAt) ? { sentAt } : {}) };
  if (ct === 'text/plain') return { text: rq.body, ...meta };
  if (ct === 'message/cpim') {
    const m = parseCpim(rq.body);
    if (!m || m.contentType !== 'text/plain') return undefined;
    return { text: m.body, ...meta, ...(m.sentAt !== undefined ? { sentAt: m.sentAt } : {}), ...(m.subject ? { subject: m.subject } : {}) };
  }
  return undefined;
}

export interface CpimMessage {
  contentType: string;
  body: string;
  sentAt?: number;
  subject?: string;
}

/**
 * RFC 3862 §3: message headers, a blank line, the encapsulated MIME headers, a blank line, the
 * content. Only what a bridge needs is read: DateTime (§5.7), Subject (§5.8) and the content type.
 */
export function parseCpim(text: string): CpimMessage | undefined {
  const norm = text.replace(/\r\n/g, '\n');
  const a = norm.indexOf('\n\n');
  if (a < 0) return undefined;
  const b = norm.indexOf('\n\n', a + 2);
  if (b < 0) return undefined;
  const fields = (block: string): Map<string, string> => {
    const m = new Map<string, string>();
    for (const line of block.split('\n')) {
      const c = line.indexOf(':');
      if (c > 0 && !m.has(line.slice(0, c).trim().toLowerCase())) m.set(line.slice(0, c).trim().toLowerCase(), line.slice(c + 1).trim());
    }
    return m;
  };
  const msg = fields(norm.slice(0, a));
  const mime = fields(norm.slice(a + 2, b));
  const dt = msg.get('datetime');
  const sentAt = dt ? Date.parse(dt) : NaN;
  const subject = msg.get('subject')?.replace(/^;lang=[^\s]+\s+/, '');
  return {
    contentType: (mime.get('content-type') ?? 'text/plain').split(';')[0]!.trim().toLowerCase(),
    body: norm.slice(b + 2),
    ...(Number.isFinite(sentAt) ? { sentAt } : {}),
    ...(subject ? { subject } : {}),
  };
}

