// multipart/related (RFC 2046 §5.1, RFC 2387) as RFC 4662 §5 uses it for list NOTIFY bodies:
// the root part is the RLMI document, the other parts carry each resource's state, and a nested
// list is itself a multipart/related part (the caller renders or parses it and recurses).
//
// Bodies are strings (Herald's parts are all UTF-8 XML); the SIP layer computes Content-Length
// in bytes. Parsing is a linear scan with hard limits on part count and size, so hostile input
// can cost at most one pass. Pure apart from the random boundary and Content-ID generators.

import { randomBytes } from 'node:crypto';
import { CT, mediaType } from './content-types.js';
import { toReasonPhrase } from './xml.js';
import { BoundedMemo } from '../util/memo.js';

export interface BodyPart {
  /** Full header value, parameters included, e.g. `application/pidf+xml;charset="UTF-8"`. */
  contentType: string;
  /** Without the enclosing <>. */
  contentId?: string;
  /** Any further part headers, in order. Content-Type, Content-ID and Content-Transfer-Encoding
   *  are never in this list: they are represented (or normalized) by the other fields. */
  headers?: [string, string][];
  body: string;
}

export interface Multipart {
  /** Media type of the root part (RFC 2387 §3.1 `type` parameter), e.g. application/rlmi+xml. */
  type: string;
  /** Content-ID of the root part, without <>. Absent: the first part is the root (RFC 2387 §3.2). */
  start?: string;
  boundary: string;
  parts: BodyPart[];
  /**
   * How part Content-IDs are written: 'standard' (default) is `Content-ID: <id>` (RFC 2045 §7, RFC
   * 2392); 'bare' is `Content-Id: id`, for the one client family that needs it (see
   * src/formats/client-quirks.ts). Parsing accepts both.
   */
  contentIdStyle?: 'standard' | 'bare';
}

export interface MultipartLimits { maxParts: number; maxBytes: number }
export const DEFAULT_MULTIPART_LIMITS: MultipartLimits = Object.freeze({ maxParts: 1000, maxBytes: 4 * 1024 * 1024 });

/** Every multipart failure. The message is safe as a SIP reason phrase. */
export class MultipartError extends Error {
  constructor(message: string) {
    super(toReasonPhrase(message));
    this.name = 'MultipartError';
  }
}

