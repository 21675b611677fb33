// The one place where xmpp.js elements (ltx, untyped) become the gateway's typed stanzas and back.
// Namespaces follow ltx: an element's `xmlns` attribute, inherited by children that have none
// (RFC 6120 §4.8.3: stanza children without a prefix are in the stream's content namespace).
import { xml, type Element } from '@xmpp/xml';

export interface XNode {
  name: string;
  attrs: Record<string, string>;
  children: (XNode | string)[];
}

export function el(name: string, attrs: Record<string, string | undefined> = {}, ...children: (XNode | string | undefined)[]): XNode {
  const a: Record<string, string> = {};
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined) a[k] = v;
  return { name, attrs: a, children: children.filter((c): c is XNode | string => c !== undefined) };
}

export function fromLtx(e: Element): XNode {
  const attrs: Record<string, string> = {};
  for (const [k, v] of Object.entries(e.attrs)) if (typeof v === 'string') attrs[k] = v;
  return { name: e.name, attrs, children: e.children.map((c) => (typeof c === 'string' ? c : fromLtx(c))) };
}

export function toLtx(n: XNode): Element {
  return xml(n.name, n.attrs, ...n.children.map((c) => (typeof c === 'string' ? c : toLtx(c))));
}

/** The local name without a prefix ("stream:error" → "error"). */
function local(name: string): string {
  const i = name.indexOf(':');
  return i === -1 ? name : name.slice(i + 1);
}

export function children(n: XNode, name?: string, ns?: string): XNode[] {
  return n.children.filter((c): c is XNode => typeof c !== 'string' && (name === undefined || local(c.name) === name) && (ns === undefined || c.attrs['xmlns'] === ns));
}

export function child(n: XNode, name: string, ns?: string): XNode | undefined {
  return children(n, name, ns)[0];
}

export function text(n: XNode | undefined): string | undefined {
  if (n === undefined) return undefined;
  let s = '';
  for (const c of n.children) if (typeof c === 'string') s += c;
  return s;
}

export function serialize(n: XNode): string {
  return toLtx(n).toString();
}

// ---------------------------------------------------------------------------------------------
// Presence stanzas (RFC 6121 §4–§3)
// ---------------------------------------------------------------------------------------------

export const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const XML_LANG = 'xml:lang';

export interface StanzaErrorInfo {
  condition: string;
  type: 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';
  text?: string;
}

export interface PresenceStanza {
  from: string;
  to: string;
  /** RFC 6121 §4.7.1: absent means available. */
  type: string | undefined;
  show?: string;
  status?: string;
  priority?: string;
  lang?: string;
  error?: StanzaErrorInfo;
}

const ERROR_TYPES = ['auth', 'cancel', 'continue', 'modify', 'wait'] as const;

export function readStanzaError(n: XNode): StanzaErrorInfo | undefined {
  const e = child(n, 'error');
  if (!e) return undefined;
  const cond = children(e).find((c) => c.attrs['xmlns'] === NS_STANZAS && c.name !== 'text') ?? children(e).find((c) => c.name !== 'text');
  const t = e.attrs['type'];
  const info: StanzaErrorInfo = {
    condition: cond?.name ?? 'undefined-condition',
    type: (ERROR_TYPES as readonly string[]).includes(t ?? '') ? (t as StanzaErrorInfo['type']) : 'cancel',
  };
  const txt = text(child(e, 'text'));
  if (txt !== undefined && txt !== '') info.text = txt;
  return info;
}

export function readPresenceStanza(n: XNode): PresenceStanza | undefined {
  if (n.name !== 'presence') return undefined;
  const from = n.attrs['from'];
  const to = n.attrs['to'];
  if (from === undefined || to === undefined) return undefined;
  const p: PresenceStanza = { from, to, type: n.attrs['type'] };
  const show = text(child(n, 'show'));
  if (show !== undefined) p.show = show;
  const statusEl = child(n, 'status');
  const status = text(statusEl);
  if (status !== undefined) p.status = status;
  const priority = text(child(n, 'priority'));
  if (priority !== undefined) p.priority = priority;
  const lang = statusEl?.attrs[XML_LANG] ?? n.attrs[XML_LANG];
  if (lang !== undefined) p.lang = lang;
  if (p.type === 'error') {
    const e = readStanzaError(n);
    if (e) p.error = e;
  }
  return p;
}

/** A presence stanza; `body` carries show/status/priority for availability (RFC 6121 §4.7.2). */
export function presenceStanza(
  from: string,
  to: string,
  type?: string,
  body: { show?: string; status?: string; priority?: number; lang?: string } = {},
): XNode {
  return el(
    'presence',
    { from, to, type, [XML_LANG]: body.lang },
    body.show !== undefined ? el('show', {}, body.show) : undefined,
    body.status !== undefined ? el('status', {}, body.status) : undefined,
    body.priority !== undefined ? el('priority', {}, String(body.priority)) : undefined,
  );
}

