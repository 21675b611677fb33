// Bytes <-> typed SIP messages. The header section is read by parser.ts (linear time; the `sip`
// package's parser backtracks quadratically on hostile headers) and URIs by sip.parseUri; this
// module adds what it lacks for hostile input: bounded sizes, Content-Length checks per RFC 3261 §18.3,
// mandatory-header checks that yield a 400 instead of a silent drop, UTF-8 bodies (sip.js keeps bodies
// as latin1 strings and would count characters, not bytes), and serialization of Herald's own messages.
import { randomHex } from '../util/random.js';
import { gunzipSync, inflateRawSync, inflateSync } from 'node:zlib';
import sip, { type RawMessage, type RawNameAddr, type RawUri, type RawVia } from 'sip';
import { parseHead } from './parser.js';
import { decimalAt, headerAt, lineEnd, nextLine, skipBlanks, wordAt } from './scan.js';
import type { CSeq, Flow, HeaderList, NameAddr, Params, SipRequest, SipResponse, SipUri, Via } from './message.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The outcome of decoding one message. A 'bad' with `answer` is answered statelessly. */
export type Decoded =
  | { kind: 'request'; request: SipRequest }
  | { kind: 'response'; response: SipResponse }
  | { kind: 'bad'; why: string; answer?: { status: number; reason: string; to: RawMessage; headers?: HeaderList } };

const MANDATORY = ['via', 'call-id', 'from', 'to', 'cseq'] as const;

/** A decoded body may be at most this big (a small deflated body must not inflate without bound). */
export const MAX_DECODED_BODY_BYTES = 1024 * 1024;
/** The content codings Herald reads (RFC 3261 §20.12), for Accept-Encoding on a 415. */
export const ACCEPT_ENCODING = 'deflate, gzip, identity';

/**
 * Undoes a Content-Encoding (RFC 3261 §20.12; Linphone deflates the resource lists it sends). The
 * codings are undone last first; "deflate" is read as zlib data, as HTTP means it, or raw deflate.
 * Returns undefined for a coding Herald does not know or data that does not decode within the bound.
 */
function decodeContent(body: Buffer, encoding: string): Buffer | undefined {
  let out = body;
  const codings = encoding.split(',').map((c) => c.trim().toLowerCase()).filter((c) => c !== '' && c !== 'identity');
  try {
    for (const c of codings.reverse()) {
      const opts = { maxOutputLength: MAX_DECODED_BODY_BYTES };
      if (c === 'gzip' || c === 'x-gzip') out = gunzipSync(out, opts);
      else if (c === 'deflate') {
        try {
          out = inflateSync(out, opts);
        } catch {
          out = inflateRawSync(out, opts);
        }
      } else return undefined;
    }
  } catch {
    return undefined;
  }
  return out;
}

function uriText(u: string | RawUri | undefined): string {
  if (u === undefined) return '';
  return typeof u === 'string' ? u : sip.stringifyUri(u);
}

/** parseHead made `raw` and its params for this message alone: they are taken over, not copied. */
function nameAddr(raw: RawNameAddr): NameAddr {
  return { display: raw.name || undefined, uri: uriText(raw.uri).trim(), params: raw.params };
}

function nameAddrList(raw: unknown): NameAddr[] {
  if (!Array.isArray(raw)) return [];
  return (raw as RawNameAddr[]).filter((x) => x && x.uri !== undefined).map(nameAddr);
}

export function parseSipUri(s: string): SipUri | undefined {
  const u = sip.parseUri(s);
  if (!u || !u.host) return undefined;
  return {
    scheme: (u.schema ?? 'sip').toLowerCase(),
    user: u.user,
    host: u.host.toLowerCase(),
    port: u.port && Number.isFinite(u.port) ? u.port : undefined,
    params: { ...u.params },
  };
}



function otherHeaders(raw: RawMessage): Map<string, string> {
  const out = new Map<string, string>();
  const h = raw.headers;
  for (const name in h) {
    const value = h[name];
    if (typeof value === 'string') out.set(name, value);
  }
  return out;
}

/** The mandatory headers (RFC 3261 §8.1.1) absent or unreadable in a parsed head. */
function missingHeaders(h: RawMessage['headers']): string[] | undefined {
  let missing: string[] | undefined;
  for (const name of MANDATORY) {
    const v = h[name];
    if (v === undefined || (Array.isArray(v) && v.length === 0)) (missing ??= []).push(name);
  }
  return missing;
}