const bad = (what: string): MultipartError => new MultipartError(`Bad multipart body: ${what}`);

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** RFC 2046 §5.1.1: 1–70 bchars, the last one not a space. */
const BOUNDARY = /^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$/;
/** What we accept inside <...> of a Content-ID or start parameter: no whitespace, brackets or quotes. */
const CONTENT_ID = /^[^\s<>"\\]+$/;
const ALNUM = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

// ---------------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------------

/** n random alphanumerics (rejection sampling, so every character is equally likely). */
function randomAlnum(n: number): string {
  let out = '';
  while (out.length < n) {
    for (const b of randomBytes(n * 2)) {
      if (b < 248) out += ALNUM[b % 62] as string; // 248 = 4 * 62
      if (out.length === n) break;
    }
  }
  return out;
}

/** The random part every boundary of this process starts with (16 alphanumerics, ~95 bits). */
const BOUNDARY_PREFIX = randomAlnum(16);
let boundaries = 0;

/**
 * A fresh boundary: 24 alphanumerics, so it never needs quoting, can never be a prefix-collision
 * with another boundary we make, and practically never occurs in a part. A random per-process prefix
 * and a counter (a list NOTIFY needs one per NOTIFY: drawing 48 random bytes each time showed in the
 * profile); one that does occur in a part is replaced by a wholly random one (renderMultipart), so a
 * publisher who guesses the next ones gains nothing.
 */
export function newBoundary(): string {
  let n = boundaries++;
  if (boundaries > 62 ** 8 - 1) boundaries = 0;
  let tail = '';
  for (let i = 0; i < 8; i++) {
    tail = (ALNUM[n % 62] as string) + tail;
    n = Math.floor(n / 62);
  }
  return BOUNDARY_PREFIX + tail;
}

const DOMAIN = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;
const DOMAIN_LITERAL = /^\[[0-9A-Fa-f:.]+\]$/;

/**
 * A globally unique Content-ID (RFC 2045 §7, RFC 5322 msg-id without <>): random@domain, as
 * RFC 4662's examples do. The same value goes into RLMI `cid` attributes and `start`.
 */
export function newContentId(domain: string): string {
  const d = domain.trim().toLowerCase();
  if (!DOMAIN.test(d) && !DOMAIN_LITERAL.test(d)) throw new MultipartError('cannot make a Content-ID: invalid domain');
  return `${randomAlnum(12)}@${d}`;
}

// ---------------------------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------------------------

const RESERVED_HEADERS: ReadonlySet<string> = new Set(['content-type', 'content-id', 'content-transfer-encoding']);

/**
 * Whether a part's Content-Type is valid, known once per type: a list NOTIFY has a part per member,
 * all of one or two types, and parsing each again showed in the profile.
 */
const validType = new BoundedMemo((ct: string): boolean => !/[\r\n]/.test(ct) && mediaType(ct) !== undefined, 64);

function checkPart(p: BodyPart, index: number): void {
  if (!validType.get(p.contentType)) throw new MultipartError(`part ${index + 1}: invalid Content-Type`);
  if (p.contentId !== undefined && !CONTENT_ID.test(p.contentId)) {
    throw new MultipartError(`part ${index + 1}: invalid Content-ID`);
  }
  for (const [name, value] of p.headers ?? []) {
    if (!TOKEN.test(name) || /[\r\n]/.test(value)) throw new MultipartError(`part ${index + 1}: invalid header`);
    if (RESERVED_HEADERS.has(name.toLowerCase())) throw new MultipartError(`part ${index + 1}: header ${name} is set by the renderer`);
  }
}

/**
 * Renders a multipart/related body with CRLF line ends. Every part gets
 * `Content-Transfer-Encoding: binary` (as in RFC 4662 §5.4's examples), then Content-ID, then
 * Content-Type; `type` and `start` are quoted (they hold tspecials), a token boundary is not. Throws MultipartError for a malformed description: no parts,
 * a bad type, a `start` naming no part, a root whose media type is not `type` (RFC 2387 §3.1),
 * duplicate Content-IDs, header injection. If `m.boundary` occurs in any part, a fresh boundary
 * is used instead; the returned contentType always names the boundary actually used.
 */
export function renderMultipart(m: Multipart): { contentType: string; body: string } {
  if (m.parts.length === 0) throw new MultipartError('a multipart body needs at least one part');
  const rootType = mediaType(m.type);
  if (rootType === undefined || /[\r\n"]/.test(m.type)) throw new MultipartError('invalid root type');
  m.parts.forEach(checkPart);
  const ids = new Set<string>();
  for (const p of m.parts) {
    if (p.contentId === undefined) continue;
    if (ids.has(p.contentId)) throw new MultipartError('duplicate Content-ID');
    ids.add(p.contentId);
  }
  let root: BodyPart | undefined = m.parts[0];
  if (m.start !== undefined) {
    if (!CONTENT_ID.test(m.start)) throw new MultipartError('invalid start parameter');
    root = m.parts.find((p) => p.contentId === m.start);
    if (root === undefined) throw new MultipartError('start names no part');
  }
  if (root === undefined || mediaType(root.contentType) !== rootType) {
    throw new MultipartError('the root part must have the media type given as type');
  }
  if (!BOUNDARY.test(m.boundary)) throw new MultipartError('invalid boundary');

  // RFC 2046 §5.1.1: the boundary must not appear inside any encapsulated part. We check the
  // whole string, not only line starts, which also keeps nested boundaries from clashing.
  let boundary = m.boundary;
  const collides = (b: string): boolean => m.parts.some((p) => p.body.includes(b));
  for (let attempt = 0; collides(boundary); attempt++) {
    if (attempt === 8) throw new MultipartError('could not find a boundary absent from every part');
    boundary = randomAlnum(24);
  }

  let body = '';
  for (const p of m.parts) {
    body += `--${boundary}\r\nContent-Transfer-Encoding: binary\r\n`;
    if (p.contentId !== undefined) body += m.contentIdStyle === 'bare' ? `Content-Id: ${p.contentId}\r\n` : `Content-ID: <${p.contentId}>\r\n`;
    body += `Content-Type: ${p.contentType.trim()}\r\n`;
    for (const [name, value] of p.headers ?? []) body += `${name}: ${value}\r\n`;
    // The CRLF before each delimiter belongs to the delimiter (RFC 2046 §5.1.1), so the part's
    // content is exactly p.body.
    body += `\r\n${p.body}\r\n`;
  }
  body += `--${boundary}--\r\n`;

  let contentType = `${CT.MULTIPART_RELATED};type="${rootType}"`;
  if (m.start !== undefined) contentType += `;start="<${m.start}>"`;
  // A boundary that is a token goes unquoted (RFC 2045 §5.1 needs quotes only for tspecials): belle-sip
  // (Linphone) compares the quoted string, quotes included, with the body and crashes. Ours always are.
  contentType += TOKEN.test(boundary) ? `;boundary=${boundary}` : `;boundary="${boundary}"`;
  return { contentType, body };
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/** Parameters of a Content-Type value (RFC 2045 §5.1), names lowercased, quoted strings unescaped.
 *  Lenient where peers are: unquoted values may hold tspecials ('/', '<', '@'), a trailing ';'
 *  is fine. Duplicate parameters are refused: two boundaries would make the body ambiguous. */
function parseParams(value: string): Map<string, string> {
  const params = new Map<string, string>();
  let i = value.indexOf(';');
  if (i === -1) return params;
  const n = value.length;
  while (i < n) {
    while (i < n && (value[i] === ';' || value[i] === ' ' || value[i] === '\t')) i++;
    if (i >= n) break;
    const eq = value.indexOf('=', i);
    if (eq === -1) throw bad('malformed Content-Type parameter');
    const name = value.slice(i, eq).trim().toLowerCase();
    if (!TOKEN.test(name)) throw bad('malformed Content-Type parameter');
    i = eq + 1;
    while (i < n && (value[i] === ' ' || value[i] === '\t')) i++;
    let v = '';
    if (value[i] === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const ch = value[i] as string;
        if (ch === '\\' && i + 1 < n) { v += value[i + 1]; i += 2; continue; }
        if (ch === '"') { closed = true; i++; break; }
        v += ch;
        i++;
      }
      if (!closed) throw bad('unterminated quoted string in Content-Type');
      while (i < n && value[i] !== ';') {
        if (value[i] !== ' ' && value[i] !== '\t') throw bad('malformed Content-Type parameter');
        i++;
      }
    } else {
      const semi = value.indexOf(';', i);
      const end = semi === -1 ? n : semi;
      v = value.slice(i, end).trim();
      i = end;
    }
    if (params.has(name)) throw bad(`duplicate ${name} parameter`);
    params.set(name, v);
  }
  return params;
}

function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x7f) return true;
  }
  return false;
}

