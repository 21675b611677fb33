// The SIP stack Herald's core talks to: typed requests in, typed responses out, transactions and
// transports hidden. One place for the untyped `sip` package (through codec.ts) and its work-arounds.
import type { Logger } from 'pino';
import { decode, encodeRawResponse, encodeRequest, encodeResponse, type ResponseSpec } from './codec.js';
import type { Flow, OutgoingRequest, Protocol, SipRequest, SipResponse } from './message.js';
import { SipResolver, type ResolverOptions } from './resolver.js';
import { ClientTransactions, ServerTransactions, newBranch, serverKey } from './transaction.js';
import { parseHead } from './parser.js';
import { RateLimitedLog } from './rate-log.js';
import { OverloadGuard, type OverloadOptions } from './overload.js';
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
  private readonly badLog: RateLimitedLog;
  private sweeper: NodeJS.Timeout | undefined;
  private readonly log: Logger;
  readonly resolver: SipResolver;

  constructor(private readonly opts: StackOptions) {
    this.log = opts.log;
    this.resolver = new SipResolver(opts.dns);
    this.badLog = new RateLimitedLog(opts.log, 'malformed SIP message');
    this.servers = new ServerTransactions(opts.maxRetainedResponseBytes, opts.maxRetainedBytes);
    this.overload = new OverloadGuard(opts.overload ?? { maxEventLoopDelayMs: 200, maxPendingRequests: 2000, retryAfterSeconds: 5 });
    this.transports = new Transports(opts, (m) => this.inbound(m), opts.log);
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
    this.servers.open(key, (data) => this.transports.send(this.responseFlow(rq), data));
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
        this.servers.respond(key, data, final, reliable, Date.now());
        this.transports.send(this.responseFlow(rq), data);
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
  async send(req: OutgoingRequest, opts: SendOptions = {}): Promise<SipResponse | undefined> {
    let targets: Flow[];
    try {
      targets = opts.flow && this.transports.hasConnection(opts.flow) ? [opts.flow] : (await this.nextHop(req)).slice(0, MAX_TARGETS);
    } catch (e) {
      this.log.warn({ err: (e as Error).message, uri: req.uri }, 'next hop not resolved');
      return undefined;
    }
    let res: SipResponse | undefined;
    for (const [i, flow] of targets.entries()) {
      const r = opts.selfContact ? { ...req, contact: `<${this.contactUri(flow.protocol)}>` } : req;
      res = await this.sendOnce(r, flow);
      if (res && res.status !== 503) return res;
      if (i < targets.length - 1) this.log.debug({ method: req.method, uri: req.uri, failed: `${flow.protocol}:${flow.address}:${flow.port}`, status: res?.status }, 'next hop failed; trying the next target');
    }
    return res;
  }

  /** One client transaction to one flow. */
  private sendOnce(req: OutgoingRequest, flow: Flow): Promise<SipResponse | undefined> {
    const branch = newBranch();
    const local = this.transports.localFor(flow.protocol);
    const sentBy = this.opts.publicHost || (local ? `${local.address}:${local.port}` : '127.0.0.1');
    const [host, port] = splitHostPort(sentBy);
    const data = encodeRequest({
      method: req.method,
      uri: req.uri,
      via: { protocol: flow.protocol, host, port, params: flow.protocol === 'UDP' ? { branch, rport: null } : { branch } },
      from: req.from,
      to: req.to,
      callId: req.callId,
      cseq: req.cseq,
      ...(req.route ? { route: req.route } : {}),
      ...(req.contact ? { contact: req.contact } : {}),
      ...(req.headers ? { headers: req.headers } : {}),
      ...(req.body !== undefined ? { body: req.body } : {}),
      ...(req.contentType ? { contentType: req.contentType } : {}),
      ...(req.viaBelow ? { viaBelow: req.viaBelow } : {}),
      ...(req.maxForwards !== undefined ? { maxForwards: req.maxForwards } : {}),
    });
    this.counters.requestsOut++;
    this.observer?.message('out', 'request', req.method, undefined, flow.protocol);
    const key = `${branch}|${req.method}`;
    return new Promise((resolve) => {
      this.clients.start(
        key,
        () => {
          if (!this.transports.send(flow, data, () => this.clients.finish(key, undefined))) this.clients.finish(key, undefined);
        },
        flow.protocol !== 'UDP',
        resolve,
      );
    });
  }

  /** RFC 3261 §8.1.2 / RFC 3263: the flows a request goes to (first Route with lr, else the Request-URI). */
  async nextHop(req: OutgoingRequest): Promise<Flow[]> {
    const target = req.route && req.route.length > 0 ? stripNameAddr(req.route[0]!) : req.uri;
    return this.resolver.resolve(target);
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
