// The SIP header section (RFC 3261 §7, §25.1) read in one left-to-right pass per header, in time
// linear in its length, into the shapes codec.ts turns into typed messages.
//
// Why not sip.parse (the `sip` package) any more: its header regexes backtrack over the input, so a
// hostile header costs time quadratic in its length (issue 16 #2: `Authorization: Digest ` and 40,000
// ';' took 1.9 s; runs of blanks in Via, From, To, Contact or Route, runs of ", " in Contact and
// Route, backslashes inside quotes did the same). Every loop below advances its index on each step
// and never goes back. URIs are still read by sip.parseUri (codec.ts), whose anchored regex is linear.
import type { RawMessage, RawNameAddr, RawVia } from 'sip';
import type { Credentials } from './message.js';
import { BoundedMemo } from '../util/memo.js';

const COMPACT: Record<string, string> = {
  i: 'call-id',
  m: 'contact',
  e: 'content-encoding',
  l: 'content-length',
  c: 'content-type',
  f: 'from',
  s: 'subject',
  k: 'supported',
  t: 'to',
  v: 'via',
  o: 'event',
  u: 'allow-events',
  r: 'refer-to',
  x: 'session-expires',
};

/** Headers whose value is a list of name-addrs. */
const NAME_ADDR_LISTS = new Set(['contact', 'route', 'record-route', 'path']);
/** Headers whose value is an authentication scheme with parameters (RFC 3261 §25.1 credentials/challenge). */
const AUTH = new Set(['authorization', 'proxy-authorization', 'www-authenticate', 'proxy-authenticate']);

// RFC 3261 §25.1 token characters: alphanum and -.!%*_+`'~
const TOKEN = new Uint8Array(128);
for (const c of 'abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.!%*_+`\'~') TOKEN[c.charCodeAt(0)] = 1;
/**
 * Bounds beyond any real message, so that a hostile header costs no more than a benign one of its
 * size (a header past them is malformed): parameters on one element, schemes in one auth header.
 */
const MAX_PARAMS = 64;
const MAX_AUTH_ITEMS = 16;

const isToken = (c: number): boolean => c < 128 && TOKEN[c] === 1;
const isWs = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10;
/** What String.prototype.trim removes among the characters a latin1-decoded head can hold. */
const isTrimmed = (c: number): boolean => c === 32 || (c >= 9 && c <= 13) || c === 160;

function skipWs(s: string, i: number): number {
  while (i < s.length && isWs(s.charCodeAt(i))) i++;
  return i;
}

function tokenEnd(s: string, i: number): number {
  while (i < s.length && isToken(s.charCodeAt(i))) i++;
  return i;
}

/** From an opening quote, the index just past the closing one; -1 if the string never closes. */
function quotedEnd(s: string, i: number): number {
  for (let j = i + 1; j < s.length; j++) {
    const c = s.charCodeAt(j);
    if (c === 92) j++; // a quoted-pair: skip the escaped character
    else if (c === 34) return j + 1;
  }
  return -1;
}

/** Pushes s[start, end) trimmed, unless it is empty (",," and ", ," hold no item). */
function pushItem(out: string[], s: string, start: number, end: number): void {
  let a = start;
  let b = end;
  while (a < b && isWs(s.charCodeAt(a))) a++;
  while (b > a && isWs(s.charCodeAt(b - 1))) b--;
  if (b > a) out.push(s.slice(a, b));
}

/** Splits a header value at commas outside quotes and angle brackets (RFC 3261 §7.3.1). */
export function splitList(s: string): string[] {
  const out: string[] = [];
  let start = 0;
  let angle = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) {
      const e = quotedEnd(s, i);
      if (e < 0) break;
      i = e - 1;
    } else if (c === 60) angle = true;
    else if (c === 62) angle = false;
    else if (c === 44 && !angle) {
      pushItem(out, s, start, i);
      start = i + 1;
    }
  }
  pushItem(out, s, start, s.length);
  return out;
}

/**
 * `*( SEMI name [ EQUAL value ] )` from index i; values are tokens (plus ':' '[' ']' for hosts),
 * or quoted strings kept with their quotes. Returns undefined on anything else.
 */
