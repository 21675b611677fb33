// The XEP-0114 component stream: one TCP connection to the XMPP server, its stream header, the
// handshake, and the incoming XML read into elements — with the XMPP server treated as hostile input
// (issue 16).
//
// Hand-written rather than @xmpp/component's connection because that one is a remote crash: it feeds
// socket data to its parser outside any try (ltx throws "Illegal XML character" on `&#0;`), drops its
// parser on the first XML error while the socket goes on delivering data ("Cannot read properties of
// null (reading 'write')"), lets the parser emit a second 'error' with no listener ("XMLError: message
// must be closed.") and parses every from/to JID inside that path for its middleware ("Invalid
// domain."). The XML itself is still read by @xmpp/xml's streaming parser (ltx); what this module adds
// is the guard around it. XEP-0114 needs little else: a header, a SHA-1 handshake, stanzas.
import { createHash } from 'node:crypto';
import net from 'node:net';
import { Parser, type Element } from '@xmpp/xml';

const NS_COMPONENT = 'jabber:component:accept';
const NS_STREAM = 'http://etherx.jabber.org/streams';
const NS_STREAM_ERRORS = 'urn:ietf:params:xml:ns:xmpp-streams';

/**
 * XML 1.0 §2.2 `Char` excludes these; RFC 6120 §11.1 makes a stream that carries them not
 * well-formed (ltx would pass raw ones through into PIDF and SIP).
 */
// eslint-disable-next-line no-control-regex
const NOT_XML_CHAR = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

/** A connection-level failure: the stream ends with this RFC 6120 §4.9.3 condition. */
export class StreamFailure extends Error {
  constructor(
    readonly condition: string,
    message: string,
  ) {
    super(message);
    this.name = 'StreamFailure';
  }
}

export interface ComponentStreamOptions {
  /** xmpp://host:port (XEP-0114's port 5347 when none is given). */
  service: string;
  domain: string;
  secret: string;
  /** Connect, header and handshake must be done within this. */
  timeoutMs?: number;
  /**
   * Most bytes one top-level element may take (RFC 6120 §13.12: at least 10,000 must be accepted);
   * beyond it the stream ends with policy-violation rather than buffering without bound.
   */
  maxStanzaBytes?: number;
}

/** The surface ComponentConnection uses (a seam for tests). */
export interface StanzaStream {
  start(): Promise<void>;
  send(el: Element): Promise<void>;
  stop(): Promise<void>;
  onStanza(fn: (el: Element) => void): void;
  /** Called once when the stream is gone after start() resolved (with why, unless stopped). */
  onClose(fn: (err: Error | undefined) => void): void;
}

export function serviceAddress(service: string): { host: string; port: number } {
  const u = new URL(service);
  return { host: u.hostname.replace(/^\[|\]$/g, ''), port: u.port === '' ? 5347 : Number(u.port) };
}

export class ComponentStream implements StanzaStream {
  private socket: net.Socket | undefined;
  private parser: Parser | undefined;
  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private failed = false;
  private online = false;
  private closed = false;
  private pendingBytes = 0;
  private stanzaFn: (el: Element) => void = () => undefined;
  private closeFn: (err: Error | undefined) => void = () => undefined;
  private lastError: Error | undefined;
  private handshake: { resolve: () => void; reject: (e: Error) => void } | undefined;

  constructor(private readonly o: ComponentStreamOptions) {}

  onStanza(fn: (el: Element) => void): void {
    this.stanzaFn = fn;
  }

  onClose(fn: (err: Error | undefined) => void): void {
    this.closeFn = fn;
  }