/** Decode one whole message: `head` is the header section (without the blank line), `body` the body bytes. */
export function decode(head: Buffer, body: Buffer, flow: Flow): Decoded {
  const raw = parseHead(head.toString('latin1'));
  if (!raw) return { kind: 'bad', why: 'unparseable start line or header' };
  const h = raw.headers;
  const isRequest = raw.method !== undefined;
  // sip.js swallows exceptions of its header parsers and leaves the header out; a header that is
  // present in the text but missing here was malformed.
  const missing = missingHeaders(h);
  if (missing !== undefined) {
    const viaOk = Array.isArray(h.via) && h.via.length > 0;
    const why = `Missing or malformed ${missing.map(headerDisplayName).join(', ')}`;
    if (!isRequest || !viaOk || raw.method === 'ACK') return { kind: 'bad', why };
    return { kind: 'bad', why, answer: { status: 400, reason: why, to: raw } };
  }
  const cseq = h.cseq as CSeq;
  if (!Number.isInteger(cseq.seq) || cseq.seq < 0 || cseq.seq >= 2 ** 31) {
    const why = 'Bad CSeq number';
    return isRequest && raw.method !== 'ACK' ? { kind: 'bad', why, answer: { status: 400, reason: why, to: raw } } : { kind: 'bad', why };
  }
  if (isRequest && cseq.method !== raw.method) {
    const why = 'CSeq method does not match request method';
    return raw.method === 'ACK' ? { kind: 'bad', why } : { kind: 'bad', why, answer: { status: 400, reason: why, to: raw } };
  }
  let text = '';
  const encoding = typeof h['content-encoding'] === 'string' ? h['content-encoding'] : typeof h['e'] === 'string' ? h['e'] : undefined;
  if (body.length > 0 && encoding !== undefined) {
    const decoded = decodeContent(body, encoding);
    if (decoded === undefined) {
      // RFC 3261 §8.2.3: a body in a coding the UAS cannot read is answered 415 with Accept-Encoding.
      const why = 'Unsupported Content-Encoding';
      return isRequest && raw.method !== 'ACK' ? { kind: 'bad', why, answer: { status: 415, reason: why, to: raw, headers: [['Accept-Encoding', ACCEPT_ENCODING]] } } : { kind: 'bad', why };
    }
    body = decoded;
  }
  if (body.length > 0) {
    try {
      text = utf8.decode(body);
    } catch {
      const why = 'Body is not valid UTF-8';
      return isRequest && raw.method !== 'ACK' ? { kind: 'bad', why, answer: { status: 400, reason: why, to: raw } } : { kind: 'bad', why };
    }
  }
  const callId = String(h['call-id']);
  const from = nameAddr(h.from!);
  const to = nameAddr(h.to!);
  const via = (h.via as RawVia[]).map((v): Via => ({ protocol: v.protocol, host: v.host, port: v.port, params: v.params }));
  const headers = otherHeaders(raw);
  const bodyBytes = body.length;
  if (isRequest) {
    const uri = uriText(raw.uri);
    return {
      kind: 'request',
      request: {
        callId, from, to, cseq, via, headers, body: text, bodyBytes,
        method: raw.method!,
        uri,
        ruri: parseSipUri(uri),
        contact: h.contact === '*' ? [] : nameAddrList(h.contact),
        recordRoute: nameAddrList(h['record-route']),
        route: nameAddrList(h.route),
        credentials: h['authorization'] ?? [],
        source: flow,
      },
    };
  }
  return {
    kind: 'response',
    response: {
      callId, from, to, cseq, via, headers, body: text, bodyBytes,
      status: raw.status!,
      reason: raw.reason ?? '',
      contact: h.contact === '*' ? [] : nameAddrList(h.contact),
      recordRoute: nameAddrList(h['record-route']),
      challenges: [...(h['www-authenticate'] ?? []), ...(h['proxy-authenticate'] ?? [])],
    },
  };
}

/** What a client transaction matches a response on (RFC 3261 §17.1.3). */
export interface ResponseKey {
  status: number;
  /** The top Via's branch. */
  branch: string;
  /** The CSeq method. */
  method: string;
}

const EQUALS = 0x3d;
const SEMI = 0x3b;
const COMMA = 0x2c;