function params(s: string, i: number, into: Record<string, string | null>): boolean {
  for (let n = 0; ; n++) {
    if (n > MAX_PARAMS) return false;
    i = skipWs(s, i);
    if (i >= s.length) return true;
    if (s.charCodeAt(i) !== 59) return false; // ';'
    i = skipWs(s, i + 1);
    const ne = tokenEnd(s, i);
    if (ne === i) return false;
    const name = s.slice(i, ne).toLowerCase();
    i = skipWs(s, ne);
    if (i < s.length && s.charCodeAt(i) === 61) {
      i = skipWs(s, i + 1);
      if (s.charCodeAt(i) === 34) {
        const e = quotedEnd(s, i);
        if (e < 0) return false;
        into[name] = s.slice(i, e);
        i = e;
      } else {
        let e = i;
        for (; e < s.length; e++) {
          const c = s.charCodeAt(e);
          if (!(isToken(c) || c === 58 || c === 91 || c === 93)) break;
        }
        if (e === i) return false;
        into[name] = s.slice(i, e);
        i = e;
      }
    } else {
      into[name] = null;
    }
  }
}

/** name-addr or addr-spec with header parameters (RFC 3261 §20.10, §25.1). */
export function parseNameAddr(v: string): RawNameAddr | undefined {
  const s = v.trim();
  let i = 0;
  let name: string | undefined;
  let uri: string;
  const lt = s.indexOf('<');
  if (s.charCodeAt(0) === 34) {
    const e = quotedEnd(s, 0);
    if (e < 0) return undefined;
    name = s.slice(0, e);
    i = skipWs(s, e);
    if (s.charCodeAt(i) !== 60) return undefined;
  } else if (lt >= 0 && (s.indexOf(';') < 0 || lt < s.indexOf(';'))) {
    // display-name as tokens and blanks before '<'
    for (let j = 0; j < lt; j++) {
      const c = s.charCodeAt(j);
      if (!isToken(c) && !isWs(c)) return undefined;
    }
    const d = s.slice(0, lt).trim();
    if (d) name = d;
    i = lt;
  }
  if (s.charCodeAt(i) === 60) {
    const gt = s.indexOf('>', i);
    if (gt < 0) return undefined;
    uri = s.slice(i + 1, gt).trim();
    i = gt + 1;
  } else {
    // addr-spec: the URI runs to the first ';' or blank; what follows is header parameters.
    let e = i;
    for (; e < s.length; e++) {
      const c = s.charCodeAt(e);
      if (c === 59 || isWs(c)) break;
    }
    uri = s.slice(i, e);
    i = e;
  }
  if (!uri) return undefined;
  const p: Record<string, string | null> = {};
  if (!params(s, i, p)) return undefined;
  return name !== undefined ? { name, uri, params: p } : { uri, params: p };
}

/** `SIP / 2.0 / transport sent-by *( ; via-params )` (RFC 3261 §20.42). */
export function parseVia(v: string): RawVia | undefined {
  const s = v;
  let i = skipWs(s, 0);
  const parts: string[] = [];
  for (let k = 0; k < 3; k++) {
    if (k > 0) {
      i = skipWs(s, i);
      if (s.charCodeAt(i) !== 47) return undefined; // '/'
      i = skipWs(s, i + 1);
    }
    const e = tokenEnd(s, i);
    if (e === i) return undefined;
    parts.push(s.slice(i, e));
    i = e;
  }
  if (parts[0]!.toUpperCase() !== 'SIP') return undefined;
  const j = skipWs(s, i);
  if (j === i) return undefined;
  i = j;
  let host: string;
  if (s.charCodeAt(i) === 91) {
    const e = s.indexOf(']', i);
    if (e < 0) return undefined;
    host = s.slice(i, e + 1);
    i = e + 1;
  } else {
    let e = i;
    for (; e < s.length; e++) {
      const c = s.charCodeAt(e);
      if (c === 58 || c === 59 || isWs(c)) break;
    }
    if (e === i) return undefined;
    host = s.slice(i, e);
    i = e;
  }
  let port: number | undefined;
  const k = skipWs(s, i);
  if (s.charCodeAt(k) === 58) {
    const ds = skipWs(s, k + 1);
    let de = ds;
    while (de < s.length && de - ds < 6 && s.charCodeAt(de) >= 48 && s.charCodeAt(de) <= 57) de++;
    if (de === ds) return undefined;
    port = Number(s.slice(ds, de));
    i = de;
  }
  const p: Record<string, string | null> = {};
  if (!params(s, i, p)) return undefined;
  return { version: parts[1]!, protocol: parts[2]!, host, ...(port !== undefined ? { port } : {}), params: p };
}

