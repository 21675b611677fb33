// Instant messages across the gateway (RFC 7572, page mode): a SIP MESSAGE to a Jabber user's SIP
// address becomes a <message type="chat"/> from the SIP user's component JID; a Jabber user's
// <message/> to a SIP user's component JID becomes a SIP MESSAGE, authorized by the recipient's IM
// rules like any other (src/im/relay.ts).
//
// What maps (RFC 7572 §4 and §5, Table 1/2): body ↔ <body/>, Subject ↔ <subject/>, Call-ID ↔
// <thread/>, Content-Language ↔ xml:lang, From/To by the gateway addressing; the XMPP id ↔ the SIP
// transaction (an error for the message goes back as <message type="error"/> with the same id,
// mapped by RFC 7247 §7.2). SIP's CSeq and Via have no XMPP counterpart. The sending time travels as
// Date ↔ XEP-0203 <delay/>, the latter only for a message that was really delayed (a <delay/> makes
// clients show it as an old message).
import { createHash, randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { GatewayMessage } from '../../src/im/relay.js';
import type { ImBridge, ImOutcome, InstantMessage } from '../../src/im/types.js';
import type { HeaderList } from '../../src/sip/message.js';
import { bareJid, type GatewayAddressing } from './address.js';
import { sipStatusToXmpp } from './errors.js';
import type { StanzaSink } from './provider.js';
import { child, el, errorReply, text, type XNode } from './wire.js';

const XML_LANG = 'xml:lang';
export const NS_DELAY = 'urn:xmpp:delay';
/** A SIP Date this much older than now is "delayed" for XMPP. */
const DELAYED_MS = 30_000;

/** RFC 7572 §5: the <message/> a SIP MESSAGE becomes (to and from already mapped to JIDs). */
export function messageStanza(m: InstantMessage, from: string, to: string, id: string, now = Date.now()): XNode {
  const delayed = m.sentAt !== undefined && now - m.sentAt > DELAYED_MS;
  return el(
    'message',
    { from, to, type: 'chat', id, [XML_LANG]: m.lang },
    m.subject !== undefined ? el('subject', {}, m.subject) : undefined,
    el('body', {}, m.text),
    m.thread !== undefined ? el('thread', {}, m.thread) : undefined,
    delayed ? el('delay', { xmlns: NS_DELAY, stamp: new Date(m.sentAt!).toISOString(), from: from.slice(from.lastIndexOf('@') + 1) }) : undefined,
  );
}

export interface ReadMessage extends InstantMessage {
  id: string | undefined;
  type: string;
}

/** RFC 7572 §4: what a <message/> from XMPP carries for SIP; undefined when it has no body (chat states, receipts). */
export function readMessageStanza(n: XNode): ReadMessage | undefined {
  const from = n.attrs['from'];
  const to = n.attrs['to'];
  const body = text(child(n, 'body'));
  if (n.name !== 'message' || from === undefined || to === undefined || body === undefined) return undefined;
  const subject = text(child(n, 'subject'));
  const thread = text(child(n, 'thread'));
  const stamp = child(n, 'delay', NS_DELAY)?.attrs['stamp'];
  const sentAt = stamp !== undefined ? Date.parse(stamp) : NaN;
  const lang = n.attrs[XML_LANG];
  return {
    from,
    to,
    text: body,
    id: n.attrs['id'],
    type: n.attrs['type'] ?? 'normal',
    ...(subject !== undefined && subject !== '' ? { subject } : {}),
    ...(thread !== undefined && thread !== '' ? { thread } : {}),
    ...(lang !== undefined ? { lang } : {}),
    ...(Number.isFinite(sentAt) ? { sentAt } : {}),
  };
}

/** RFC 3261 §25.1 `word`: a thread that is one is the Call-ID as is, any other is hashed into one. */
const CALL_ID_WORD = /^[A-Za-z0-9\-.!%*_+`'~()<>:\\"/[\]?{}@]{1,128}$/;

export function callIdOfThread(thread: string | undefined): string {
  if (thread === undefined) return `${randomBytes(10).toString('hex')}@herald`;
  return CALL_ID_WORD.test(thread) ? thread : `${createHash('sha256').update(thread).digest('hex').slice(0, 32)}@herald`;
}

/** The SIP headers of a message from XMPP: Date (the delay's stamp, else now), Subject, Content-Language. */
export function sipHeadersOf(m: InstantMessage, now = Date.now()): HeaderList {
  const h: [string, string][] = [['Date', new Date(m.sentAt ?? now).toUTCString()]];
  if (m.subject !== undefined) h.push(['Subject', m.subject.replace(/[\r\n]+/g, ' ')]);
  if (m.lang !== undefined && /^[A-Za-z0-9-]{1,35}$/.test(m.lang)) h.push(['Content-Language', m.lang]);
  return h;
}

export interface MessagingOptions {
  addressing: GatewayAddressing;
  sink: StanzaSink & { readonly state: string };
  /** The presence gateway's loop and amplification guards (RFC 8048 §8), the same for messages. */
  refuse: (resource: string, sender: string) => { status: number; reason: string } | undefined;
  /** Delivers a message to a local SIP user (the relay: IM rules, then the user's contacts). */
  deliver: (m: GatewayMessage) => Promise<ImOutcome>;
  log: Logger;
}

/** Both directions of RFC 7572 page mode over the component connection. */
export class XmppMessaging implements ImBridge {
  /** CSeq per Call-ID (one conversation, RFC 3428 §9), bounded: the oldest conversation is forgotten first. */
  private readonly cseqs = new Map<string, number>();

  constructor(private readonly o: MessagingOptions) {}

  handles(uri: string): boolean {
    return this.o.addressing.jabberOf(uri) !== undefined;
  }

  /** SIP → XMPP. */
  send(m: InstantMessage): Promise<ImOutcome> {
    const no = this.o.refuse(m.to, m.from);
    if (no) return Promise.resolve(no);
    const to = this.o.addressing.jabberOf(m.to)!.jid;
    const from = this.o.addressing.jidOfSipUser(m.from)!;
    // Nothing is stored for later (RFC 3428 gives no store-and-forward duty): the connection is down, 480.
    if (this.o.sink.state !== 'online') return Promise.resolve({ status: 480, reason: 'Temporarily Unavailable' });
    this.o.sink.send(messageStanza(m, from, to, `herald-${randomBytes(8).toString('hex')}`));
    // XMPP acknowledges no message: accepted for delivery (RFC 3428 §7: 202).
    return Promise.resolve({ status: 202, reason: 'Accepted' });
  }

  /** XMPP → SIP: a <message/> addressed to a SIP user's JID. */
  async receive(n: XNode): Promise<void> {
    const type = n.attrs['type'] ?? 'normal';
    // RFC 6121 §5.2.2: headlines get no error; groupchat is not page mode (RFC 7572 §1).
    if (type === 'headline') return;
    const m = readMessageStanza(n);
    if (!m) return; // chat states, receipts: nothing for SIP
    const refuse = (condition: string, type: 'cancel' | 'auth' | 'modify' = 'cancel'): void => this.o.sink.send(errorReply(n, { condition, type }));
    if (type === 'groupchat') return refuse('not-acceptable', 'modify');
    const jid = bareJid(m.from);
    if (!this.o.addressing.isBridgedDomain(jid.slice(jid.lastIndexOf('@') + 1))) return refuse('not-allowed');
    const recipient = this.o.addressing.sipUserOfJid(m.to);
    const sender = this.o.addressing.watcherIdentity(jid);
    const from = this.o.addressing.sipOfJabber(jid);
    if (recipient === undefined) return refuse('item-not-found');
    if (sender === undefined || from === undefined) return refuse('jid-malformed', 'modify');
    const callId = callIdOfThread(m.thread);
    const out = await this.o.deliver({
      sender,
      from,
      recipient,
      callId,
      cseq: this.nextCseq(callId),
      body: m.text,
      contentType: 'text/plain;charset=UTF-8',
      headers: sipHeadersOf(m),
    });
    if (out.status >= 300) this.o.sink.send(errorReply(n, sipStatusToXmpp(out.status, out.reason)));
    else this.o.log.debug({ from: jid, to: recipient, status: out.status }, 'xmpp message delivered to SIP');
  }

  private nextCseq(callId: string): number {
    const n = (this.cseqs.get(callId) ?? 0) + 1;
    this.cseqs.delete(callId);
    if (this.cseqs.size >= 10_000) this.cseqs.delete(this.cseqs.keys().next().value!);
    this.cseqs.set(callId, n);
    return n;
  }
}