/** Within head[from, end): the value of the `branch` parameter (";" blanks "branch" blanks "=" blanks token), or undefined. */
function branchParam(head: Buffer, from: number, end: number): string | undefined {
  for (let semi = head.indexOf(SEMI, from); semi >= 0 && semi < end; semi = head.indexOf(SEMI, semi + 1)) {
    const eq = headerAt(head, skipBlanks(head, semi + 1, end), end, 'branch', EQUALS);
    if (eq < 0) continue;
    const v = skipBlanks(head, eq, end);
    let e = v;
    while (e < end && head[e] !== SEMI && head[e] !== COMMA && head[e] !== 0x20 && head[e] !== 0x09) e++;
    return e > v ? head.toString('latin1', v, e) : undefined;
  }
  return undefined;
}

/** A CSeq value in head[from, end) ("digits blanks method"): the method, or undefined. */
function cseqMethod(head: Buffer, from: number, end: number): string | undefined {
  let i = skipBlanks(head, from, end);
  const digits = i;
  while (i < end && head[i]! >= 0x30 && head[i]! <= 0x39) i++;
  if (i === digits || i - digits > 10) return undefined;
  const m = skipBlanks(head, i, end);
  if (m === i) return undefined;
  let e = m;
  while (e < end && ((head[e]! | 0x20) >= 0x61 && (head[e]! | 0x20) <= 0x7a)) e++;
  if (e === m || skipBlanks(head, e, end) !== end) return undefined;
  return head.toString('latin1', m, e); // method names are case-sensitive (RFC 3261 §7.1)
}

/**
 * Reads only the status line, the top Via's branch and the CSeq method of a response's header
 * section, so that a response whose transaction needs nothing more (a 200 to a NOTIFY) is matched
 * without the full parse — and from the bytes, without decoding the head to a string (issue 9).
 * Undefined when it is not that simple (not a response, folded lines, no Via or CSeq, a bad status):
 * the full decode then has the last word. `to`: where the header section ends, when `head` holds more
 * (a whole datagram).
 */
export function peekResponse(head: Buffer, to = head.length): ResponseKey | undefined {
  // "SIP/2.0 " then three digits.
  if (to < 12 || !wordAt(head, 0, 8, 'sip/2.0 ') || head[0] !== 0x53 || head[1] !== 0x49 || head[2] !== 0x50) return undefined;
  const status = decimalAt(head, 8, 11);
  if (!(status >= 100 && status <= 699) || (to > 11 && head[11] !== 0x20)) return undefined;
  let branch: string | undefined;
  let method: string | undefined;
  let pos = nextLine(head, 0);
  while (pos < to && (branch === undefined || method === undefined)) {
    const c = head[pos];
    if (c === 0x20 || c === 0x09) return undefined; // a folded line: leave it to the parser
    const end = lineEnd(head, pos);
    if (branch === undefined) {
      let v = headerAt(head, pos, end, 'via');
      if (v < 0) v = headerAt(head, pos, end, 'v');
      if (v >= 0) {
        // The top Via: the first value of the first Via line.
        const comma = head.indexOf(COMMA, v);
        branch = branchParam(head, v, comma >= 0 && comma < end ? comma : end);
        if (branch === undefined) return undefined;
      }
    }
    if (method === undefined) {
      const v = headerAt(head, pos, end, 'cseq');
      if (v >= 0) {
        method = cseqMethod(head, v, end);
        if (method === undefined) return undefined;
      }
    }
    pos = nextLine(head, pos);
  }
  return branch !== undefined && method !== undefined ? { status, branch, method } : undefined;
}

function headerDisplayName(n: string): string {
  return n === 'call-id' ? 'Call-ID' : n === 'cseq' ? 'CSeq' : n.replace(/\b[a-z]/g, (c) => c.toUpperCase());
}

// ---- serialization -------------------------------------------------------------------------------

export function formatParams(p: Params): string {
  let s = '';
  for (const k of Object.keys(p)) {
    const v = p[k];
    s += v === null || v === undefined ? `;${k}` : `;${k}=${v}`;
  }
  return s;
}

export function formatNameAddr(na: NameAddr): string {
  const display = na.display ? `${na.display} ` : '';
  return `${display}<${na.uri}>${formatParams(na.params)}`;
}

export function formatVia(v: Via): string {
  return `SIP/2.0/${v.protocol.toUpperCase()} ${v.host}${v.port ? `:${v.port}` : ''}${formatParams(v.params)}`;
}