function stripAngles(s: string): string {
  const t = s.trim();
  return t.startsWith('<') && t.endsWith('>') ? t.slice(1, -1).trim() : t;
}

interface Delimiter { start: number; next: number; close: boolean }

/**
 * Finds the next delimiter line at or after `from`: "--boundary" at the start of a line, then
 * "--" for the close delimiter, then only transport padding (spaces, tabs) to the end of the line.
 * RFC 2046 lets a reader match on the prefix alone; requiring the whole line keeps a nested part
 * whose boundary merely starts with ours from ending the outer part early.
 */
function findDelimiter(text: string, dash: string, from: number): Delimiter | undefined {
  for (let i = text.indexOf(dash, from); i !== -1; i = text.indexOf(dash, i + 1)) {
    if (i !== 0 && text[i - 1] !== '\n') continue;
    let j = i + dash.length;
    const close = text.startsWith('--', j);
    if (close) j += 2;
    while (text[j] === ' ' || text[j] === '\t') j++;
    if (j === text.length) return { start: i, next: j, close };
    if (text[j] === '\n') return { start: i, next: j + 1, close };
    if (text[j] === '\r' && text[j + 1] === '\n') return { start: i, next: j + 2, close };
  }
  return undefined;
}

function decodeQuotedPrintable(s: string): string {
  const bytes: number[] = [];
  const text = s.replace(/=\r?\n/g, ''); // soft line breaks (RFC 2045 §6.7 rule 5)
  for (let i = 0; i < text.length; i++) {
    if (text[i] === '=' && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      // Keep surrogate pairs together so a stray non-ASCII character survives as itself.
      const cp = text.codePointAt(i) ?? 0;
      const whole = String.fromCodePoint(cp);
      for (const b of Buffer.from(whole, 'utf8')) bytes.push(b);
      i += whole.length - 1;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

function decodeBody(body: string, cte: string | undefined, index: number): string {
  switch (cte?.trim().toLowerCase()) {
    case undefined: case '7bit': case '8bit': case 'binary':
      return body;
    case 'base64': {
      const compact = body.replace(/[ \t\r\n]/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact)) throw bad(`part ${index + 1}: invalid base64`);
      return Buffer.from(compact, 'base64').toString('utf8');
    }
    case 'quoted-printable':
      return decodeQuotedPrintable(body);
    default:
      throw bad(`part ${index + 1}: unsupported Content-Transfer-Encoding`);
  }
}

/** Splits one encapsulated part into headers and body (RFC 2046 §5.1: header area, blank line,
 *  body). Lenient like most SIP stacks: a part that goes straight from its headers into its body
 *  without the blank line (an error seen even in RFC examples) still parses. */
function parsePart(text: string, index: number): BodyPart {
  const raw: [string, string][] = [];
  let p = 0;
  while (p < text.length) {
    const nl = text.indexOf('\n', p);
    const lineEnd = nl === -1 ? text.length : nl;
    const next = nl === -1 ? text.length : nl + 1;
    const line = text.slice(p, text[lineEnd - 1] === '\r' ? lineEnd - 1 : lineEnd);
    if (line === '') { p = next; break; }
    const last = raw[raw.length - 1];
    if ((line[0] === ' ' || line[0] === '\t') && last !== undefined) {
      last[1] = `${last[1]} ${line.trim()}`.trim(); // folded header (RFC 5322 §2.2.3)
      p = next;
      continue;
    }
    const m = /^([!#$%&'*+.^_`|~0-9A-Za-z-]+)[ \t]*:(.*)$/.exec(line);
    if (m === null) break; // not a header: the body starts here
    raw.push([m[1] as string, (m[2] as string).trim()]);
    p = next;
  }
  let contentType: string | undefined;
  let contentId: string | undefined;
  let cte: string | undefined;
  const headers: [string, string][] = [];
  for (const [name, value] of raw) {
    switch (name.toLowerCase()) {
      case 'content-type':
        if (contentType !== undefined) throw bad(`part ${index + 1}: duplicate Content-Type`);
        contentType = value;
        break;
      case 'content-id':
        if (contentId !== undefined) throw bad(`part ${index + 1}: duplicate Content-ID`);
        contentId = stripAngles(value);
        break;
      case 'content-transfer-encoding':
        if (cte !== undefined) throw bad(`part ${index + 1}: duplicate Content-Transfer-Encoding`);
        cte = value;
        break;
      default:
        headers.push([name, value]);
    }
  }
  if (contentType !== undefined && mediaType(contentType) === undefined) throw bad(`part ${index + 1}: invalid Content-Type`);
  const part: BodyPart = {
    // RFC 2046 §5.1: a part without Content-Type is text/plain (charset us-ascii).
    contentType: contentType ?? 'text/plain',
    body: decodeBody(text.slice(p), cte, index),
  };
  if (contentId !== undefined && contentId !== '') part.contentId = contentId;
  if (headers.length > 0) part.headers = headers;
  return part;
}

/**
 * Parses a multipart body given its Content-Type header value. Accepts any multipart/* (RFC 4662
 * nests multipart/signed too; the caller checks the subtype with mediaType()), quoted or bare
 * parameters, CRLF or bare LF line ends, folded headers, a preamble and an epilogue. Parts that
 * are themselves multipart come back as ordinary parts with their own Content-Type.
 *
 * `type` is the `type` parameter (lowercased) or, when a peer omits it, the root part's media
 * type. A `start` that names no part is an error (RFC 2387 §3.2). base64 and quoted-printable
 * parts are decoded; 7bit, 8bit and binary are taken as they are.
 *
 * Throws MultipartError for: not multipart, no or bad boundary, body over maxBytes (UTF-8),
 * more than maxParts parts, no delimiter, no close delimiter, no parts, malformed part headers.
 */
export function parseMultipart(contentTypeHeader: string, body: string, limits?: Partial<MultipartLimits>): Multipart {
  const maxParts = limits?.maxParts ?? DEFAULT_MULTIPART_LIMITS.maxParts;
  const maxBytes = limits?.maxBytes ?? DEFAULT_MULTIPART_LIMITS.maxBytes;
  // A UTF-16 unit never encodes to fewer than one byte: cheap early reject before the exact count.
  if (body.length > maxBytes || Buffer.byteLength(body, 'utf8') > maxBytes) {
    throw new MultipartError(`multipart body too large (limit ${maxBytes} bytes)`);
  }
  const header = contentTypeHeader.replace(/\r?\n[ \t]+/g, ' '); // unfold
  const mt = mediaType(header);
  if (mt === undefined || !mt.startsWith('multipart/')) throw bad('Content-Type is not multipart');
  const params = parseParams(header);
  const boundary = params.get('boundary');
  // Liberal on the character set (peers use '%', '!', ...), strict on what would break parsing.
  if (boundary === undefined || boundary.length === 0 || boundary.length > 70 || hasControl(boundary)) {
    throw bad('missing or invalid boundary parameter');
  }
  const dash = `--${boundary}`;

  const first = findDelimiter(body, dash, 0); // whatever precedes it is preamble
  if (first === undefined) throw bad('no boundary delimiter found');
  if (first.close) throw bad('no body parts');
  const parts: BodyPart[] = [];
  let cur = first;
  for (;;) {
    const next = findDelimiter(body, dash, cur.next);
    if (next === undefined) throw bad('missing close delimiter');
    if (parts.length >= maxParts) throw new MultipartError(`too many body parts (limit ${maxParts})`);
    // The line break before the delimiter is part of the delimiter, not of the content.
    let end = next.start;
    if (end > cur.next && body[end - 1] === '\n') end--;
    if (end > cur.next && body[end - 1] === '\r') end--;
    parts.push(parsePart(body.slice(cur.next, Math.max(end, cur.next)), parts.length));
    if (next.close) break; // anything after the close delimiter is epilogue
    cur = next;
  }

  const typeParam = params.get('type');
  const startParam = params.get('start');
  const m: Multipart = { type: '', boundary, parts };
  let root: BodyPart | undefined = parts[0];
  if (startParam !== undefined && startParam !== '') {
    const start = stripAngles(startParam);
    root = parts.find((p) => p.contentId === start);
    if (root === undefined) throw bad('start parameter names no part');
    m.start = start;
  }
  m.type = (typeParam !== undefined && typeParam !== '' ? typeParam.trim().toLowerCase() : undefined) ??
    mediaType(root?.contentType) ?? '';
  return m;
}

/** The root part: the one `start` names, else the first (RFC 2387 §3.2). */
export function rootPart(m: Multipart): BodyPart | undefined {
  if (m.start === undefined) return m.parts[0];
  return m.parts.find((p) => p.contentId === m.start);
}