function parseCSeq(v: string): { seq: number; method: string } | undefined {
  const s = v.trim();
  let e = 0;
  while (e < s.length && e < 11 && s.charCodeAt(e) >= 48 && s.charCodeAt(e) <= 57) e++;
  if (e === 0) return undefined;
  const ms = skipWs(s, e);
  if (ms === e) return undefined;
  const me = tokenEnd(s, ms);
  if (me === ms || me !== s.length) return undefined;
  return { seq: Number(s.slice(0, e)), method: s.slice(ms, me) };
}

const unquote = (v: string): string => {
  if (v.length < 2 || v.charCodeAt(0) !== 34) return v;
  let out = '';
  for (let i = 1; i < v.length - 1; i++) {
    if (v.charCodeAt(i) === 92 && i + 1 < v.length - 1) i++;
    out += v[i];
  }
  return out;
};

/**
 * Credentials or challenges (RFC 3261 §25.1, RFC 7235 §2.1): `scheme param=value, param=value, ...`,
 * several schemes in one value allowed (a token not followed by '=' starts the next). Parameter names
 * lower-cased, values unquoted. A token68 (Basic's "dXNlcg==") is skipped. undefined if malformed.
 */
export function parseAuthList(s: string): Credentials[] | undefined {
  const out: Credentials[] = [];
  let cur: Credentials | undefined;
  let i = 0;
  let count = 0;
  for (;;) {
    i = skipWs(s, i);
    while (i < s.length && s.charCodeAt(i) === 44) i = skipWs(s, i + 1);
    if (i >= s.length) return out;
    const te = tokenEnd(s, i);
    if (te === i) {
      // The token68 form may carry '/' and '=' beyond token characters.
      if (cur && s.charCodeAt(i) === 61) {
        while (i < s.length && s.charCodeAt(i) === 61) i++;
        continue;
      }
      return undefined;
    }
    const tok = s.slice(i, te);
    let j = skipWs(s, te);
    if (j < s.length && s.charCodeAt(j) === 61 && cur) {
      if (++count > MAX_AUTH_ITEMS * MAX_PARAMS) return undefined;
      j = skipWs(s, j + 1);
      if (s.charCodeAt(j) === 34) {
        const e = quotedEnd(s, j);
        if (e < 0) return undefined;
        cur.params[tok.toLowerCase()] = unquote(s.slice(j, e));
        i = e;
      } else {
        const ve = tokenEnd(s, j);
        if (ve === j) {
          // "Basic dXNlcg==": the '=' padding of a token68, not a parameter.
          i = j;
          continue;
        }
        cur.params[tok.toLowerCase()] = s.slice(j, ve);
        i = ve;
      }
    } else {
      if (out.length >= MAX_AUTH_ITEMS) return undefined;
      cur = { scheme: tok, params: {} };
      out.push(cur);
      i = te;
    }
  }
}

/** Header values of a message by lower-case full name, the structured ones already parsed. */
export type ParsedHeaders = RawMessage['headers'] & {
  authorization?: Credentials[];
  'proxy-authorization'?: Credentials[];
  'www-authenticate'?: Credentials[];
  'proxy-authenticate'?: Credentials[];
};

export interface ParsedMessage extends RawMessage {
  headers: ParsedHeaders;
}

function startLine(line: string, m: ParsedMessage): boolean {
  if (line.startsWith('SIP/')) {
    const sp = line.indexOf(' ');
    if (sp < 0) return false;
    const ss = skipWs(line, sp);
    let se = ss;
    while (se < line.length && se - ss < 3 && line.charCodeAt(se) >= 48 && line.charCodeAt(se) <= 57) se++;
    if (se - ss !== 3) return false;
    m.version = line.slice(4, sp);
    m.status = Number(line.slice(ss, se));
    m.reason = line.slice(se).trim();
    return true;
  }
  const me = tokenEnd(line, 0);
  if (me === 0 || line.charCodeAt(me) !== 32) return false;
  const ue = line.indexOf(' ', me + 1);
  if (ue <= me + 1) return false;
  const rest = line.slice(ue + 1).trim();
  if (!/^SIP\/\d{1,3}\.\d{1,3}$/.test(rest)) return false;
  m.method = line.slice(0, me);
  m.uri = line.slice(me + 1, ue);
  m.version = rest.slice(4);
  return true;
}