function bodyPart(body: string | undefined): { bytes: Buffer | undefined; length: number } {
  if (!body) return { bytes: undefined, length: 0 };
  const bytes = Buffer.from(body, 'utf8');
  return { bytes, length: bytes.length };
}

/** A message from its head so far (lines, each CRLF-ended) and its body: Content-Type/Length, the blank line, the body. */
function finish(head: string, body: string | undefined, contentType: string | undefined): Buffer {
  const b = bodyPart(body);
  const h = Buffer.from(`${head}${b.bytes && contentType ? `Content-Type: ${contentType}\r\n` : ''}Content-Length: ${b.length}\r\n\r\n`, 'utf8');
  return b.bytes ? Buffer.concat([h, b.bytes]) : h;
}

export interface ResponseSpec {
  status: number;
  reason: string;
  /** The To tag to add when the request's To has none (dialog-creating or any final response). */
  toTag?: string;
  headers?: HeaderList;
  body?: string;
  contentType?: string;
}

/**
 * RFC 3261 §8.2.6.2: a UAS adds a To tag to every response but 100 (Trying) when the request's To has
 * none. `given` is the dialog's own tag when the response creates one; otherwise any fresh tag will do
 * (a retransmitted response is replayed byte for byte, so it keeps the tag).
 */
function responseTo(to: NameAddr, status: number, given: string | undefined): NameAddr {
  if (to.params['tag'] || status === 100) return to;
  return { ...to, params: { ...to.params, tag: given ?? randomHex(8) } };
}

/** A response to a typed request (RFC 3261 §8.2.6: Via, From, To, Call-ID and CSeq copied). */
export function encodeResponse(rq: SipRequest, spec: ResponseSpec): Buffer {
  const to = responseTo(rq.to, spec.status, spec.toTag);
  // One string, written once into one Buffer (no array of lines, no join).
  let head = `SIP/2.0 ${spec.status} ${spec.reason}\r\n`;
  for (const v of rq.via) head += `Via: ${formatVia(v)}\r\n`;
  head += `From: ${formatNameAddr(rq.from)}\r\nTo: ${formatNameAddr(to)}\r\nCall-ID: ${rq.callId}\r\nCSeq: ${rq.cseq.seq} ${rq.cseq.method}\r\n`;
  for (const [n, v] of spec.headers ?? []) head += `${n}: ${v}\r\n`;
  return finish(head, spec.body, spec.contentType);
}

/** A stateless answer to a message the codec could read only in part (a 400 for a missing header). */
export function encodeRawResponse(raw: RawMessage, status: number, reason: string, headers: HeaderList = []): Buffer {
  const h = raw.headers;
  let head = `SIP/2.0 ${status} ${reason}\r\n`;
  for (const v of h.via ?? []) head += `Via: ${formatVia({ protocol: v.protocol, host: v.host, port: v.port, params: v.params })}\r\n`;
  if (h.from) head += `From: ${formatNameAddr(nameAddr(h.from))}\r\n`;
  if (h.to) head += `To: ${formatNameAddr(responseTo(nameAddr(h.to), status, undefined))}\r\n`;
  if (h['call-id']) head += `Call-ID: ${String(h['call-id'])}\r\n`;
  if (h.cseq && typeof h.cseq === 'object') head += `CSeq: ${h.cseq.seq} ${h.cseq.method}\r\n`;
  for (const [n, v] of headers) head += `${n}: ${v}\r\n`;
  return finish(head, undefined, undefined);
}

export interface RequestSpec {
  method: string;
  uri: string;
  via: Via;
  from: NameAddr;
  to: NameAddr;
  callId: string;
  cseq: number;
  maxForwards?: number;
  /** Vias below the top one (a proxied request). */
  viaBelow?: readonly Via[];
  route?: readonly string[];
  contact?: string;
  headers?: HeaderList;
  body?: string;
  contentType?: string;
}

export function formatHeaderLines(headers: HeaderList | undefined): string {
  let s = '';
  for (const [n, v] of headers ?? []) s += `${n}: ${v}\r\n`;
  return s;
}

/**
 * The header lines of a request that are the same in every request of a dialog (RFC 3261 §12.2.1.1:
 * From and To with their tags, Call-ID, the route set, Contact) and any fixed extra headers: kept
 * serialized by a dialog that sends many (a notifier's NOTIFYs). Each line ends in CRLF. A proxied
 * request's Vias below the top one come first, so that they follow the top Via assembleRequest writes.
 */
