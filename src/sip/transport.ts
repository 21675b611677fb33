// SIP transports: UDP, TCP, TLS and WebSocket (RFC 7118) listeners and the connections they hold.
//
// Why not the `sip` package's transports: they (a) stay in the body-reading state forever when a
// stream message has a non-numeric Content-Length, buffering without bound; (b) print to the console
// on a flood; (c) send WebSocket frames as UTF-8 re-encodings of latin1 strings, corrupting any
// non-ASCII body; (d) give no way to answer a malformed message with 400/413. The framing below is
// RFC 3261 §18.3 and RFC 5626 §4.4.1 (CRLF keep-alives); parsing is parser.ts (through codec.ts).
import dgram from 'node:dgram';
import net from 'node:net';
import dns from 'node:dns';
import tls from 'node:tls';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import type { Flow, Protocol } from './message.js';
import { RateLimitedLog } from './rate-log.js';
import { decimalAt, findHeader } from './scan.js';

export interface InboundMessage {
  head: Buffer;
  body: Buffer;
  flow: Flow;
  /** Set when the message broke a size rule: the stack answers it (if it can) and drops it. */
  tooLarge?: boolean;
  /** Set when framing failed (e.g. Content-Length missing on a stream): answered 400 if possible. */
  framingError?: string;
}

export type InboundHandler = (m: InboundMessage) => void;

/**
 * Offered every UDP datagram that may be a response ("SIP/2.0 ..."), whole, with the end of its
 * header section, before the datagram is framed into an InboundMessage: true when it was a response
 * the stack matched from its bytes alone (a NOTIFY's 200; issue 9), which then goes no further.
 */
export type QuickResponse = (data: Buffer, headEnd: number) => boolean;

/** One listening address (config [sip] listen, "<transport>:<address>:<port>"). */
export interface ListenAddress {
  transport: 'udp' | 'tcp' | 'tls' | 'ws' | 'wss';
  address: string;
  port: number;
}

export interface TransportOptions {
  listen: ListenAddress[];
  tlsCert?: string;
  tlsKey?: string;
  /** CA bundle to verify TLS clients' certificates with (peers trusted by name); empty: none asked. */
  tlsCa?: string;
  maxMessageBytes: number;
  /** Log every message in and out whole (log.sip_trace), at info; otherwise only at trace level. */
  sipTrace?: boolean;
  /** Most inbound TCP/TLS connections open at once; past it a new one is closed at once. */
  maxConnections?: number;
  /** A connection with no traffic either way for this long is closed (ms). */
  idleTimeoutMs?: number;
}

interface Connection {
  protocol: Protocol;
  send(data: Buffer): void;
  close(): void;
  /** Outbound connections still connecting: called if the connection fails before it is up. */
  onFail?: Set<() => void>;
}

const HEADER_END = Buffer.from('\r\n\r\n');
const CRLF = Buffer.from('\r\n');
/** A connection holding a partial message longer than this is closed (slow-loris). */
const PARTIAL_MESSAGE_TIMEOUT_MS = 30_000;

/** An address a datagram or a connection can go to: an IP literal and a port in 1..65535. */
export function sendableAddress(flow: Flow): boolean {
  return Number.isInteger(flow.port) && flow.port >= 1 && flow.port <= 65535 && net.isIP(flow.address) !== 0;
}

function flowKey(protocol: Protocol, address: string, port: number): string {
  return `${protocol}|${address}|${port}`;
}

/** A verified certificate's names: subject CN and DNS subjectAltNames (RFC 5922 §7.1 for SIP). */
function peerNames(cert: tls.PeerCertificate): string[] {
  const names = new Set<string>();
  const cn = cert.subject?.CN;
  if (typeof cn === 'string') names.add(cn.toLowerCase());
  for (const part of (cert.subjectaltname ?? '').split(',')) {
    const m = /^\s*DNS:(.+)$/.exec(part);
    if (m) names.add(m[1]!.trim().toLowerCase());
  }
  return [...names];
}

/**
 * The Content-Length of a header section (RFC 3261 §20.14, compact form "l"), read from its bytes
 * (issue 9: the head is not decoded to a string per message for this): undefined when there is none,
 * NaN when its value is not a number of digits.
 */
export function contentLength(head: Buffer, to = head.length): number | undefined {
  const cl = findHeader(head, 'content-length', 'l', 0, to);
  return cl ? decimalAt(head, cl[0], cl[1]) : undefined;
}

