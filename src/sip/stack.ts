// The SIP stack Herald's core talks to: typed requests in, typed responses out, transactions and
// transports hidden. One place for the untyped `sip` package (through codec.ts) and its work-arounds.
import net from 'node:net';
import sip from 'sip';
import type { Logger } from 'pino';
import { assembleRequest, decode, encodeRawResponse, encodeResponse, formatHeaderLines, formatParams, parseSipUri, peekResponse, requestFixedLines, type ResponseSpec } from './codec.js';
import type { Flow, HeaderList, OutgoingRequest, Protocol, SipRequest, SipResponse, Via } from './message.js';
import { ClientTransactions, ServerTransactions, newBranch, serverKey } from './transaction.js';
import { Transports, type InboundMessage, type TransportOptions } from './transport.js';

export interface ServerTx {
  readonly request: SipRequest;
  /** True once a final response was sent. */
  readonly answered: boolean;
  respond(spec: ResponseSpec): void;
}

export interface StackOptions extends TransportOptions {
  /** Host[:port] for Via and Contact; empty: the listening address. */
  publicHost?: string;
  log: Logger;
}

export interface SendOptions {
  /** A flow to reuse when it is still open (connection-oriented transports, RFC 5626 style). */
  flow?: Flow;
}

/** The part of an outgoing request that stays the same in a dialog: everything but CSeq, the body and per-request headers. */
export type DialogRequest = Omit<OutgoingRequest, 'cseq' | 'body' | 'contentType'>;

/** A DialogRequest serialized once (stack.prepare), for a dialog that sends many requests. */
export interface PreparedRequest {
  readonly method: string;
  readonly uri: string;
  readonly route: readonly string[] | undefined;
  /** Max-Forwards, Route, From, To, Call-ID, Contact and the fixed headers, each line CRLF-ended. */
  readonly fixed: string;
}

export interface StackCounters {
  requestsIn: number;
  responsesOut: number;
  requestsOut: number;
  responsesIn: number;
  retransmissionsAbsorbed: number;
  malformed: number;
}

const DEFAULT_PORT: Record<Protocol, number> = { UDP: 5060, TCP: 5060, TLS: 5061, WS: 80 };

/** Writes a warning for a bad message at most `perSecond` times a second; counts the rest. */
class BadInputLog {
  private windowStart = 0;
  private inWindow = 0;
  suppressed = 0;
  constructor(private readonly log: Logger, private readonly perSecond = 10) {}
  report(why: string, flow: Flow): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) this.log.warn({ suppressed: this.suppressed }, 'more malformed SIP messages dropped or refused');
      this.windowStart = now;
      this.inWindow = 0;
      this.suppressed = 0;
    }
    if (++this.inWindow <= this.perSecond) this.log.warn({ why, from: `${flow.protocol}:${flow.address}:${flow.port}` }, 'malformed SIP message');
    else this.suppressed++;
  }
}

export class SipStack {
  onRequest: (tx: ServerTx) => void = (tx) => tx.respond({ status: 500, reason: 'Not Ready' });
  readonly counters: StackCounters = { requestsIn: 0, responsesOut: 0, requestsOut: 0, responsesIn: 0, retransmissionsAbsorbed: 0, malformed: 0 };

  private readonly transports: Transports;
  private readonly servers = new ServerTransactions();
  private readonly clients = new ClientTransactions<SipResponse>();
  /** Client transactions whose caller needs only the final status (NOTIFY): matched by peekResponse. */
  private readonly statusClients = new ClientTransactions<number>();
  private readonly badLog: BadInputLog;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sentByCache = new Map<Protocol, [string, number | undefined]>();
  private readonly log: Logger;

  constructor(private readonly opts: StackOptions) {
    this.log = opts.log;
    this.badLog = new BadInputLog(opts.log);
    this.transports = new Transports(opts, (m) => this.inbound(m), opts.log);
  }

  async start(): Promise<void> {
    await this.transports.start();
    this.sweeper = setInterval(() => this.servers.sweep(Date.now()), 1000);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.clients.clear();
    this.statusClients.clear();
    this.servers.clear();
    await this.transports.stop();
  }

  get listening(): readonly { transport: string; address: string; port: number }[] {
    return this.transports.bound;
  }

  /** Herald's own URI for a transport, for Contact and Record-Route. */
  contactUri(protocol: Protocol = 'UDP'): string {
    const l = this.transports.localFor(protocol);
    const hostPort = this.opts.publicHost || (l ? `${l.address}:${l.port}` : '127.0.0.1');
    const transport = protocol === 'UDP' ? '' : `;transport=${protocol.toLowerCase()}`;
    return `sip:${hostPort}${transport}`;
  }

  // ---- inbound ---------------------------------------------------------------------------------