export function requestFixedLines(r: Pick<RequestSpec, 'viaBelow' | 'maxForwards' | 'route' | 'from' | 'to' | 'callId' | 'contact' | 'headers'>): string {
  let s = '';
  for (const v of r.viaBelow ?? []) s += `Via: ${formatVia(v)}\r\n`;
  s += `Max-Forwards: ${r.maxForwards ?? 70}\r\n`;
  if (r.route && r.route.length > 0) s += `Route: ${r.route.join(', ')}\r\n`;
  s += `From: ${formatNameAddr(r.from)}\r\nTo: ${formatNameAddr(r.to)}\r\nCall-ID: ${r.callId}\r\n`;
  if (r.contact) s += `Contact: ${r.contact}\r\n`;
  return s + formatHeaderLines(r.headers);
}

/** A request from its parts: start line, Via, the fixed lines, CSeq, more lines (CRLF-ended), body bytes. */
export function assembleRequest(method: string, uri: string, via: Via, fixed: string, cseq: number, more: string, body: Buffer | undefined, contentType: string | undefined): Buffer {
  const withBody = body !== undefined && body.length > 0;
  const head = `${method} ${uri} SIP/2.0\r\nVia: ${formatVia(via)}\r\n${fixed}CSeq: ${cseq} ${method}\r\n${more}${withBody && contentType ? `Content-Type: ${contentType}\r\n` : ''}Content-Length: ${withBody ? body.length : 0}\r\n\r\n`;
  const h = Buffer.from(head, 'utf8');
  return withBody ? Buffer.concat([h, body], h.length + body.length) : h;
}

/**
 * A dialog's requests serialized once but for what changes per request, so that each request is one
 * Buffer written in place (issue 9: a NOTIFY used to be built header by header, then concatenated).
 * `fixed` is requestFixedLines()' text. Per protocol of the top Via (rebuilt when the target's
 * transport or Herald's sent-by changes) two byte runs are kept: the start line and the Via up to its
 * branch, then the rest of the Via, the fixed lines and "CSeq: ". Per request only the branch, the
 * CSeq line with the caller's lines (`more`, CRLF-ended), Content-Type/Length and the body are written.
 */
export class RequestTemplate {
  private protocol = '';
  private host = '';
  private port: number | undefined = undefined;
  private head: Buffer = Buffer.alloc(0);
  private middle: Buffer = Buffer.alloc(0);

  constructor(
    readonly method: string,
    readonly uri: string,
    private readonly fixed: string,
  ) {}

  /** The request for one try: `via` without its branch (the branch is given apart). */
  encode(protocol: string, host: string, port: number | undefined, branch: string, cseq: number, more: string, body: Buffer | undefined, contentType: string | undefined): Buffer {
    if (protocol !== this.protocol || host !== this.host || port !== this.port || this.head.length === 0) {
      this.protocol = protocol;
      this.host = host;
      this.port = port;
      // The same Via text formatVia() writes for { branch, rport } (rport over UDP only, RFC 3581).
      this.head = Buffer.from(`${this.method} ${this.uri} SIP/2.0\r\nVia: SIP/2.0/${protocol.toUpperCase()} ${host}${port ? `:${port}` : ''};branch=`, 'utf8');
      this.middle = Buffer.from(`${protocol === 'UDP' ? ';rport' : ''}\r\n${this.fixed}CSeq: `, 'utf8');
    }
    const withBody = body !== undefined && body.length > 0;
    const tail = `${cseq} ${this.method}\r\n${more}${withBody && contentType ? `Content-Type: ${contentType}\r\n` : ''}Content-Length: ${withBody ? body.length : 0}\r\n\r\n`;
    const tailBytes = Buffer.byteLength(tail, 'utf8');
    const size = this.head.length + branch.length + this.middle.length + tailBytes + (withBody ? body.length : 0);
    const out = Buffer.allocUnsafe(size);
    let at = this.head.copy(out, 0);
    at += out.write(branch, at, 'latin1'); // a branch is a token: ASCII
    at += this.middle.copy(out, at);
    at += out.write(tail, at, tailBytes, 'utf8');
    if (withBody) body.copy(out, at);
    return out;
  }
}

export function encodeRequest(r: RequestSpec): Buffer {
  return assembleRequest(r.method, r.uri, r.via, requestFixedLines(r), r.cseq, '', r.body ? Buffer.from(r.body, 'utf8') : undefined, r.contentType);
}
