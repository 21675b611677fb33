// URIs as Herald compares them. One parser of the `user@host` forms, one escape set, and the forms
// every caller needs built on them:
//   aorOf            the address of record of a SIP URI (RFC 3261 §10.3): what resources, watchers
//                    and publications are keyed by
//   identityKey      an identity for common-policy <one>/<except id> (RFC 4745 §7.1, RFC 5025
//                    §3.1.1.2: the AOR, scheme kept, never equated across schemes)
//   canonicalUri     a key for "the same URI": RFC 4826 uniqueness (§3.4.5, §4.4.5), the RLS's
//                    "subscribe once per URI" (§4.3), XCAP documents, view keys
//   uriEquivalent    URI equivalence (RFC 3261 §19.1.4 for sip:/sips:, RFC 3966 §4 for tel:),
//                    what pres-rules service-uri and deviceID grants ask for (RFC 5025 §3.3.1)
// Pure: no I/O.
//
// The escape set is RFC 3261's (§19.1.4: "characters other than those in the reserved set are
// equivalent to their encoding"): an escaped `unreserved` character (alphanum / mark, §25.1) is
// decoded, every other escape keeps its uppercase hex. RFC 3986's smaller unreserved set
// (no `!~*'()`) would make `sip:a%21b@x` differ from `sip:a!b@x`.

import { domainToASCII } from 'node:url';
import { BoundedMemo } from '../util/memo.js';