/** A stanza error reply (RFC 6120 §8.2–8.3): to and from swapped, the error appended. */
export function errorReply(n: XNode, e: StanzaErrorInfo): XNode {
  return el(
    n.name,
    { from: n.attrs['to'], to: n.attrs['from'], id: n.attrs['id'], type: 'error' },
    el('error', { type: e.type }, el(e.condition, { xmlns: NS_STANZAS }), e.text !== undefined ? el('text', { xmlns: NS_STANZAS }, e.text) : undefined),
  );
}

// ---------------------------------------------------------------------------------------------
// The edge: every stanza from the component connection read once into a typed value
// ---------------------------------------------------------------------------------------------

/** RFC 6121 §4.7.1 (absent: available), RFC 6121 §5.2.2, RFC 6120 §8.2.3. */
const STANZA_TYPES = {
  presence: ['unavailable', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'error'],
  message: ['chat', 'error', 'groupchat', 'headline', 'normal'],
  iq: ['get', 'set', 'result', 'error'],
} as const;

interface InboundBase {
  /** Full JIDs, valid under RFC 7622 (address.ts's parseJid). */
  from: string;
  to: string;
  id: string | undefined;
  /** The stanza itself, for error replies and the message mapping. */
  node: XNode;
}
export type InboundStanza =
  | (InboundBase & { kind: 'presence'; presence: PresenceStanza })
  | (InboundBase & { kind: 'message'; type: (typeof STANZA_TYPES.message)[number] })
  | (InboundBase & { kind: 'iq'; type: (typeof STANZA_TYPES.iq)[number]; payload: XNode | undefined });

/** What the edge makes of one element: a stanza, an error to answer with, or nothing (dropped, and why). */
export type Inbound = { stanza: InboundStanza } | { reply: XNode; why: string } | { drop: string };

/**
 * Reads a top-level element from the component stream. Anything the gateway cannot rely on stops here:
 * a stanza with no usable `from` is dropped (there is no one to answer), a bad `to` is answered
 * jid-malformed and a bad `type` or iq shape bad-request (RFC 6120 §8.3.3.8, §8.3.3.1, §8.2.3), and
 * an error is never answered with an error (RFC 6120 §8.3.1). Error replies come from the component's
 * own domain when the stanza's `to` is not a JID.
 */
export function readInbound(n: XNode, componentDomain: string, validJid: (s: string) => boolean): Inbound {
  if (n.name !== 'presence' && n.name !== 'message' && n.name !== 'iq') return { drop: `<${n.name}> is not a stanza` };
  const from = n.attrs['from'];
  const to = n.attrs['to'];
  const type = n.attrs['type'];
  const id = n.attrs['id'];
  if (from === undefined || !validJid(from)) return { drop: 'from is not a JID' };
  const answer = (condition: string, why: string): Inbound => {
    if (type === 'error' || type === 'result') return { drop: why };
    const src = to !== undefined && validJid(to) ? n : { ...n, attrs: { ...n.attrs, to: componentDomain } };
    return { reply: errorReply(src, { condition, type: 'modify' }), why };
  };
  if (to === undefined || !validJid(to)) return answer('jid-malformed', 'to is not a JID');
  const base = { from, to, id, node: n };
  switch (n.name) {
    case 'presence': {
      if (type !== undefined && !(STANZA_TYPES.presence as readonly string[]).includes(type)) return answer('bad-request', `presence type ${type}`);
      return { stanza: { ...base, kind: 'presence', presence: readPresenceStanza(n)! } };
    }
    case 'message': {
      const t = type ?? 'normal';
      if (!(STANZA_TYPES.message as readonly string[]).includes(t)) return answer('bad-request', `message type ${t}`);
      return { stanza: { ...base, kind: 'message', type: t as (typeof STANZA_TYPES.message)[number] } };
    }
    default: {
      if (type === undefined || !(STANZA_TYPES.iq as readonly string[]).includes(type)) return answer('bad-request', `iq type ${type ?? '(none)'}`);
      const payload = children(n);
      // RFC 6120 §8.2.3: an id always; get and set carry exactly one child.
      if (id === undefined) return answer('bad-request', 'iq without id');
      if ((type === 'get' || type === 'set') && payload.length !== 1) return answer('bad-request', `iq ${type} with ${payload.length} children`);
      return { stanza: { ...base, kind: 'iq', type: type as (typeof STANZA_TYPES.iq)[number], payload: payload[0] } };
    }
  }
}