/** Splits one datagram (or WebSocket message) into head and body per RFC 3261 §18.3. */
export function splitDatagram(data: Buffer, flow: Flow, max: number): InboundMessage | undefined {
  let start = 0;
  while (start + 1 < data.length && data[start] === 13 && data[start + 1] === 10) start += 2; // leading CRLFs
  const end = data.indexOf(HEADER_END, start);
  if (end < 0) return undefined;
  const head = data.subarray(start, end);
  let body = data.subarray(end + 4);
  if (data.length > max) return { head, body: Buffer.alloc(0), flow, tooLarge: true };
  const n = contentLength(head);
  if (n !== undefined) {
    if (!Number.isFinite(n)) return { head, body: Buffer.alloc(0), flow, framingError: 'Bad Content-Length' };
    if (n > body.length) return { head, body: Buffer.alloc(0), flow, framingError: 'Body shorter than Content-Length' };
    body = body.subarray(0, n);
  }
  return { head, body, flow };
}

/** Incremental framing of a byte stream into SIP messages (TCP and TLS). */
export class StreamFramer {
  private buf: Buffer = Buffer.alloc(0);
  private need = -1; // body bytes still awaited for `pendingHead`, -1 when reading headers
  private pendingHead: Buffer | undefined;

  constructor(
    private readonly flow: Flow,
    private readonly max: number,
    private readonly emit: (m: InboundMessage) => void,
    private readonly pong: () => void,
  ) {}

  get partial(): boolean {
    return this.buf.length > 0 || this.need >= 0;
  }

  /** Feeds bytes; returns false when the stream must be closed (framing lost). */
  push(chunk: Buffer): boolean {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    for (;;) {
      if (this.need >= 0) {
        if (this.buf.length < this.need) return true;
        const body = this.buf.subarray(0, this.need);
        this.buf = this.buf.subarray(this.need);
        const head = this.pendingHead!;
        this.need = -1;
        this.pendingHead = undefined;
        this.emit({ head, body, flow: this.flow });
        continue;
      }
      // RFC 5626 §4.4.1: a double CRLF is a keep-alive ping, answered with a single CRLF.
      let skipped = 0;
      while (skipped + 1 < this.buf.length && this.buf[skipped] === 13 && this.buf[skipped + 1] === 10) skipped += 2;
      if (skipped > 0) {
        if (skipped >= 4) this.pong();
        this.buf = this.buf.subarray(skipped);
      }
      if (this.buf.length === 0) return true;
      const end = this.buf.indexOf(HEADER_END);
      if (end < 0) {
        if (this.buf.length > this.max) {
          this.emit({ head: this.buf.subarray(0, Math.min(this.buf.length, 8192)), body: Buffer.alloc(0), flow: this.flow, tooLarge: true });
          return false;
        }
        return true;
      }
      const head = this.buf.subarray(0, end);
      this.buf = this.buf.subarray(end + 4);
      const n = contentLength(head);
      if (n === undefined || !Number.isFinite(n)) {
        // RFC 3261 §18.3: Content-Length MUST be used with stream transports; without it the stream
        // cannot be framed any more.
        this.emit({ head, body: Buffer.alloc(0), flow: this.flow, framingError: n !== undefined ? 'Bad Content-Length' : 'Missing Content-Length' });
        return false;
      }
      if (head.length + n > this.max) {
        this.emit({ head, body: Buffer.alloc(0), flow: this.flow, tooLarge: true });
        return false;
      }
      this.need = n;
      this.pendingHead = head;
    }
  }
}

/**
 * The address lookup of Herald's UDP sockets. Herald sends only to resolved flows (RFC 3263 is done
 * before a flow exists), so the address is an IP literal, handed back at once; node's default, dns.lookup,
 * answers a literal on the next tick, one deferred callback per datagram sent.
 */
function literalLookup(address: string, family: unknown, callback: (err: Error | null, address: string, family: number) => void): void {
  const f = net.isIP(address);
  if (f !== 0) callback(null, address, f);
  else dns.lookup(address, { family: family === 6 ? 6 : 4 }, callback);
}

