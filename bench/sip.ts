// The load generator's SIP: requests from string templates, and the least parsing that lets it match
// responses (top Via branch, status, SIP-ETag) and answer NOTIFYs (Via, From, To, Call-ID and CSeq
// copied verbatim). Deliberately not a SIP parser: the generator must stay cheaper than the server.

export interface Parsed {
  response: boolean;
  /** Status code of a response, 0 for a request. */
  status: number;
  /** Method of a request, '' for a response. */
  method: string;
  /** Branch of the top Via. */
  branch: string;
  /** SIP-ETag of a response, if any. */
  etag: string | undefined;
  /** For requests: the header lines a response copies, each ending in CRLF. */
  copied: string;
  /** Index where the body starts. */
  bodyStart: number;
}

function branchOf(msg: string, from: number, to: number): string {
  const i = msg.indexOf('branch=', from);
  if (i < 0 || i >= to) return '';
  let j = i + 7;
  for (; j < to; j++) {
    const c = msg.charCodeAt(j);
    if (c === 59 /* ; */ || c === 44 /* , */ || c === 32 || c === 9 || c === 13) break;
  }
  return msg.slice(i + 7, j);
}

/** Reads what the generator needs from one datagram (latin1 string); undefined if not SIP-shaped. */
export function parseMessage(msg: string): Parsed | undefined {
  const headEnd = msg.indexOf('\r\n\r\n');
  const firstEol = msg.indexOf('\r\n');
  if (headEnd < 0 || firstEol < 0) return undefined;
  const response = msg.startsWith('SIP/2.0 ');
  const status = response ? Number(msg.slice(8, 11)) : 0;
  const method = response ? '' : msg.slice(0, msg.indexOf(' '));
  let branch = '';
  let etag: string | undefined;
  let copied = '';
  let pos = firstEol + 2;
  while (pos < headEnd) {
    let eol = msg.indexOf('\r\n', pos);
    if (eol < 0 || eol > headEnd) eol = headEnd;
    const colon = msg.indexOf(':', pos);
    if (colon > pos && colon < eol && colon - pos <= 16) {
      const name = msg.slice(pos, colon).trim().toLowerCase();
      switch (name) {
        case 'via':
        case 'v':
          if (branch === '') branch = branchOf(msg, colon, eol);
          if (!response) copied += msg.slice(pos, eol + 2);
          break;
        case 'from':
        case 'f':
        case 'to':
        case 't':
        case 'call-id':
        case 'i':
        case 'cseq':
          if (!response) copied += msg.slice(pos, eol + 2);
          break;
        case 'sip-etag':
          etag = msg.slice(colon + 1, eol).trim();
          break;
        default:
          break;
      }
    }
    pos = eol + 2;
  }
  return { response, status, method, branch, etag, copied, bodyStart: headEnd + 4 };
}

/**
 * A datagram from the server, read: a final response with the request waiting for it (taken out of
 * `pending` by its branch), or a request; undefined for what needs nothing (not SIP-shaped, a
 * provisional response, a response nobody waits for: retransmitted, or after giving up).
 */
export function receive<W>(d: Buffer, pending: Map<string, W>): { p: Parsed; msg: string; waiting: W | undefined } | undefined {
  const msg = d.toString('latin1');
  const p = parseMessage(msg);
  if (!p) return undefined;
  if (!p.response) return { p, msg, waiting: undefined };
  if (p.status < 200) return undefined;
  const waiting = pending.get(p.branch);
  if (waiting === undefined) return undefined;
  pending.delete(p.branch);
  return { p, msg, waiting };
}

/** A 200 OK answering a request whose dialog lines were copied by parseMessage. */
export function okFor(p: Parsed): string {
  return `SIP/2.0 200 OK\r\n${p.copied}Content-Length: 0\r\n\r\n`;
}

export interface Via {
  /** host:port of the generator socket sending the request. */
  sentBy: string;
  branch: string;
}

export function subscribeRequest(o: { via: Via; presentity: string; watcher: string; fromTag: string; callId: string; contact: string; expires: number }): string {
  return (
    `SUBSCRIBE ${o.presentity} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${o.via.sentBy};branch=${o.via.branch};rport\r\n` +
    'Max-Forwards: 70\r\n' +
    `From: <${o.watcher}>;tag=${o.fromTag}\r\n` +
    `To: <${o.presentity}>\r\n` +
    `Call-ID: ${o.callId}\r\n` +
    'CSeq: 1 SUBSCRIBE\r\n' +
    `Contact: <${o.contact}>\r\n` +
    'Event: presence\r\n' +
    'Accept: application/pidf+xml\r\n' +
    `Expires: ${o.expires}\r\n` +
    'Content-Length: 0\r\n\r\n'
  );
}

export function pidfBody(entity: string, note: string, basic: 'open' | 'closed'): string {
  return (
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}">\n` +
    `  <tuple id="t1"><status><basic>${basic}</basic></status><note>${note}</note></tuple>\n` +
    '</presence>\n'
  );
}

export function publishRequest(o: { via: Via; presentity: string; fromTag: string; callId: string; cseq: number; etag: string | undefined; expires: number; body: string }): string {
  // Templates hold ASCII only, so string length is the byte length.
  return (
    `PUBLISH ${o.presentity} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${o.via.sentBy};branch=${o.via.branch};rport\r\n` +
    'Max-Forwards: 70\r\n' +
    `From: <${o.presentity}>;tag=${o.fromTag}\r\n` +
    `To: <${o.presentity}>\r\n` +
    `Call-ID: ${o.callId}\r\n` +
    `CSeq: ${o.cseq} PUBLISH\r\n` +
    'Event: presence\r\n' +
    `Expires: ${o.expires}\r\n` +
    (o.etag ? `SIP-If-Match: ${o.etag}\r\n` : '') +
    'Content-Type: application/pidf+xml\r\n' +
    `Content-Length: ${o.body.length}\r\n\r\n` +
    o.body
  );
}

export function optionsRequest(o: { via: Via; uri: string; callId: string }): string {
  return (
    `OPTIONS ${o.uri} SIP/2.0\r\n` +
    `Via: SIP/2.0/UDP ${o.via.sentBy};branch=${o.via.branch};rport\r\n` +
    'Max-Forwards: 70\r\n' +
    `From: <sip:bench@${o.via.sentBy}>;tag=probe\r\n` +
    `To: <${o.uri}>\r\n` +
    `Call-ID: ${o.callId}\r\n` +
    'CSeq: 1 OPTIONS\r\n' +
    'Content-Length: 0\r\n\r\n'
  );
}
