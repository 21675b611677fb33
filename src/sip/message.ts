// Herald's typed SIP messages. Network input is parsed once (src/sip/codec.ts) into these values;
// nothing past the SIP layer touches the `sip` package's untyped objects.

export type Protocol = 'UDP' | 'TCP' | 'TLS' | 'WS';

/** Where a message came from or goes to: a transport 5-tuple as far as Herald can name it. */
export interface Flow {
  protocol: Protocol;
  address: string;
  port: number;
  /** Which of Herald's listeners it arrived on (for connection-oriented replies). */
  localPort?: number;
  /**
   * TLS only: the names (certificate subject CN and DNS subjectAltNames) of a peer whose client
   * certificate verified against `sip.tls_ca`. Absent: no verified certificate.
   */
  tlsNames?: readonly string[];
  /** Outbound TLS: the name the peer's certificate must carry (RFC 5922 §4), when not the address. */
  serverName?: string;
}

export type Params = Record<string, string | null>;

export interface SipUri {
  scheme: string;
  user: string | undefined;
  host: string;
  port: number | undefined;
  params: Params;
}

export interface NameAddr {
  display: string | undefined;
  /** The URI exactly as sent (for echoing and dialog matching). */
  uri: string;
  params: Params;
}

export interface Via {
  protocol: string;
  host: string;
  port: number | undefined;
  params: Params;
}

export interface CSeq {
  seq: number;
  method: string;
}

interface MessageCommon {
  callId: string;
  from: NameAddr;
  to: NameAddr;
  cseq: CSeq;
  via: Via[];
  /** Every other header, by lower-case full name; several instances joined with ", ". */
  headers: ReadonlyMap<string, string>;
  /** The body decoded as UTF-8 ('' if none). */
  body: string;
  /** The body's size in bytes on the wire. */
  bodyBytes: number;
}

/** One Authorization header (RFC 3261 §22.4): the scheme and its parameters, quotes removed. */
export interface Credentials {
  scheme: string;
  params: Record<string, string>;
}

export interface SipRequest extends MessageCommon {
  method: string;
  uri: string;
  /** The Request-URI parsed, undefined when it is not a sip/sips URI Herald can read. */
  ruri: SipUri | undefined;
  contact: NameAddr[];
  recordRoute: NameAddr[];
  route: NameAddr[];
  /** Authorization headers (Proxy-Authorization is a proxy's business, not Herald's). */
  credentials: Credentials[];
  source: Flow;
}

export interface SipResponse extends MessageCommon {
  status: number;
  reason: string;
  contact: NameAddr[];
  recordRoute: NameAddr[];
  /** WWW-Authenticate and Proxy-Authenticate challenges (for Herald as a client upstream). */
  challenges: Credentials[];
}

/** A header to put on an outgoing message; values are written as given. */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export interface OutgoingRequest {
  method: string;
  uri: string;
  callId: string;
  from: NameAddr;
  to: NameAddr;
  cseq: number;
  route?: readonly string[];
  contact?: string;
  headers?: HeaderList;
  body?: string;
  contentType?: string;
  /** A proxy's request (RFC 3261 §16.6): the received Via headers, kept below Herald's own. */
  viaBelow?: readonly Via[];
  /** Default 70; a proxy sends the received value less one (RFC 3261 §16.6 step 3). */
  maxForwards?: number;
}

export function header(m: { headers: ReadonlyMap<string, string> }, name: string): string | undefined {
  return m.headers.get(name.toLowerCase());
}

export function tagOf(na: NameAddr): string | undefined {
  const t = na.params['tag'];
  return t ?? undefined;
}

/** `base` with every header named in `extra` replaced by extra's values (case-insensitive names). */
export function mergeHeaders(base: HeaderList, extra: HeaderList): HeaderList {
  if (extra.length === 0) return base;
  // Both lists are a handful of headers (every answer has one): compared pairwise, no set built.
  const out: (readonly [string, string])[] = [];
  for (const h of base) if (!extra.some(([n]) => sameName(n, h[0]))) out.push(h);
  for (const h of extra) out.push(h);
  return out;
}

function sameName(a: string, b: string): boolean {
  return a.length === b.length && (a === b || a.toLowerCase() === b.toLowerCase());
}
