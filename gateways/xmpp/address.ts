// Address mapping between SIP URIs and JIDs.
//
// JIDs and XEP-0106 escapes are handled here rather than by @xmpp/jid: its escape() escapes every
// backslash and nothing at all once the localpart holds one valid escape (XEP-0106 §3.2 escapes a
// backslash only where it would read as an escape, and every disallowed character), it trims
// spaces and it lower-cases the localpart (RFC 7622 keeps case). SIP URIs are split by the one
// parser of src/formats/uri.ts.
//
// Two layers:
//  1. RFC 7247 §6, the standard's own mapping (sipToJid, jidToSip): the local part is unescaped from
//     the source's style and re-escaped in the destination's (percent-encoding on the SIP side,
//     XEP-0106 `\hh` on the XMPP side), keeping every character the destination allows; a public
//     GRUU's `gr` parameter maps to and from the resourcepart (§6.3).
//  2. Herald's gateway addressing (GatewayAddressing): how a Jabber user is reached from SIP
//     (`sip:<node><sep><xmpp-domain>@<gateway-domain>`, configured domain pairs, or the RFC 7247
//     native `sip:<node>@<xmpp-domain>` for a bridged domain) and how a SIP user is reached from XMPP
//     (`<user>%<sip-domain>@<component-domain>`, or `<user>@<component-domain>` for the one SIP domain
//     configured as the component's own). Pure: no I/O.

import { paramsOf, parseSipUri as parseSharedSipUri } from '../../src/formats/uri.js';

// ---------------------------------------------------------------------------------------------
// Character tables (RFC 7247 §6.1, table "Local-part characters")
// ---------------------------------------------------------------------------------------------

const ALNUM = /^[A-Za-z0-9]$/;

/** RFC 3261 §25.1 `user`: unreserved / user-unreserved, besides alphanumerics. */
export const SIP_USER_ALLOWED = new Set("!$&'()*+,-./;=?_~".split(''));

/** XEP-0106 §3.1: the characters a JID localpart cannot carry, and their escapes. */
export const XEP0106_ESCAPES: Readonly<Record<string, string>> = {
  ' ': '\\20',
  '"': '\\22',
  '&': '\\26',
  "'": '\\27',
  '/': '\\2f',
  ':': '\\3a',
  '<': '\\3c',
  '>': '\\3e',
  '@': '\\40',
  '\\': '\\5c',
};
const XEP0106_UNESCAPES: Readonly<Record<string, string>> = Object.fromEntries(Object.entries(XEP0106_ESCAPES).map(([c, e]) => [e.slice(1), c]));

/** RFC 3986 `unreserved` plus the sub-delims a `gr` pvalue may carry unescaped (RFC 3261 `paramchar`). */
const PARAM_ALLOWED = new Set("-_.!~*'()[]/:&+$".split(''));