  start(): Promise<void> {
    const { host, port } = serviceAddress(this.o.service);
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(new StreamFailure('connection-timeout', `no handshake within ${this.o.timeoutMs ?? 15_000} ms`)), this.o.timeoutMs ?? 15_000);
      this.handshake = {
        resolve: () => (clearTimeout(timer), resolve()),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
      const s = net.connect({ host, port });
      this.socket = s;
      s.on('connect', () => {
        this.parser = this.newParser();
        this.write(`<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' xmlns:stream='${NS_STREAM}' to='${escapeAttr(this.o.domain)}'>`);
      });
      s.on('data', (d: Buffer) => this.data(d));
      s.on('error', (err) => {
        this.lastError ??= err;
      });
      s.on('close', () => this.closedNow());
    });
  }

  send(el: Element): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const s = this.socket;
      if (!this.online || !s || s.destroyed || !s.writable) {
        reject(new Error('component stream not online'));
        return;
      }
      s.write(el.toString(), (err) => (err ? reject(err) : resolve()));
    });
  }

  /** RFC 6120 §4.4: close our stream, then the connection (without waiting long for the peer's close). */
  async stop(): Promise<void> {
    const s = this.socket;
    this.online = false;
    this.closeFn = () => undefined;
    if (!s || s.destroyed) return;
    this.write('</stream:stream>');
    s.end();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        s.destroy();
        resolve();
      }, 2000);
      s.once('close', () => (clearTimeout(t), resolve()));
    });
  }

  private write(str: string): void {
    const s = this.socket;
    if (s && !s.destroyed && s.writable) s.write(str);
  }

  private newParser(): Parser {
    const p = new Parser();
    p.on('start', (root: Element) => {
      if (this.failed) return;
      if (root.name !== 'stream:stream' || root.attrs['xmlns:stream'] !== NS_STREAM) {
        this.fail(new StreamFailure('invalid-namespace', `stream header <${root.name}>`));
        return;
      }
      // XEP-0114 §3: the handshake is SHA-1 of the stream id and the shared secret, in hex.
      const id = root.attrs['id'] ?? '';
      this.write(`<handshake>${createHash('sha1').update(id + this.o.secret, 'binary').digest('hex')}</handshake>`);
    });
    p.on('element', (el: Element) => {
      if (this.failed) return;
      this.pendingBytes = 0;
      this.element(el);
    });
    p.on('end', () => {
      // The server closed its stream (RFC 6120 §4.4): close ours and the connection.
      if (this.failed) return;
      this.failed = true;
      this.lastError ??= new Error('stream closed by the XMPP server');
      this.write('</stream:stream>');
      this.socket?.end();
    });
    p.on('error', (err: Error) => this.fail(new StreamFailure('not-well-formed', err.message)));
    return p;
  }

  private element(el: Element): void {
    if (el.name === 'stream:error') {
      const cond = el.children.find((c): c is Element => typeof c !== 'string' && c.attrs['xmlns'] === NS_STREAM_ERRORS && c.name !== 'text');
      // RFC 6120 §4.9.1.1: a stream error is unrecoverable; the receiver closes the stream.
      this.lastError = new StreamFailure(cond?.name ?? 'undefined-condition', `stream error from the XMPP server: ${cond?.name ?? 'unknown'}`);
      this.failed = true;
      this.write('</stream:stream>');
      this.socket?.end();
      this.handshake?.reject(this.lastError);
      return;
    }
    if (!this.online) {
      if (el.name === 'handshake') {
        this.online = true;
        this.handshake?.resolve();
        this.handshake = undefined;
      } else this.fail(new StreamFailure('not-authorized', `<${el.name}> before the handshake`));
      return;
    }
    this.stanzaFn(el);
  }

  private data(d: Buffer): void {
    if (this.failed || !this.parser) return;
    this.pendingBytes += d.length;
    if (this.pendingBytes > (this.o.maxStanzaBytes ?? 1 << 20)) {
      this.fail(new StreamFailure('policy-violation', `a stanza over ${this.o.maxStanzaBytes ?? 1 << 20} bytes`));
      return;
    }
    let str: string;
    try {
      str = this.decoder.decode(d, { stream: true });
    } catch {
      this.fail(new StreamFailure('unsupported-encoding', 'not UTF-8 (RFC 6120 §11.6)'));
      return;
    }
    if (NOT_XML_CHAR.test(str)) {
      this.fail(new StreamFailure('not-well-formed', 'a character XML does not allow'));
      return;
    }
    try {
      this.parser.write(str);
    } catch (err) {
      // ltx throws on bad references and on end tags without a start; either ends the stream.
      this.fail(new StreamFailure('not-well-formed', err instanceof Error ? err.message : String(err)));
    }
  }

  /** A connection-level error: RFC 6120 §4.9.1.1 stream error, close, and nothing more is read. */
  private fail(err: StreamFailure): void {
    if (this.failed) return;
    this.failed = true;
    this.lastError = err;
    this.write(`<stream:error><${err.condition} xmlns='${NS_STREAM_ERRORS}'/></stream:error></stream:stream>`);
    const s = this.socket;
    s?.end();
    // Do not wait for a peer that keeps the connection open.
    setTimeout(() => s?.destroy(), 1000).unref();
    this.handshake?.reject(err);
  }

  private closedNow(): void {
    if (this.closed) return;
    this.closed = true;
    this.failed = true;
    this.parser?.removeAllListeners();
    this.parser = undefined;
    const wasOnline = this.online;
    this.online = false;
    if (this.handshake) {
      this.handshake.reject(this.lastError ?? new Error('connection closed before the handshake'));
      this.handshake = undefined;
      return;
    }
    if (wasOnline) this.closeFn(this.lastError);
  }
}

function escapeAttr(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
