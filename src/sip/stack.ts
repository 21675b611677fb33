// The SIP stack Herald's core talks to: typed requests in, typed responses out, transactions and
// transports hidden. One place for the untyped `sip` package (through codec.ts) and its work-arounds.
import type { Logger } from 'pino';
import { RequestTemplate, decode, encodeRawResponse, encodeRequest, encodeResponse, peekResponse, requestFixedLines, type ResponseKey, type ResponseSpec } from './codec.js';
import type { Flow, OutgoingRequest, Protocol, SipRequest, SipResponse, Via } from './message.js';
import { SipResolver, type ResolverOptions } from './resolver.js';
import { ClientTransactions, ServerTransactions, branchOf, newTransactionId, serverKey, transactionIdOf } from './transaction.js';
import { parseHead } from './parser.js';
import { RateLimitedLog } from './rate-log.js';
import { OverloadGuard, type OverloadOptions } from './overload.js';
import { Transports, contentLength, type InboundMessage, type TransportOptions } from './transport.js';

export interface ServerTx {
  readonly request: SipRequest;
  /** True once a final response was sent. */
  readonly answered: boolean;
  respond(spec: ResponseSpec): void;
}

export interface StackOptions extends TransportOptions {
  /** Host[:port] for Via and Contact; empty: the listening address. */
  publicHost?: string;
  /** RFC 3263 resolution: DNS servers and timeouts (empty: the system's resolver). */
  dns?: ResolverOptions;
  /** Overload control; default: a 2-core node's figures (config.toml [limits]). */
  overload?: OverloadOptions;
  /** Timer J keeps no response larger than this (bytes) for retransmissions, nor more than the total. */
  maxRetainedResponseBytes?: number;
  maxRetainedBytes?: number;
  log: Logger;
}

export interface SendOptions {
  /** A flow to reuse when it is still open (connection-oriented transports, RFC 5626 style). */
  flow?: Flow;
  /** Put Herald's own URI for the transport each try leaves on in Contact (RFC 3261 §8.1.1.8). */
  selfContact?: boolean;
}

/** The part of an outgoing request that stays the same in a dialog: everything but CSeq, the body and per-request headers. */
export type DialogRequest = Omit<OutgoingRequest, 'cseq' | 'body' | 'contentType'>;

/** A DialogRequest serialized once (stack.prepare), for a dialog that sends many requests. */
export interface PreparedRequest {
  readonly method: string;
  readonly uri: string;
  readonly route: readonly string[] | undefined;
  /** The request's bytes but for the Via's branch, CSeq, per-request lines and body (Max-Forwards, Route, From, To, Call-ID, Contact and the fixed headers inside). */
  readonly template: RequestTemplate;
  /**
   * The next hop's targets, kept once resolved when their answer cannot change (an IP-literal URI,
   * RFC 3263 §4.2: no DNS), so a busy dialog's requests skip resolution; undefined until then or
   * when DNS is asked (its answers are cached by the resolver for their own time).
   */
  targets?: readonly Flow[];
}

/** The status of a status-only transaction's answer is the answer. */
const statusOnly = (s: number): number => s;

export interface StackCounters {
  requestsIn: number;
  responsesOut: number;
  requestsOut: number;
  responsesIn: number;
  retransmissionsAbsorbed: number;
  malformed: number;
}

/** RFC 3263 §4.3 tries the next target after a failure; a bounded number of them. */
const MAX_TARGETS = 8;
/** The largest UDP payload over IPv4: 65,535 − 20 (IP header) − 8 (UDP header). */
const MAX_UDP_PAYLOAD = 65_507;

/** Told of every message through the stack (metrics); direction from Herald's side. */
export interface StackObserver {
  message(dir: 'in' | 'out', kind: 'request' | 'response', method: string, status: number | undefined, protocol: Protocol, request?: SipRequest): void;
}

const DEFAULT_PORT: Record<Protocol, number> = { UDP: 5060, TCP: 5060, TLS: 5061, WS: 80 };

export class SipStack {
  onRequest: (tx: ServerTx) => void = (tx) => tx.respond({ status: 500, reason: 'Not Ready' });
  observer: StackObserver | undefined;
  readonly counters: StackCounters = { requestsIn: 0, responsesOut: 0, requestsOut: 0, responsesIn: 0, retransmissionsAbsorbed: 0, malformed: 0 };