/** RFC 3261 §25.1 unreserved = alphanum / mark: the characters whose %-escape is needless. */
const UNRESERVED = /^[A-Za-z0-9\-_.!~*'()]$/;

/** Decodes %XX of unreserved characters and upper-cases the hex of the rest. */
export function normalizeEscapes(s: string): string {
  return s.replace(/%([0-9A-Fa-f]{2})/g, (_m, hex: string) => {
    const ch = String.fromCharCode(parseInt(hex, 16));
    return UNRESERVED.test(ch) ? ch : `%${hex.toUpperCase()}`;
  });
}

/** Escape-normalized and lower case, except the hex of the escapes that remain (stays upper). */
function caseless(s: string): string {
  return normalizeEscapes(s).replace(/%[0-9A-F]{2}|[^%]+/g, (t) => (t.startsWith('%') ? t : t.toLowerCase()));
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):(.*)$/s;
/** Schemes of the form user@host;params (RFC 3261 §19.1, RFC 3859/3860, RFC 6068). */
const USER_AT_HOST = new Set(['sip', 'sips', 'pres', 'im', 'mailto']);

/** A URI of the `[user[:password]@]host[:port][;params][?headers]` form, split and normalized. */
export interface UriParts {
  /** Lower case. */
  scheme: string;
  /** Escape-normalized, case kept (RFC 3261 §19.1.4); undefined when there is no userinfo. */
  user: string | undefined;
  password: string | undefined;
  /** Lower case; a domain name in its ASCII form (RFC 4745 §7.1.3: ToASCII); IPv6 in brackets. */
  host: string;
  port: number | undefined;
  /** As written, empty ones left out. */
  params: string[];
  /** As written, after the `?`; undefined without one. */
  headers: string | undefined;
}

/** A domain for comparison, by RFC 4745 §7.1.3: percent-decode, ToASCII, compare in ASCII.
 *  undefined when the conversion fails, and then "the domains are not equal". */
export function asciiDomain(d: string): string | undefined {
  return asciiDomains.get(d);
}

// Every URI Herald reads goes through here (Request-URI, From, To, PIDF entities), and a deployment
// sees few distinct domains: the answers are kept.
const asciiDomains = new BoundedMemo(toAsciiDomain);

function toAsciiDomain(d: string): string | undefined {
  let s: string;
  try {
    s = decodeURIComponent(d).trim();
  } catch {
    return undefined;
  }
  if (s === '') return undefined;
  if (s.startsWith('[')) return s.toLowerCase(); // IPv6 reference: no IDNA, case-insensitive hex
  const a = domainToASCII(s);
  return a === '' ? undefined : a;
}

/** Whether two domains are the same (RFC 4745 §7.1.3). */
export function domainsEqual(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const x = asciiDomain(a);
  return x !== undefined && x === asciiDomain(b);
}

function splitUserHost(scheme: string, rest: string): UriParts | undefined {
  // Neither params nor headers may hold a raw '@' (RFC 3261 §25.1), but a user part may hold ';',
  // '?' and '/': the userinfo ends at the last '@'.
  const at = rest.lastIndexOf('@');
  const userinfo = at === -1 ? undefined : rest.slice(0, at);
  let hostPart = at === -1 ? rest : rest.slice(at + 1);
  let headers: string | undefined;
  const q = hostPart.indexOf('?');
  if (q !== -1) {
    headers = hostPart.slice(q + 1);
    hostPart = hostPart.slice(0, q);
  }
  const semi = hostPart.indexOf(';');
  const hostport = semi === -1 ? hostPart : hostPart.slice(0, semi);
  const params = semi === -1 ? [] : hostPart.slice(semi + 1).split(';').filter((p) => p !== '');
  let rawHost: string;
  let rawPort: string | undefined;
  if (hostport.startsWith('[')) {
    const close = hostport.indexOf(']');
    if (close === -1) return undefined;
    rawHost = hostport.slice(0, close + 1);
    const after = hostport.slice(close + 1);
    if (after !== '') {
      if (!after.startsWith(':')) return undefined;
      rawPort = after.slice(1);
    }
  } else {
    const colon = hostport.lastIndexOf(':');
    rawHost = colon === -1 ? hostport : hostport.slice(0, colon);
    if (colon !== -1) rawPort = hostport.slice(colon + 1);
  }
  if (rawHost === '' || /[\s<>"]/.test(rawHost)) return undefined;
  if (rawPort !== undefined && !/^[0-9]{1,10}$/.test(rawPort)) return undefined;
  // Host names compare case-insensitively (RFC 3261 §19.1.4); IDNs through ToASCII.
  const host = rawHost.startsWith('[') ? rawHost.toLowerCase() : asciiDomain(rawHost) ?? rawHost.toLowerCase();
  let user: string | undefined;
  let password: string | undefined;
  if (userinfo !== undefined) {
    const colon = userinfo.indexOf(':');
    user = normalizeEscapes(colon === -1 ? userinfo : userinfo.slice(0, colon));
    if (colon !== -1) password = normalizeEscapes(userinfo.slice(colon + 1));
  }
  return { scheme, user, password, host, port: rawPort === undefined ? undefined : Number(rawPort), params, headers };
}

/** Splits a URI of a user@host scheme (sip, sips, pres, im, mailto); undefined for anything else. */
export function parseUri(uri: string): UriParts | undefined {
  const m = SCHEME.exec(uri.trim());
  if (!m) return undefined;
  const scheme = (m[1] as string).toLowerCase();
  if (!USER_AT_HOST.has(scheme)) return undefined;
  return splitUserHost(scheme, m[2] as string);
}

/** A sip: or sips: URI split; undefined for any other scheme or a malformed one. */
export function parseSipUri(uri: string): (UriParts & { scheme: 'sip' | 'sips' }) | undefined {
  const u = parseUri(uri);
  return u && (u.scheme === 'sip' || u.scheme === 'sips') ? (u as UriParts & { scheme: 'sip' | 'sips' }) : undefined;
}

/** The parameters by lower-case name, values as written ('' for a bare name); the first one wins. */
export function paramsOf(u: UriParts): Map<string, string> {
  const out = new Map<string, string>();
  for (const p of u.params) {
    const eq = p.indexOf('=');
    const name = (eq === -1 ? p : p.slice(0, eq)).toLowerCase();
    if (!out.has(name)) out.set(name, eq === -1 ? '' : p.slice(eq + 1));
  }
  return out;
}

const hostport = (u: UriParts): string => (u.port === undefined ? u.host : `${u.host}:${u.port}`);

/**
 * The address of record of a SIP URI (RFC 3261 §10.3): `sip:user@host`, a sips: URI as sip:, no
 * port, parameters or headers. undefined for a URI without a user part or not SIP.
 */
export function aorOf(uri: string): string | undefined {
  return aors.get(uri);
}

// Each PUBLISH asks for the same few URIs three times (Request-URI, From, the PIDF entity).
const aors = new BoundedMemo((uri: string): string | undefined => {
  const u = parseSipUri(uri);
  return u && u.user ? `sip:${u.user}@${u.host}` : undefined;
}, 8192);

/** tel: number without visual separators (RFC 3966 §3, §4); phone-context kept (§5.1.5) since it
 *  is what makes a local number mean anything. */
function telIdentity(rest: string): string | undefined {
  const [num = '', ...params] = rest.split(';');
  const digits = normalizeEscapes(num).replace(/[-.()]/g, '').toLowerCase();
  if (digits === '') return undefined;
  const ctx = params.find((p) => p.toLowerCase().startsWith('phone-context='));
  return ctx === undefined ? `tel:${digits}` : `tel:${digits};${ctx.toLowerCase()}`;
}

/** What an identity is known by, and its domain (for <many domain>), if it has one. */
export interface IdentityKey { key: string | undefined; domain: string | undefined }

/**
 * An identity for common-policy <one>/<except id> matching: scheme, user, host and port, no
 * parameters, headers or password (RFC 5025 §3.1.1.2 computes the watcher's URI as an AOR).
 * Schemes are never equated (RFC 5025 §3.1.1.2: "URIs of different schemes are never
 * equivalent"): sip: never matches tel:, nor sips: sip:.
 */
export function identityKey(uri: string): IdentityKey {
  const m = SCHEME.exec(uri.trim());
  if (!m) return { key: undefined, domain: undefined };
  const scheme = (m[1] as string).toLowerCase();
  const rest = m[2] as string;
  if (scheme === 'tel') return { key: telIdentity(rest), domain: undefined };
  if (USER_AT_HOST.has(scheme)) {
    const u = splitUserHost(scheme, rest);
    if (u === undefined) return { key: undefined, domain: undefined };
    return { key: `${scheme}:${u.user === undefined ? '' : `${u.user}@`}${hostport(u)}`, domain: u.host };
  }
  return { key: `${scheme}:${normalizeEscapes(rest)}`, domain: undefined };
}

/** Parameters (or tel: parameters) in one order and case: by name, then value. */
function sortedParams(params: readonly string[]): string[] {
  return params.map(caseless).sort((a, b) => {
    const an = a.split('=', 1)[0] as string;
    const bn = b.split('=', 1)[0] as string;
    return an < bn ? -1 : an > bn ? 1 : a < b ? -1 : a > b ? 1 : 0;
  });
}

function headerSet(headers: string | undefined): string[] {
  if (headers === undefined) return [];
  return headers.split('&').filter((h) => h !== '').map((h) => {
    const eq = h.indexOf('=');
    return eq === -1 ? h.toLowerCase() : `${h.slice(0, eq).toLowerCase()}=${normalizeEscapes(h.slice(eq + 1))}`;
  }).sort();
}

/**
 * A canonical form for URIs that name the same thing, so that "the same URI" can be a string
 * compare (standards-pitfalls RFC 4826 #4): scheme and host lowercased, needless %-escapes decoded
 * (remaining hex uppercased) in user, password and parameters, parameter names and values
 * lowercased and sorted, port without leading zeros, headers dropped (they select no resource;
 * `withHeaders` keeps them, sorted). User and password stay case-sensitive. tel: without visual
 * separators, its parameters sorted (RFC 3966 §4); urn: with a lower-case NID, urn:uuid without
 * case (RFC 4122 §3). undefined for what is not a URI or a malformed one of a user@host scheme.
 */
export function canonicalUri(uri: string, opts: { withHeaders?: boolean } = {}): string | undefined {
  const m = SCHEME.exec(uri.trim());
  if (!m) return undefined;
  const scheme = (m[1] as string).toLowerCase();
  const rest = m[2] as string;
  if (USER_AT_HOST.has(scheme)) {
    const u = splitUserHost(scheme, rest);
    if (u === undefined) return undefined;
    const userinfo = u.user === undefined ? '' : `${u.user}${u.password === undefined ? '' : `:${u.password}`}@`;
    const headers = opts.withHeaders === true && u.headers !== undefined ? `?${headerSet(u.headers).join('&')}` : '';
    return `${scheme}:${userinfo}${hostport(u)}${sortedParams(u.params).map((p) => `;${p}`).join('')}${headers}`;
  }
  if (scheme === 'tel') {
    const [num = '', ...params] = rest.split(';');
    const digits = normalizeEscapes(num).replace(/[-.()]/g, '').toLowerCase();
    if (digits === '') return undefined;
    return `tel:${digits}${sortedParams(params.filter((p) => p !== '')).map((p) => `;${p}`).join('')}`;
  }
  if (scheme === 'urn') {
    const colon = rest.indexOf(':');
    if (colon <= 0) return undefined;
    const nid = rest.slice(0, colon).toLowerCase();
    const nss = normalizeEscapes(rest.slice(colon + 1));
    return `urn:${nid}:${nid === 'uuid' ? nss.toLowerCase() : nss}`;
  }
  return `${scheme}:${normalizeEscapes(rest)}`;
}

/** canonicalUri for a sip: or sips: URI; anything else (tel:, pres:, malformed SIP) merely trimmed.
 *  The form RFC 4826's uniqueness rules and the RLS index compare list members by. */
export function canonicalSipUri(uri: string): string {
  const t = uri.trim();
  return /^sips?:/i.test(t) ? canonicalUri(t) ?? t : t;
}

/** canonicalUri, or the text itself (trimmed, escapes normalized) where it is no URI: XCAP
 *  uniqueness constraints compare whatever a document holds. */
export function canonicalOrSelf(uri: string): string {
  return canonicalUri(uri) ?? normalizeEscapes(uri.trim());
}

/** RFC 3261 §19.1.4: these parameters, present in either URI, must be in both and match. */
const MUST_MATCH = ['transport', 'user', 'ttl', 'method', 'maddr'];

/**
 * SIP URI equivalence, RFC 3261 §19.1.4: same scheme; userinfo case-sensitive, host
 * case-insensitive (no name resolution); a port present in one must be in the other; transport,
 * user, ttl, method and maddr must match wherever one URI has them, other parameters only where
 * both have them; headers are never ignored. Escaped unreserved characters equal themselves.
 */
export function sipUriEquivalent(a: string, b: string): boolean {
  const x = parseSipUri(a);
  const y = parseSipUri(b);
  if (!x || !y || x.scheme !== y.scheme) return false;
  if (x.user !== y.user || x.password !== y.password || x.host !== y.host || x.port !== y.port) return false;
  const px = paramsOf(x);
  const py = paramsOf(y);
  for (const [name, v] of px) {
    const w = py.get(name);
    if (w === undefined ? MUST_MATCH.includes(name) : caseless(v) !== caseless(w)) return false;
  }
  for (const name of py.keys()) if (!px.has(name) && MUST_MATCH.includes(name)) return false;
  const hx = headerSet(x.headers);
  const hy = headerSet(y.headers);
  return hx.length === hy.length && hx.every((h, i) => h === hy[i]);
}

/** URI equivalence: RFC 3261 §19.1.4 for sip:/sips:, equal canonical forms for anything else. */
export function uriEquivalent(a: string, b: string): boolean {
  if (/^\s*sips?:/i.test(a) && /^\s*sips?:/i.test(b)) return sipUriEquivalent(a, b);
  const x = canonicalUri(a);
  return x !== undefined && x === canonicalUri(b);
}

/** The scheme of a URI, in its canonical lower case (RFC 3986 §3.1, §6.2.2.1). */
export function schemeOf(uri: string): string | undefined {
  const m = SCHEME.exec(uri.trim());
  return m ? (m[1] as string).toLowerCase() : undefined;
}

/** True for an absolute URI: a scheme (RFC 3986 §3.1) followed by something. */
export function isAbsoluteUri(s: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:\S+$/.test(s.trim());
}
