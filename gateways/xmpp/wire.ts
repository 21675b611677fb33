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