/** Adds a list header's items to those of its earlier lines, in place (3,000 Via lines stay linear). */
function appendList(h: ParsedHeaders, key: string, items: unknown[] | undefined): void {
  if (!items) return;
  const prev = h[key];
  if (!Array.isArray(prev)) h[key] = items;
  else for (const x of items) (prev as unknown[]).push(x);
}

/** Each comma-separated element of a list header parsed; undefined when any one is malformed. */
function parseEach<T>(value: string, parse: (item: string) => T | undefined): T[] | undefined {
  const items = splitList(value);
  const out: T[] = [];
  for (const item of items) {
    const x = parse(item);
    if (x === undefined) return undefined;
    out.push(x);
  }
  return out;
}

function addHeader(h: ParsedHeaders, name: string, value: string): void {
  if (name === 'via') {
    appendList(h, 'via', parseEach(value, parseVia));
  } else if (NAME_ADDR_LISTS.has(name)) {
    if (name === 'contact' && value.trim() === '*') {
      h.contact = '*';
      return;
    }
    appendList(h, name, parseEach(value, parseNameAddr));
  } else if (AUTH.has(name)) {
    appendList(h, name, parseAuthList(value));
  } else if (name === 'from' || name === 'to') {
    const na = parseNameAddr(value);
    if (na && h[name] === undefined) h[name] = na;
  } else if (name === 'cseq') {
    const c = parseCSeq(value);
    if (c) h.cseq = c;
  } else if (name === 'content-length') {
    h['content-length'] = Number(value.trim());
  } else if (name === 'call-id') {
    const id = value.trim();
    if (id) h['call-id'] = id;
  } else {
    const prev = h[name];
    h[name] = typeof prev === 'string' ? `${prev},${value}` : value;
  }
}

/** A header name as written → its lower-case full name (compact forms expanded, RFC 3261 §7.3.3). */
const headerNames = new BoundedMemo((written: string): string => {
  const lower = written.toLowerCase();
  return COMPACT[lower] ?? lower;
}, 1024, 64);

/** A header line that continues on the next (folded, RFC 3261 §7.3.1): its parts joined by a blank. */
function foldedLine(text: string, from: number): { line: string; end: number } {
  let end = from;
  let line = '';
  for (;;) {
    const crlf = text.indexOf('\r\n', end);
    if (crlf < 0) return { line: line + text.slice(end), end: text.length };
    const next = text.charCodeAt(crlf + 2);
    if (next === 32 || next === 9) {
      line += `${text.slice(end, crlf)} `;
      end = crlf + 2;
      continue;
    }
    return { line: line + text.slice(end, crlf), end: crlf + 2 };
  }
}

/**
 * Parses a header section (start line and headers, CRLF-separated, without the blank line).
 * undefined: the start line or a header line is unreadable (the message is dropped). A header whose
 * value is malformed is left out, which codec.ts answers with 400 when the header is mandatory.
 */
export function parseHead(text: string): ParsedMessage | undefined {
  const m: ParsedMessage = { headers: {} };
  let pos = 0;
  let first = true;
  while (pos < text.length) {
    // A line ends at a CRLF not followed by a blank (RFC 3261 §7.3.1 folding joins the next line).
    const crlf = text.indexOf('\r\n', pos);
    const next = crlf < 0 ? -1 : text.charCodeAt(crlf + 2);
    let line: string;
    if (next === 32 || next === 9) {
      const folded = foldedLine(text, pos);
      line = folded.line;
      pos = folded.end;
    } else {
      const end = crlf < 0 ? text.length : crlf;
      line = text.slice(pos, end);
      pos = crlf < 0 ? end : end + 2;
    }
    if (first) {
      if (!startLine(line, m)) return undefined;
      first = false;
      continue;
    }
    if (line.length === 0) continue;
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    let ne = colon;
    while (ne > 0 && isWs(line.charCodeAt(ne - 1))) ne--;
    if (tokenEnd(line, 0) !== ne) return undefined;
    // The value as String.prototype.trim would leave it, in one slice.
    let vs = colon + 1;
    let ve = line.length;
    while (vs < ve && isTrimmed(line.charCodeAt(vs))) vs++;
    while (ve > vs && isTrimmed(line.charCodeAt(ve - 1))) ve--;
    addHeader(m.headers, headerNames.get(line.slice(0, ne)), line.slice(vs, ve));
  }
  return first ? undefined : m;
}
