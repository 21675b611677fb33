// A scripted XMPP server's component port (XEP-0114) for tests that treat the XMPP side as hostile:
// it accepts any handshake, then sends whatever a test writes, and keeps what the component sent.
import net from 'node:net';
import { rnd } from './ua.js';

export class ScriptedXmppServer {
  private readonly server = net.createServer();
  socket: net.Socket | undefined;
  /** Component connections that completed the handshake, in all. */
  connections = 0;
  /** What the component sent on the current connection. */
  received = '';
  private ready: (() => void) | undefined;
  private waiters: { pred: (s: string) => boolean; resolve: () => void }[] = [];
  port = 0;

  constructor(private readonly domain = 'sip.xmpp.test') {}

  async start(): Promise<void> {
    this.server.on('connection', (s) => {
      s.on('error', () => undefined);
      s.on('data', (d) => {
        const t = d.toString();
        if (t.includes('<stream:stream')) s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' from='${this.domain}' id='x${rnd()}'>`);
        if (t.includes('<handshake')) {
          this.socket?.destroy();
          this.socket = s;
          this.received = '';
          this.connections++;
          s.write('<handshake/>');
          this.ready?.();
          return;
        }
        if (s !== this.socket) return;
        this.received += t;
        this.waiters = this.waiters.filter((w) => (w.pred(this.received) ? (w.resolve(), false) : true));
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as net.AddressInfo).port;
  }

  get service(): string {
    return `xmpp://127.0.0.1:${this.port}`;
  }

  /** Resolves once a component is connected (at once when one is). */
  online(timeoutMs = 10_000): Promise<void> {
    if (this.socket && !this.socket.destroyed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('component did not connect')), timeoutMs);
      this.ready = () => (clearTimeout(t), resolve());
    });
  }

  /** Resolves when what the component sent on this connection satisfies `pred`. */
  until(pred: (received: string) => boolean, timeoutMs = 10_000): Promise<void> {
    if (pred(this.received)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`component did not send what was expected; it sent: ${this.received.slice(0, 500)}`)), timeoutMs);
      this.waiters.push({ pred, resolve: () => (clearTimeout(t), resolve()) });
    });
  }

  /** Resolves when the current connection closes. */
  closed(timeoutMs = 10_000): Promise<void> {
    const s = this.socket;
    if (!s || s.destroyed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('component kept the connection open')), timeoutMs);
      s.once('close', () => (clearTimeout(t), resolve()));
    });
  }

  write(s: string | Buffer): void {
    this.socket!.write(s);
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}