  private inbound(m: InboundMessage): void {
    if (m.tooLarge || m.framingError) {
      this.counters.malformed++;
      const why = m.tooLarge ? 'Message Too Large' : m.framingError!;
      this.badLog.report(why, m.flow);
      const raw = sip.parse(m.head.toString('latin1') + '\r\n\r\n');
      if (raw?.method && raw.method !== 'ACK' && raw.headers.via?.length) {
        // Answered symmetrically: back to where it came from.
        this.transports.send(m.flow, encodeRawResponse(raw, m.tooLarge ? 413 : 400, why));
      }
      return;
    }
    // A response to a transaction that needs only its status is matched on three fields, unparsed.
    const peek = this.statusClients.size > 0 ? peekResponse(m.head) : undefined;
    if (peek) {
      const key = `${peek.branch}|${peek.method}`;
      if (this.statusClients.has(key)) {
        this.counters.responsesIn++;
        if (peek.status < 200) this.statusClients.provisional(key);
        else this.statusClients.finish(key, peek.status);
        return;
      }
    }
    let d;
    try {
      d = decode(m.head, m.body, m.flow);
    } catch (e) {
      d = { kind: 'bad' as const, why: `parser failure: ${(e as Error).message}` };
    }
    if (d.kind === 'bad') {
      this.counters.malformed++;
      this.badLog.report(d.why, m.flow);
      if (d.answer) this.transports.send(m.flow, encodeRawResponse(d.answer.to, d.answer.status, d.answer.reason));
      return;
    }
    if (d.kind === 'response') {
      this.counters.responsesIn++;
      const branch = d.response.via[0]?.params['branch'];
      if (!branch) return;
      if (d.response.status < 200) this.clients.provisional(`${branch}|${d.response.cseq.method}`);
      else this.clients.finish(`${branch}|${d.response.cseq.method}`, d.response);
      return;
    }
    this.request(d.request);
  }

  private request(rq: SipRequest): void {
    if (rq.method === 'ACK') return; // Herald sends no 2xx to INVITE; ACKs of its error answers end here.
    this.counters.requestsIn++;
    // RFC 3261 §18.2.1: note where the request really came from, so responses go back there.
    const top = rq.via[0]!;
    if (top.host !== rq.source.address) top.params['received'] = rq.source.address;
    if ('rport' in top.params) top.params['rport'] = String(rq.source.port);
    const key = serverKey(rq);
    if (!key) return;
    if (this.servers.absorb(key)) {
      this.counters.retransmissionsAbsorbed++;
      return;
    }
    const reliable = rq.source.protocol !== 'UDP';
    const respondFlow = this.responseFlow(rq);
    this.servers.open(key, (data) => this.transports.send(respondFlow, data));
    let answered = false;
    const tx: ServerTx = {
      request: rq,
      get answered() {
        return answered;
      },
      respond: (spec) => {
        if (answered) return;
        const final = spec.status >= 200;
        answered = final;
        const data = encodeResponse(rq, spec);
        this.counters.responsesOut++;
        this.servers.respond(key, data, final, reliable, Date.now());
        this.transports.send(respondFlow, data);
      },
    };
    if (rq.method === 'CANCEL') {
      // A CANCEL of a non-INVITE request has no effect (RFC 3261 §9.2); Herald answers no INVITEs.
      tx.respond({ status: 481, reason: 'Call/Transaction Does Not Exist' });
      return;
    }
    try {
      this.onRequest(tx);
    } catch (e) {
      this.log.error({ err: e, method: rq.method, callId: rq.callId }, 'request handler failed');
      tx.respond({ status: 500, reason: 'Server Internal Error' });
    }
  }

  /** RFC 3261 §18.2.2 with RFC 3581: where a response to this request goes. */
  private responseFlow(rq: SipRequest): Flow {
    if (rq.source.protocol !== 'UDP') return rq.source;
    const top = rq.via[0]!;
    const port = 'rport' in top.params ? rq.source.port : (top.port ?? 5060);
    return { ...rq.source, port };
  }

  // ---- outbound --------------------------------------------------------------------------------

  /**
   * Sends a request in a new client transaction. Resolves with the final response, or with
   * undefined when the transaction timed out or no next hop could be reached (RFC 6665 treats both
   * like a 408 for NOTIFY).
   */
  send(req: OutgoingRequest, opts: SendOptions = {}): Promise<SipResponse | undefined> {
    return this.transact(req, opts, this.clients);
  }

  /** As send(), for a caller that needs only the final status (NOTIFY): its response is never parsed in full. */
  sendForStatus(req: OutgoingRequest, opts: SendOptions = {}): Promise<number | undefined> {
    return this.transact(req, opts, this.statusClients);
  }

  /** Serializes the fixed part of a dialog's requests once (see sendPrepared). */
  prepare(req: DialogRequest): PreparedRequest {
    return { method: req.method, uri: req.uri, route: req.route, fixed: requestFixedLines(req) };
  }

  /** Sends a prepared request with its CSeq, per-request headers and body bytes; resolves with the final status. */
  sendPrepared(p: PreparedRequest, cseq: number, headers: HeaderList, body: Buffer | undefined, contentType: string | undefined, opts: SendOptions = {}): Promise<number | undefined> {
    const more = formatHeaderLines(headers);
    return this.transact(p, opts, this.statusClients, (via) => assembleRequest(p.method, p.uri, via, p.fixed, cseq, more, body, contentType));
  }