function percentEncode(s: string, allowed: ReadonlySet<string>): string {
  let out = '';
  for (const ch of s) {
    if (ALNUM.test(ch) || allowed.has(ch)) out += ch;
    else for (const b of Buffer.from(ch, 'utf8')) out += '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

/** Percent-decodes as UTF-8 (RFC 7247 §6.4 steps 3–4); undefined when the bytes are not UTF-8. */
function percentDecode(s: string): string | undefined {
  if (!s.includes('%')) return s;
  try {
    return decodeURIComponent(s);
  } catch {
    return undefined;
  }
}

/**
 * XEP-0106 escaping of a localpart. A backslash is escaped only where it would otherwise read as an
 * escape sequence (XEP-0106 §3.2), so "a\b" stays as it is.
 */
export function escapeNode(node: string): string {
  let out = '';
  for (let i = 0; i < node.length; i++) {
    const ch = node[i] as string;
    if (ch === '\\') {
      const seq = node.slice(i + 1, i + 3).toLowerCase();
      out += seq in XEP0106_UNESCAPES ? '\\5c' : '\\';
    } else out += XEP0106_ESCAPES[ch] ?? ch;
  }
  return out;
}

/** Reverses XEP-0106 escaping; only the ten defined sequences are escapes. */
export function unescapeNode(node: string): string {
  return node.replace(/\\([0-9a-fA-F]{2})/g, (m, hex: string) => XEP0106_UNESCAPES[hex.toLowerCase()] ?? m);
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** A SIP URI as the gateway reads it: the shared parser (src/formats/uri.ts), the user part '' when
 *  absent, parameters by lower-case name. */
interface GatewaySipUri { user: string; host: string; params: ReadonlyMap<string, string> }

export function parseSipUri(uri: string): GatewaySipUri | undefined {
  const u = parseSharedSipUri(uri);
  // RFC 3261 §19.1.1: a password may follow the user; it has no XMPP counterpart (dropped).
  return u && { user: u.user ?? '', host: u.host, params: paramsOf(u) };
}

export interface Jid {
  local: string;
  domain: string;
  resource?: string;
}

/** RFC 7622 §3.1: each part is 1 to 1023 octets. */
const MAX_JID_PART = 1023;
// RFC 7622 §3.3.1: a localpart never carries " & ' / : < > @, nor (IdentifierClass) spaces or controls.
// eslint-disable-next-line no-control-regex
const BAD_LOCAL = /["&'/:<>@\s\u0000-\u001f\u007f]/u;
// RFC 7622 §3.2: a domainpart is a host name or an IP literal (no spaces, controls or JID delimiters).
// eslint-disable-next-line no-control-regex
const BAD_DOMAIN = /["&'/:<>@\\\s\u0000-\u001f\u007f,;[\]]/u;
const IP_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;
// RFC 7622 §3.4: a resourcepart (FreeformClass) carries no controls.
// eslint-disable-next-line no-control-regex
const BAD_RESOURCE = /[\u0000-\u001f\u007f]/u;

const octets = (s: string): number => Buffer.byteLength(s, 'utf8');

/**
 * A JID as RFC 7622 §3 allows it, or undefined. The checks are on what the gateway must rely on (the
 * delimiters, lengths, no spaces or controls where they are not allowed), not full PRECIS.
 */
export function parseJid(s: string): Jid | undefined {
  const slash = s.indexOf('/');
  const bare = slash === -1 ? s : s.slice(0, slash);
  const resource = slash === -1 ? undefined : s.slice(slash + 1);
  const at = bare.lastIndexOf('@');
  const local = at === -1 ? '' : bare.slice(0, at);
  const domain = (at === -1 ? bare : bare.slice(at + 1)).toLowerCase();
  if (domain === '' || resource === '' || (at !== -1 && local === '')) return undefined;
  if (octets(domain) > MAX_JID_PART || octets(local) > MAX_JID_PART || (resource !== undefined && octets(resource) > MAX_JID_PART)) return undefined;
  if (BAD_LOCAL.test(local) || (BAD_DOMAIN.test(domain) && !IP_LITERAL.test(domain)) || (resource !== undefined && BAD_RESOURCE.test(resource))) return undefined;
  return resource === undefined ? { local, domain } : { local, domain, resource };
}

export function formatJid(j: Jid): string {
  return (j.local ? `${j.local}@` : '') + j.domain + (j.resource !== undefined ? `/${j.resource}` : '');
}

export function bareJid(s: string): string {
  const slash = s.indexOf('/');
  const bare = slash === -1 ? s : s.slice(0, slash);
  const at = bare.lastIndexOf('@');
  return at === -1 ? bare.toLowerCase() : bare.slice(0, at) + '@' + bare.slice(at + 1).toLowerCase();
}

export function resourceOf(s: string): string | undefined {
  const slash = s.indexOf('/');
  return slash === -1 ? undefined : s.slice(slash + 1);
}

// ---------------------------------------------------------------------------------------------
// RFC 7247 §6.4 and §6.5
// ---------------------------------------------------------------------------------------------

/**
 * RFC 7247 §6.4, SIP to XMPP: drop the scheme, split at the `@`, percent-decode the user part as
 * UTF-8, escape what a localpart disallows (XEP-0106: `&`→`\26`, `'`→`\27`, `/`→`\2f` and the
 * characters SIP carried percent-encoded), and map a `gr` parameter to the resourcepart (§6.3).
 */
export function sipToJid(uri: string): string | undefined {
  const u = parseSipUri(uri);
  if (!u) return undefined;
  const user = percentDecode(u.user);
  if (user === undefined) return undefined;
  const gr = u.params.get('gr');
  const resource = gr === undefined || gr === '' ? undefined : percentDecode(gr);
  return formatJid({ local: escapeNode(user), domain: u.host, ...(resource !== undefined ? { resource } : {}) });
}

/**
 * RFC 7247 §6.5, XMPP to SIP: reverse the XEP-0106 escapes, percent-encode what a SIP user part
 * disallows (`# % [ \ ] ^ \` { | }`, `" : < > @`, space and every non-ASCII byte), and map the
 * resourcepart to a `gr` parameter (§6.3; only meaningful for a public GRUU).
 */
export function jidToSip(jid: string, opts: { withResource?: boolean } = {}): string | undefined {
  const j = parseJid(jid);
  if (!j) return undefined;
  const user = percentEncode(unescapeNode(j.local), SIP_USER_ALLOWED);
  const base = `sip:${user ? `${user}@` : ''}${j.domain}`;
  return opts.withResource !== false && j.resource !== undefined ? `${base};gr=${percentEncode(j.resource, PARAM_ALLOWED)}` : base;
}

// ---------------------------------------------------------------------------------------------
// Herald's gateway addressing
// ---------------------------------------------------------------------------------------------

export interface AddressingConfig {
  /** The XEP-0114 component's domain: SIP users appear in XMPP under it. */
  componentDomain: string;
  /** The SIP domain under which Jabber users appear as `sip:<node><sep><xmpp-domain>@<gatewayDomain>`. */
  gatewayDomain: string;
  /** Between node and XMPP domain in the SIP user part (Kamailio/OpenSIPS use `*` or `%`). */
  separator: string;
  /** XMPP domains whose users are bridged; nothing else is subscribed to (RFC 8048 §8). */
  xmppDomains: readonly string[];
  /** Configured pairs: `sip:<node>@<sip>` is the Jabber user `<node>@<xmpp>`. */
  domainPairs: readonly { sip: string; xmpp: string }[];
  /** The SIP domain whose users appear as `<user>@<componentDomain>` (no `%<domain>`); '' for none. */
  componentSipDomain: string;
}

export interface JabberAddress {
  /** The bare JID. */
  jid: string;
  /** Why it is not bridged, when it is not: 'own' (the gateway's own address: a loop) or 'domain'. */
  refused?: 'own' | 'domain';
}

export class GatewayAddressing {
  private readonly xmppDomains: Set<string>;
  private readonly sipToXmppDomain = new Map<string, string>();
  private readonly xmppToSipDomain = new Map<string, string>();

  constructor(private readonly cfg: AddressingConfig) {
    this.xmppDomains = new Set(cfg.xmppDomains.map((d) => d.toLowerCase()));
    for (const p of cfg.domainPairs) {
      this.sipToXmppDomain.set(p.sip.toLowerCase(), p.xmpp.toLowerCase());
      this.xmppToSipDomain.set(p.xmpp.toLowerCase(), p.sip.toLowerCase());
    }
  }

  get componentDomain(): string {
    return this.cfg.componentDomain;
  }

  /** Whether a SIP resource names a Jabber user in one of the gateway's forms (bridged or not). */
  jabberOf(resource: string): JabberAddress | undefined {
    const u = parseSipUri(resource);
    if (!u || u.user === '') return undefined;
    const user = percentDecode(u.user);
    if (user === undefined) return undefined;
    let node: string;
    let domain: string;
    if (u.host === this.cfg.gatewayDomain) {
      // Split at the last separator: a domain never contains it, a node may.
      const at = user.lastIndexOf(this.cfg.separator);
      if (at <= 0 || at + this.cfg.separator.length >= user.length) return undefined;
      node = user.slice(0, at);
      domain = user.slice(at + this.cfg.separator.length).toLowerCase();
    } else if (this.sipToXmppDomain.has(u.host)) {
      node = user;
      domain = this.sipToXmppDomain.get(u.host) as string;
    } else if (this.xmppDomains.has(u.host)) {
      // RFC 7247 §5 native addressing: the SIP side routes the XMPP domain to this gateway.
      node = user;
      domain = u.host;
    } else return undefined;
    const jid = `${escapeNode(node)}@${domain}`;
    if (domain === this.cfg.componentDomain) return { jid, refused: 'own' };
    if (!this.xmppDomains.has(domain)) return { jid, refused: 'domain' };
    return { jid };
  }

  /** The SIP address a Jabber user is shown under (domain pair if configured, else the separator form). */
  sipOfJabber(jid: string): string | undefined {
    const j = parseJid(bareJid(jid));
    if (!j || j.local === '') return undefined;
    const node = unescapeNode(j.local);
    const paired = this.xmppToSipDomain.get(j.domain);
    if (paired !== undefined) return `sip:${percentEncode(node, SIP_USER_ALLOWED)}@${paired}`;
    return `sip:${percentEncode(node + this.cfg.separator + j.domain, SIP_USER_ALLOWED)}@${this.cfg.gatewayDomain}`;
  }

  /**
   * The SIP identity a Jabber watcher has for pres-rules: the address SIP users know it by when a
   * domain pair is configured, else the RFC 7247 §6.5 mapping of its bare JID (`juliet@xmpp.test` →
   * `sip:juliet@xmpp.test`), so that rules naming the person or the domain (common-policy `<domain>`)
   * apply; the gateway form would put every Jabber user in the gateway's domain.
   */
  watcherIdentity(jid: string): string | undefined {
    const j = parseJid(bareJid(jid));
    if (!j || j.local === '') return undefined;
    if (this.xmppToSipDomain.has(j.domain)) return this.sipOfJabber(jid);
    return jidToSip(bareJid(jid), { withResource: false });
  }

  /** The component JID a SIP user is reached at from XMPP. */
  jidOfSipUser(sip: string): string | undefined {
    const u = parseSipUri(sip);
    if (!u || u.user === '') return undefined;
    const user = percentDecode(u.user);
    if (user === undefined) return undefined;
    // A user part with a '%' keeps the explicit domain, so the mapping stays reversible.
    const local = u.host === this.cfg.componentSipDomain && !user.includes('%') ? escapeNode(user) : `${escapeNode(user)}%${u.host}`;
    return `${local}@${this.cfg.componentDomain}`;
  }

  /** The SIP user a component JID stands for (the resourcepart is ignored: a SIP user has one AOR). */
  sipUserOfJid(jid: string): string | undefined {
    const j = parseJid(jid);
    if (!j || j.domain !== this.cfg.componentDomain || j.local === '') return undefined;
    const local = unescapeNode(j.local);
    // Split at the last '%': a domain never contains one, a user part may.
    const pct = local.lastIndexOf('%');
    let user: string;
    let domain: string;
    if (pct > 0 && pct < local.length - 1) {
      user = local.slice(0, pct);
      domain = local.slice(pct + 1).toLowerCase();
    } else if (this.cfg.componentSipDomain !== '' && pct === -1) {
      user = local;
      domain = this.cfg.componentSipDomain;
    } else return undefined;
    return `sip:${percentEncode(user, SIP_USER_ALLOWED)}@${domain}`;
  }

  isBridgedDomain(domain: string): boolean {
    return this.xmppDomains.has(domain.toLowerCase()) && domain.toLowerCase() !== this.cfg.componentDomain;
  }
}