  private readonly transports: Transports;
  private readonly servers: ServerTransactions;
  readonly overload: OverloadGuard;
  private readonly clients = new ClientTransactions<SipResponse>();
  /** Client transactions whose caller needs only the final status (NOTIFY): matched by peekResponse. */
  private readonly statusClients = new ClientTransactions<number>();
  private readonly badLog: RateLimitedLog;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly sentByCache = new Map<Protocol, [string, number | undefined]>();
  private readonly log: Logger;
  readonly resolver: SipResolver;

  constructor(private readonly opts: StackOptions) {
    this.log = opts.log;
    this.resolver = new SipResolver(opts.dns);
    this.badLog = new RateLimitedLog(opts.log, 'malformed SIP message');
    this.servers = new ServerTransactions((flow, data) => this.transports.send(flow, data), opts.maxRetainedResponseBytes, opts.maxRetainedBytes);
    this.overload = new OverloadGuard(opts.overload ?? { maxEventLoopDelayMs: 200, maxPendingRequests: 2000, retryAfterSeconds: 5 });
    this.transports = new Transports(opts, (m) => this.inbound(m), opts.log, (data, end) => this.quickResponse(data, end));
  }

  async start(): Promise<void> {
    await this.transports.start();
    this.overload.start();
    this.sweeper = setInterval(() => this.servers.sweep(Date.now()), 1000);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    this.overload.stop();
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
      this.badLog.report({ why, from: `${m.flow.protocol}:${m.flow.address}:${m.flow.port}` });
      const raw = parseHead(m.head.toString('latin1'));
      if (raw?.method && raw.method !== 'ACK' && raw.headers.via?.length) {
        // Answered symmetrically: back to where it came from.
        this.transports.send(m.flow, encodeRawResponse(raw, m.tooLarge ? 413 : 400, why));
      }
      return;
    }
    // A response to a transaction that needs only its status is matched on three fields, unparsed.
    if (this.statusOnly(m.head, m.head.length, m.flow.protocol)) return;
    let d;
    try {
      d = decode(m.head, m.body, m.flow);
    } catch (e) {
      d = { kind: 'bad' as const, why: `parser failure: ${(e as Error).message}` };
    }
    if (d.kind === 'bad') {
      this.counters.malformed++;
      this.badLog.report({ why: d.why, from: `${m.flow.protocol}:${m.flow.address}:${m.flow.port}` });
      if (d.answer) this.transports.send(m.flow, encodeRawResponse(d.answer.to, d.answer.status, d.answer.reason, d.answer.headers));
      return;
    }
    if (d.kind === 'response') {
      this.counters.responsesIn++;
      this.observer?.message('in', 'response', d.response.cseq.method, d.response.status, m.flow.protocol);
      const key = transactionIdOf(d.response.via[0]?.params['branch']);
      const method = d.response.cseq.method;
      // A status-only transaction's answer that peekResponse could not read (folded lines, say)
      // still ends its transaction once parsed in full.
      if (this.statusClients.has(key, method)) {
        if (d.response.status < 200) this.statusClients.provisional(key);
        else this.statusClients.finish(key, d.response.status);
      } else if (!this.clients.has(key, method)) return; // a stray response (RFC 3261 §17.1.3)
      else if (d.response.status < 200) this.clients.provisional(key);
      else this.clients.finish(key, d.response);
      return;
    }
    this.request(d.request);
  }

  /**
   * A whole UDP datagram, before framing (Transports' QuickResponse): a status-only transaction's
   * answer is matched here without the InboundMessage and its flow. Only when framing would take it
   * as it is: a Content-Length, if any, that the datagram's body bytes cover (else the framing's
   * 400-or-drop applies, as before). The Content-Length is read only once the datagram is known to be
   * such an answer: every other datagram (a SUBSCRIBE begins with 'S' too) costs the peek alone.
   */
  private quickResponse(data: Buffer, end: number): boolean {
    const match = this.statusOnlyMatch(data, end);
    if (match === undefined) return false;
    const declared = contentLength(data, end);
    if (declared !== undefined && !(declared <= data.length - end - 4)) return false;
    this.endStatusOnly(match, 'UDP');
    return true;
  }

  /** Ends a status-only transaction with the response in head[0, to), if it is one's: true when it was. */
  private statusOnly(head: Buffer, to: number, protocol: Protocol): boolean {
    const match = this.statusOnlyMatch(head, to);
    if (match === undefined) return false;
    this.endStatusOnly(match, protocol);
    return true;
  }

  /** The response in head[0, to) read on three fields, if it answers an open status-only transaction. */
  private statusOnlyMatch(head: Buffer, to: number): { key: number; peek: ResponseKey } | undefined {
    if (this.statusClients.size === 0) return undefined;
    const peek = peekResponse(head, to);
    if (!peek) return undefined;
    const key = transactionIdOf(peek.branch);
    return this.statusClients.has(key, peek.method) ? { key, peek } : undefined;
  }

  private endStatusOnly({ key, peek }: { key: number; peek: ResponseKey }, protocol: Protocol): void {
    this.counters.responsesIn++;
    this.observer?.message('in', 'response', peek.method, peek.status, protocol);
    if (peek.status < 200) this.statusClients.provisional(key);
    else this.statusClients.finish(key, peek.status);
  }

  private request(rq: SipRequest): void {
    if (rq.method === 'ACK') return; // Herald sends no 2xx to INVITE; ACKs of its error answers end here.
    this.counters.requestsIn++;
    this.observer?.message('in', 'request', rq.method, undefined, rq.source.protocol, rq);
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
    this.servers.open(key);
    let answered = false;
    let admitted = false;
    const tx: ServerTx = {
      request: rq,
      get answered() {
        return answered;
      },
      respond: (spec) => {
        if (answered) return;
        const final = spec.status >= 200;
        answered = final;
        if (final && admitted) this.overload.done();
        const data = encodeResponse(rq, spec);
        this.counters.responsesOut++;
        this.observer?.message('out', 'response', rq.method, spec.status, rq.source.protocol, rq);
        const flow = this.responseFlow(rq);
        this.servers.respond(key, data, final, reliable, Date.now(), flow);
        this.transports.send(flow, data);
      },
    };
    if (rq.method === 'CANCEL') {
      // A CANCEL of a non-INVITE request has no effect (RFC 3261 §9.2); Herald answers no INVITEs.
      tx.respond({ status: 481, reason: 'Call/Transaction Does Not Exist' });
      return;
    }
    // Overload: refused here, before any handler reads the body or the store (RFC 3261 §21.5.4).
    if (this.overload.admit(rq.method, rq.to.params['tag'] !== undefined) === 'shed') {
      tx.respond({ status: 503, reason: 'Service Unavailable', headers: [['Retry-After', String(this.overload.o.retryAfterSeconds)]] });
      return;
    }
    admitted = true;
    this.overload.begin();
    try {
      this.onRequest(tx);
    } catch (e) {
      this.log.error({ err: e, method: rq.method, callId: rq.callId }, 'request handler failed');
      tx.respond({ status: 500, reason: 'Server Internal Error' });
    }
  }

  /** RFC 3261 §18.2.2 with RFC 3581: where a response to this request goes (asked when it is sent). */
  private responseFlow(rq: SipRequest): Flow {
    const top = rq.via[0]!;
    if (rq.source.protocol !== 'UDP') {
      // The connection the request came on, while it is open; once it is gone, a new connection to
      // the address it came from ("received") and the top Via's sent-by port, or the transport's default.
      if (rq.source.protocol === 'WS' || this.transports.hasConnection(rq.source)) return rq.source;
      return { protocol: rq.source.protocol, address: rq.source.address, port: top.port ?? DEFAULT_PORT[rq.source.protocol] };
    }
    const port = 'rport' in top.params ? rq.source.port : (top.port ?? 5060);
    return { ...rq.source, port };
  }

  // ---- outbound --------------------------------------------------------------------------------

  /**
   * Sends a request: over `opts.flow` when that connection is still open, else to the targets RFC 3263
   * gives for the next hop, in order, each in a new client transaction, moving on after a timeout, a
   * transport error or a 503 (RFC 3263 §4.3). Resolves with the final response (the last target's
   * when all failed), or with undefined when the last try timed out or no target could be reached
   * (RFC 6665 treats both like a 408 for NOTIFY).
   */
  send(req: OutgoingRequest, opts: SendOptions = {}): Promise<SipResponse | undefined> {
    return this.transact(req, opts, this.clients, (r) => r.status, (protocol, host, port, branch, flow) => this.encodeWhole(req, protocol, host, port, branch, flow, opts));
  }

  /** As send(), for a caller that needs only the final status (NOTIFY): its response is never parsed in full. */
  sendForStatus(req: OutgoingRequest, opts: SendOptions = {}): Promise<number | undefined> {
    return this.transact(req, opts, this.statusClients, statusOnly, (protocol, host, port, branch, flow) => this.encodeWhole(req, protocol, host, port, branch, flow, opts));
  }

  /** Serializes the fixed part of a dialog's requests once (see sendPrepared). */
  prepare(req: DialogRequest): PreparedRequest {
    return { method: req.method, uri: req.uri, route: req.route, template: new RequestTemplate(req.method, req.uri, requestFixedLines(req)) };
  }

  /**
   * Sends a prepared request with its CSeq, per-request header lines (`more`, each CRLF-ended) and
   * body bytes; `done` hears the final status (undefined: none). It goes through the same target loop
   * as send() (RFC 3263 failover included) over `flow` when that connection is still open; its Contact
   * is in the fixed lines, so `selfContact` does not apply. A dialog whose single target is known
   * (PreparedRequest.targets) goes straight to its transaction: the datagram leaves before this returns.
   */
  sendPrepared(p: PreparedRequest, cseq: number, more: string, body: Buffer | undefined, contentType: string | undefined, flow: Flow | undefined, done: (status: number | undefined) => void): void {
    const encode: Encode = (protocol, host, port, branch) => p.template.encode(protocol, host, port, branch, cseq, more, body, contentType);
    const known = p.targets;
    if (known !== undefined && known.length === 1 && !(flow && this.transports.hasConnection(flow))) {
      this.startOnce(p.method, known[0]!, this.statusClients, encode, done);
      return;
    }
    void this.transact(p, flow ? { flow } : {}, this.statusClients, statusOnly, encode, p).then(done);
  }

  /**
   * The one send loop: over `opts.flow` when that connection is still open, else over the targets of
   * the next hop in order, a new client transaction (in `table`) per target, encoded for that target's
   * Via; the next target is tried after a timeout, a transport error or a 503 (RFC 3263 §4.3).
   */
  private async transact<R>(
    req: Pick<OutgoingRequest, 'method' | 'uri' | 'route'>,
    opts: SendOptions,
    table: ClientTransactions<R>,
    statusOf: (r: R) => number,
    encode: Encode,
    /** A prepared request keeps targets that cannot change (see PreparedRequest.targets). */
    prepared?: PreparedRequest,
  ): Promise<R | undefined> {
    let targets: readonly Flow[];
    try {
      if (opts.flow && this.transports.hasConnection(opts.flow)) targets = [opts.flow];
      else {
        const hop = hopUri(req);
        targets = (await this.resolver.resolve(hop)).slice(0, MAX_TARGETS);
        if (prepared && this.resolver.unchanging(hop)) prepared.targets = targets;
      }
    } catch (e) {
      this.log.warn({ err: (e as Error).message, uri: req.uri }, 'next hop not resolved');
      return undefined;
    }
    let res: R | undefined;
    for (const [i, flow] of targets.entries()) {
      res = await this.sendOnce(req.method, flow, table, encode);
      if (res !== undefined && statusOf(res) !== 503) return res;
      if (i < targets.length - 1) this.log.debug({ method: req.method, uri: req.uri, failed: `${flow.protocol}:${flow.address}:${flow.port}`, status: res === undefined ? undefined : statusOf(res) }, 'next hop failed; trying the next target');
    }
    return res;
  }

  /** One client transaction to one flow. */
  private sendOnce<R>(method: string, target: Flow, table: ClientTransactions<R>, encode: Encode): Promise<R | undefined> {
    return new Promise((resolve) => this.startOnce(method, target, table, encode, resolve));
  }

  /** One client transaction to one flow; `done` hears its final response (undefined: none). */
  private startOnce<R>(method: string, target: Flow, table: ClientTransactions<R>, encode: Encode, done: (r: R | undefined) => void): void {
    const key = newTransactionId();
    const branch = branchOf(key);
    const encodeFor = (flow: Flow): Buffer => {
      const [host, port] = this.sentBy(flow.protocol);
      return encode(flow.protocol, host, port, branch, flow);
    };
    let flow = target;
    let data = encodeFor(flow);
    // RFC 3261 §18.1.1: a request too large for UDP goes over a congestion-controlled transport, TCP,
    // to the same address and port (its Via re-encoded for TCP). Only a request that no datagram can
    // carry is moved, not the section's "larger than 1300 bytes" ones: real phones (baresip and
    // linphonec in the interop suite) listen on UDP only, and would lose every larger NOTIFY.
    const oversized = flow.protocol === 'UDP' && data.length > MAX_UDP_PAYLOAD;
    if (oversized) {
      flow = { protocol: 'TCP', address: target.address, port: target.port };
      data = encodeFor(flow);
      this.log.debug({ method, bytes: data.length, to: `${flow.address}:${flow.port}` }, 'request larger than a UDP datagram: sent over TCP (RFC 3261 §18.1.1)');
    }
    this.counters.requestsOut++;
    this.observer?.message('out', 'request', method, undefined, flow.protocol);
    table.start(
      key,
      method,
      () => {
        // Safe sends: a bad address or a refused connection, now or later (onFail), ends the try.
        if (!this.transports.send(flow, data, () => table.finish(key, undefined))) table.finish(key, undefined);
      },
      flow.protocol !== 'UDP',
      oversized
        ? (r) => {
            if (r === undefined) {
              this.log.warn({ method, bytes: data.length, to: `${flow.address}:${flow.port}` }, 'request larger than a UDP datagram not delivered: TCP to the same target failed too (RFC 3261 §18.1.1)');
            }
            done(r);
          }
        : done,
    );
  }

  /** A whole request for one try; with `selfContact`, Contact is Herald's URI for the try's transport. */
  private encodeWhole(req: OutgoingRequest, protocol: Protocol, host: string, port: number | undefined, branch: string, flow: Flow, opts: SendOptions): Buffer {
    const via: Via = { protocol, host, port, params: protocol === 'UDP' ? { branch, rport: null } : { branch } };
    return encodeRequest({ ...req, via, ...(opts.selfContact ? { contact: `<${this.contactUri(flow.protocol)}>` } : {}) });
  }

  /**
   * Host and port for the Via of requests over a transport (the listeners do not change once started;
   * the fallback for a transport without a listener is not kept, so a later listener is seen).
   */
  private sentBy(protocol: Protocol): [string, number | undefined] {
    const cached = this.sentByCache.get(protocol);
    if (cached) return cached;
    const local = this.transports.localFor(protocol);
    const v = splitHostPort(this.opts.publicHost || (local ? `${local.address}:${local.port}` : '127.0.0.1'));
    if (this.opts.publicHost || local) this.sentByCache.set(protocol, v);
    return v;
  }

  /** RFC 3261 §8.1.2 / RFC 3263: the flows a request goes to (first Route with lr, else the Request-URI). */
  async nextHop(req: Pick<OutgoingRequest, 'uri' | 'route'>): Promise<Flow[]> {
    return this.resolver.resolve(hopUri(req));
  }
}

/** One try's bytes: the top Via's transport, sent-by and branch (rport over UDP), for `flow`. */
type Encode = (protocol: Protocol, host: string, port: number | undefined, branch: string, flow: Flow) => Buffer;

/** RFC 3261 §8.1.2: the URI the next hop is resolved from (the first Route, else the Request-URI). */
function hopUri(req: Pick<OutgoingRequest, 'uri' | 'route'>): string {
  return req.route && req.route.length > 0 ? stripNameAddr(req.route[0]!) : req.uri;
}

function splitHostPort(s: string): [string, number | undefined] {
  const m = /^\[?([^\]]+?)\]?(?::(\d+))?$/.exec(s);
  return m ? [m[1]!, m[2] ? Number(m[2]) : undefined] : [s, undefined];
}

function stripNameAddr(s: string): string {
  const m = /<([^>]*)>/.exec(s);
  return m ? m[1]! : s.trim();
}