export class Transports {
  /** UDP sockets with their bound port (read once: socket.address() is a system call). */
  private readonly udp: { socket: dgram.Socket; local: ListenAddress; port: number }[] = [];
  private readonly servers: { close(cb?: () => void): unknown }[] = [];
  private readonly connections = new Map<string, Connection>();
  private readonly sockets = new Set<net.Socket>();
  private inbound = 0;
  private wsServers: WebSocketServer[] = [];
  readonly bound: ListenAddress[] = [];
  private readonly badAddress: RateLimitedLog;
  private readonly refused: RateLimitedLog;

  private readonly onMessage: InboundHandler;

  constructor(
    private readonly opts: TransportOptions,
    onMessage: InboundHandler,
    private readonly log: Logger,
    private readonly quick?: QuickResponse,
  ) {
    this.badAddress = new RateLimitedLog(log, 'SIP message to an unusable address dropped');
    this.refused = new RateLimitedLog(log, 'connection refused: too many open (limits.max_connections)');
    this.onMessage = (m) => {
      if (this.tracing()) this.trace('in', m.flow, Buffer.concat([m.head, HEADER_END, m.body]));
      onMessage(m);
    };
  }

  private tracing(): boolean {
    return this.opts.sipTrace === true || this.log.isLevelEnabled('trace');
  }

  /** The SIP message trace: one log line per message, the whole text (bodies included). */
  private trace(dir: 'in' | 'out', flow: Flow, data: Buffer): void {
    const line = { sip: dir, peer: `${flow.protocol}:${flow.address}:${flow.port}`, message: data.toString('utf8') };
    if (this.opts.sipTrace) this.log.info(line, `SIP ${dir}`);
    else this.log.trace(line, `SIP ${dir}`);
  }

  async start(): Promise<void> {
    for (const l of this.opts.listen) {
      if (l.transport === 'udp') await this.listenUdp(l);
      else if (l.transport === 'tcp') await this.listenStream(l, net.createServer());
      else if (l.transport === 'tls') await this.listenStream(l, tls.createServer(this.tlsOptions()));
      else await this.listenWs(l);
    }
  }

  private tlsOptions(): tls.TlsOptions {
    const base = { cert: readFileSync(this.opts.tlsCert!), key: readFileSync(this.opts.tlsKey!) };
    // With a CA, clients are asked for a certificate; one that verifies names the peer (trusted peers
    // by TLS name). A client without one is still served, as any other unauthenticated client.
    return this.opts.tlsCa ? { ...base, ca: readFileSync(this.opts.tlsCa), requestCert: true, rejectUnauthorized: false } : base;
  }

  private listenUdp(l: ListenAddress): Promise<void> {
    const socket = dgram.createSocket({ type: net.isIPv6(l.address) ? 'udp6' : 'udp4', recvBufferSize: 4 * 1024 * 1024, lookup: literalLookup });
    let localPort = 0;
    socket.on('message', (data, rinfo) => {
      // "SI…": only a response ("SIP/2.0 …") can be quick; a SUBSCRIBE ("SU…") is not searched twice.
      if (this.quick !== undefined && data[0] === 0x53 && data[1] === 0x49 && data.length <= this.opts.maxMessageBytes && !this.tracing()) {
        const end = data.indexOf(HEADER_END);
        if (end > 0 && this.quick(data, end)) return;
      }
      const flow: Flow = { protocol: 'UDP', address: rinfo.address, port: rinfo.port, localPort };
      const m = splitDatagram(data, flow, this.opts.maxMessageBytes);
      if (m) this.onMessage(m);
    });
    return new Promise((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(l.port, l.address, () => {
        socket.off('error', reject);
        // After the bind: a bind failure is the start's error (one line naming the key), not a warning too.
        socket.on('error', (e) => this.log.warn({ err: e.message }, 'udp socket error'));
        localPort = socket.address().port;
        this.udp.push({ socket, local: l, port: localPort });
        this.bound.push({ ...l, port: localPort });
        resolve();
      });
    });
  }