  private transact<R>(req: OutgoingRequest, opts: SendOptions, table: ClientTransactions<R>): Promise<R | undefined>;
  private transact<R>(req: Pick<OutgoingRequest, 'method' | 'uri' | 'route'>, opts: SendOptions, table: ClientTransactions<R>, encode: (via: Via) => Buffer): Promise<R | undefined>;
  private async transact<R>(req: Pick<OutgoingRequest, 'method' | 'uri' | 'route'>, opts: SendOptions, table: ClientTransactions<R>, encode?: (via: Via) => Buffer): Promise<R | undefined> {
    const flow = opts.flow && this.transports.hasConnection(opts.flow) ? opts.flow : (await this.nextHop(req))[0];
    if (!flow) return undefined;
    const branch = newBranch();
    const [host, port] = this.sentBy(flow.protocol);
    const via: Via = { protocol: flow.protocol, host, port, params: flow.protocol === 'UDP' ? { branch, rport: null } : { branch } };
    const data = encode ? encode(via) : this.encodeWhole(req as OutgoingRequest, via);
    this.counters.requestsOut++;
    const key = `${branch}|${req.method}`;
    return new Promise((resolve) => {
      table.start(
        key,
        () => {
          if (!this.transports.send(flow, data)) table.finish(key, undefined);
        },
        flow.protocol !== 'UDP',
        resolve,
      );
    });
  }

  private encodeWhole(req: OutgoingRequest, via: Via): Buffer {
    return assembleRequest(req.method, req.uri, via, requestFixedLines(req), req.cseq, '', req.body ? Buffer.from(req.body, 'utf8') : undefined, req.contentType);
  }

  /** Host and port for the Via of requests over a transport (the listeners do not change once started). */
  private sentBy(protocol: Protocol): [string, number | undefined] {
    let v = this.sentByCache.get(protocol);
    if (!v) {
      const local = this.transports.localFor(protocol);
      v = splitHostPort(this.opts.publicHost || (local ? `${local.address}:${local.port}` : '127.0.0.1'));
      this.sentByCache.set(protocol, v);
    }
    return v;
  }

  /** RFC 3261 §8.1.2 / RFC 3263: the flows a request goes to (first Route with lr, else the Request-URI). */
  async nextHop(req: Pick<OutgoingRequest, 'uri' | 'route'>): Promise<Flow[]> {
    const target = req.route && req.route.length > 0 ? stripNameAddr(req.route[0]!) : req.uri;
    return resolveUri(target);
  }

}

function splitHostPort(s: string): [string, number | undefined] {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
  return m ? [m[1]!, m[2] ? Number(m[2]) : undefined] : [s, undefined];
}

function stripNameAddr(s: string): string {
  const m = /<([^>]*)>/.exec(s);
  return m ? m[1]! : s.trim();
}

/**
 * Targets that are IP literals resolve the same way every time; a NOTIFY to a dialog's remote target
 * is the common case, so their answers are kept (bounded: the oldest entry goes first).
 */
const literalTargets = new Map<string, Flow[]>();
const LITERAL_CACHE_MAX = 50_000;

/** RFC 3263 in part: transport from the URI, IP literals directly, hostnames through sip.resolve (SRV, then A/AAAA). */
export function resolveUri(uri: string): Promise<Flow[]> {
  const cached = literalTargets.get(uri);
  if (cached) return Promise.resolve(cached);
  const u = parseSipUri(uri);
  if (!u) return Promise.resolve([]);
  const tp = u.params['transport']?.toUpperCase();
  const protocol: Protocol = u.scheme === 'sips' ? (tp === 'WS' || tp === 'WSS' ? 'WS' : 'TLS') : tp === 'TCP' ? 'TCP' : tp === 'TLS' ? 'TLS' : tp === 'WS' || tp === 'WSS' ? 'WS' : 'UDP';
  if (net.isIP(u.host.replace(/^\[|\]$/g, ''))) {
    const flows: Flow[] = [{ protocol, address: u.host.replace(/^\[|\]$/g, ''), port: u.port ?? DEFAULT_PORT[protocol] }];
    if (literalTargets.size >= LITERAL_CACHE_MAX) literalTargets.delete(literalTargets.keys().next().value!);
    literalTargets.set(uri, flows);
    return Promise.resolve(flows);
  }
  const raw = sip.parseUri(`${u.scheme}:${u.host}${u.port ? `:${u.port}` : ''}${formatParams(tp ? { transport: tp.toLowerCase() } : {})}`);
  if (!raw) return Promise.resolve([]);
  return new Promise((resolve) => {
    sip.resolve(raw, (addresses) => {
      resolve(
        addresses
          .map((a) => ({ protocol: a.protocol.toUpperCase() as Protocol, address: a.address, port: a.port }))
          .filter((f) => f.protocol === 'UDP' || f.protocol === 'TCP' || f.protocol === 'TLS'),
      );
    });
  });
}