  private listenStream(l: ListenAddress, server: net.Server): Promise<void> {
    const protocol: Protocol = l.transport === 'tls' ? 'TLS' : 'TCP';
    server.on(l.transport === 'tls' ? 'secureConnection' : 'connection', (socket: net.Socket) => {
      // A peer must not make Herald hold connections up to the open-file limit (issue 16: 19,900
      // idle ones stayed open).
      if (this.inbound >= (this.opts.maxConnections ?? Infinity)) {
        this.refused.report({ from: `${protocol}:${socket.remoteAddress}:${socket.remotePort}`, open: this.inbound });
        socket.destroy();
        return;
      }
      this.inbound++;
      socket.once('close', () => this.inbound--);
      this.adoptStream(socket, protocol);
    });
    server.on('error', (e) => this.log.warn({ err: e.message }, `${protocol} server error`));
    if (l.transport === 'tls') server.on('tlsClientError', (e: Error) => this.log.debug({ err: e.message }, 'tls handshake failed'));
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(l.port, l.address, () => {
        server.off('error', reject);
        server.on('error', (e) => this.log.warn({ err: e.message }, `${protocol} server error`));
        this.servers.push(server);
        this.bound.push({ ...l, port: (server.address() as net.AddressInfo).port });
        resolve();
      });
    });
  }

  private adoptStream(socket: net.Socket, protocol: Protocol, key?: string): Connection {
    const flow: Flow = { protocol, address: socket.remoteAddress ?? '', port: socket.remotePort ?? 0, localPort: socket.localPort };
    if (socket instanceof tls.TLSSocket && socket.authorized) {
      const names = peerNames(socket.getPeerCertificate());
      if (names.length > 0) flow.tlsNames = names;
    }
    const k = key ?? flowKey(protocol, flow.address, flow.port);
    this.sockets.add(socket);
    let quietSince = Date.now();
    const touch = () => (quietSince = Date.now());
    const conn: Connection = {
      protocol,
      send: (data) => {
        if (socket.destroyed) return;
        touch();
        socket.write(data);
      },
      close: () => socket.destroy(),
    };
    this.connections.set(k, conn);
    const framer = new StreamFramer(flow, this.opts.maxMessageBytes, this.onMessage, () => conn.send(CRLF));
    socket.setNoDelay(true);
    // Inactivity either way: a partial message is closed after PARTIAL_MESSAGE_TIMEOUT_MS (slow-loris),
    // a quiet connection after the idle timeout (RFC 5626 clients keep theirs alive with CRLFs).
    // Node fires a socket's 'timeout' once per inactivity period and does not re-arm it, so a check
    // that finds the connection not yet due (idle longer than the partial-message bound, or a
    // timer that fired a millisecond before quietSince + idle) sets the next one itself.
    const idle = this.opts.idleTimeoutMs ?? Infinity;
    socket.on('timeout', () => {
      const quiet = Date.now() - quietSince;
      if (framer.partial || quiet >= idle) socket.destroy();
      else socket.setTimeout(Math.max(1, Math.min(PARTIAL_MESSAGE_TIMEOUT_MS, idle - quiet)));
    });
    socket.setTimeout(Math.min(PARTIAL_MESSAGE_TIMEOUT_MS, idle));
    socket.on('data', (chunk: Buffer) => {
      touch();
      if (!framer.push(chunk)) socket.end();
    });
    socket.on('error', (e) => this.log.debug({ err: e.message, peer: k }, 'stream error'));
    socket.on('close', () => {
      this.sockets.delete(socket);
      if (this.connections.get(k) === conn) this.connections.delete(k);
    });
    return conn;
  }

  private listenWs(l: ListenAddress): Promise<void> {
    const secure = l.transport === 'wss';
    const httpServer = secure ? https.createServer(this.tlsOptions()) : undefined;
    const wss = new WebSocketServer({
      ...(httpServer ? { server: httpServer } : { port: l.port, host: l.address }),
      maxPayload: this.opts.maxMessageBytes,
      // RFC 7118 §4: the subprotocol is "sip".
      handleProtocols: (protocols) => (protocols.has('sip') ? 'sip' : false),
    });
    wss.on('connection', (ws: WebSocket, req) => {
      const address = req.socket.remoteAddress ?? '';
      const port = req.socket.remotePort ?? 0;
      const flow: Flow = { protocol: 'WS', address, port, localPort: req.socket.localPort };
      const k = flowKey('WS', address, port);
      const conn: Connection = {
        protocol: 'WS',
        send: (data) => ws.send(data.toString('utf8')),
        close: () => ws.terminate(),
      };
      this.connections.set(k, conn);
      ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
        const m = splitDatagram(buf, flow, this.opts.maxMessageBytes);
        if (m) this.onMessage(m);
      });
      ws.on('error', (e) => this.log.debug({ err: e.message }, 'websocket error'));
      ws.on('close', () => {
        if (this.connections.get(k) === conn) this.connections.delete(k);
      });
    });
    this.wsServers.push(wss);
    return new Promise((resolve, reject) => {
      const target = httpServer ?? wss;
      target.once('error', reject);
      const done = (port: number) => {
        target.off('error', reject);
        this.bound.push({ ...l, port });
        resolve();
      };
      if (httpServer) {
        httpServer.listen(l.port, l.address, () => done((httpServer.address() as net.AddressInfo).port));
        this.servers.push(httpServer);
      } else {
        wss.once('listening', () => done((wss.address() as net.AddressInfo).port));
      }
    });
  }

  /** The local address Herald puts in Via/Contact for a protocol. */
  localFor(protocol: Protocol): ListenAddress | undefined {
    const t = protocol.toLowerCase();
    return this.bound.find((b) => b.transport === t || (t === 'ws' && b.transport === 'wss')) ?? this.bound[0];
  }

  hasConnection(flow: Flow): boolean {
    return flow.protocol !== 'UDP' && this.connections.has(flowKey(flow.protocol, flow.address, flow.port));
  }

  /**
   * Sends bytes over a flow: UDP from the listening socket, streams over an open or new connection.
   * Every address here may have been made up by the network (a Via port 0, a Contact port 99999, a
   * Record-Route to nowhere): one that cannot be sent to is a dropped message and a rate-limited
   * warning, never an exception (issue 16: a retransmission to Via port 0 used to end the process).
   * Returns false when nothing was sent. `onFail` hears of a connection that could not be made
   * (RFC 3263 §4.3: a transport error, which makes the client try the next target at once rather
   * than after Timer F).
   */
  send(flow: Flow, data: Buffer, onFail?: () => void): boolean {
    if (this.tracing()) this.trace('out', flow, data);
    if (!sendableAddress(flow)) {
      this.badAddress.report({ to: `${flow.protocol}:${flow.address}:${flow.port}` });
      return false;
    }
    try {
      if (flow.protocol === 'UDP') {
        const u = (this.udp.length > 1 ? this.udp.find((x) => x.port === flow.localPort) : undefined) ?? this.udp[0];
        if (!u) return false;
        // No completion callback (issue 9): with one, node defers a call per datagram (process.nextTick
        // even when the datagram left at once), ~2% of the fan-out's CPU. What it reported — a kernel
        // refusal such as EHOSTUNREACH to an address that passed sendableAddress() — is now not logged;
        // the datagram is lost either way, and a request's client transaction still ends by Timer F.
        u.socket.send(data, flow.port, flow.address);
        return true;
      }
      const key = flowKey(flow.protocol, flow.address, flow.port);
      let conn = this.connections.get(key);
      if (!conn) {
        if (flow.protocol === 'WS') return false; // Herald never opens WebSocket connections: browsers are behind them.
        conn = this.connect(flow, key);
      }
      if (onFail && conn.onFail) conn.onFail.add(onFail);
      conn.send(data);
      return true;
    } catch (e) {
      this.badAddress.report({ to: `${flow.protocol}:${flow.address}:${flow.port}`, err: (e as Error).message });
      return false;
    }
  }

  private connect(flow: Flow, key: string): Connection {
    const socket =
      flow.protocol === 'TLS'
        ? tls.connect({
            host: flow.address,
            port: flow.port,
            // RFC 5922 §4: the certificate must name the domain resolved, not the address it led to.
            servername: flow.serverName ?? (net.isIP(flow.address) ? undefined : flow.address),
            // Peers are verified (Node's CAs, plus sip.tls_ca when set: a federation's private CA).
            ...(this.opts.tlsCa ? { ca: [...tls.rootCertificates, readFileSync(this.opts.tlsCa, 'utf8')] } : {}),
          })
        : net.connect({ host: flow.address, port: flow.port });
    const conn = this.adoptStream(socket, flow.protocol, key);
    const failures = new Set<() => void>();
    conn.onFail = failures;
    socket.once(flow.protocol === 'TLS' ? 'secureConnect' : 'connect', () => {
      delete conn.onFail;
    });
    socket.once('close', () => {
      if (conn.onFail !== failures) return;
      delete conn.onFail;
      for (const f of failures) f();
    });
    return conn;
  }

  async stop(): Promise<void> {
    for (const u of this.udp) u.socket.close();
    for (const s of this.sockets) s.destroy();
    for (const w of this.wsServers) {
      for (const c of w.clients) c.terminate();
      w.close();
    }
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.connections.clear();
  }
}
