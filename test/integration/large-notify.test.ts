// A NOTIFY larger than any UDP datagram (65,507 bytes over IPv4) to a subscriber reached over UDP
// goes over TCP to the same address and port (RFC 3261 §18.1.1); it used to fail silently and remove
// the subscription. Only when TCP fails too does the usual failure path run (subscription removed),
// with a log line saying why. Requests that fit in a datagram still go over UDP (the 1300-byte rule is
// deliberately not applied: see src/sip/stack.ts). Real sockets: the watcher listens on UDP and,
// in the first case, on TCP at the same port.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const ALICE = 'sip:alice@example.test';

/** A subscriber's TCP side: reads framed SIP requests, answers each 200, and keeps them. */
class TcpSide {
  readonly requests: string[] = [];
  private readonly sockets = new Set<net.Socket>();
  private readonly server = net.createServer((s) => {
    this.sockets.add(s);
    let buf = Buffer.alloc(0);
    s.on('error', () => undefined);
    s.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const head = buf.subarray(0, end).toString('latin1');
        const len = Number(/\r\ncontent-length\s*:\s*(\d+)/i.exec(head)?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const msg = buf.subarray(0, end + 4 + len).toString('utf8');
        buf = buf.subarray(end + 4 + len);
        this.requests.push(msg);
        const lines = head.split('\r\n');
        const keep = lines.filter((l) => /^(via|from|to|call-id|cseq)\s*:/i.test(l));
        s.write(['SIP/2.0 200 OK', ...keep, 'Content-Length: 0', '', ''].join('\r\n'));
        this.waiter?.();
      }
    });
  });
  private waiter: (() => void) | undefined;
  listen(port: number): Promise<void> {
    return new Promise((r) => this.server.listen(port, '127.0.0.1', () => r()));
  }
  next(timeoutMs = 10_000): Promise<string> {
    const n = this.requests.length;
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no request over TCP')), timeoutMs);
      this.waiter = () => {
        if (this.requests.length > n) {
          clearTimeout(t);
          this.waiter = undefined;
          resolve(this.requests[n]!);
        }
      };
    });
  }
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy(); // Herald keeps its connection open (idle timeout)
    return new Promise((r) => this.server.close(() => r()));
  }
}

describe('NOTIFY larger than a UDP datagram (RFC 3261 §18.1.1)', () => {
  let h: TestHerald;
  let publisher: TestUA;
  const warnings: string[] = [];

  before(async () => {
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString().split('\n')) if (l) warnings.push((JSON.parse(l) as { msg: string }).msg);
        cb();
      },
    });
    h = await startTestHerald(
      { sip: { max_message_bytes: 400_000 }, presence: { max_document_bytes: 300_000 }, policy: { default: 'allow' } },
      { log: pino({ level: 'warn' }, sink) },
    );
    publisher = await TestUA.open('tcp', '127.0.0.1', h.port('tcp'));
  });
  after(async () => {
    publisher.close();
    await h.stop();
  });

  /** One publication of alice's, modified each time (so the state is the last note alone). */
  let etag: string | undefined;
  const publish = async (note: string): Promise<void> => {
    const r = await publisher.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '60', ...(etag ? { 'SIP-If-Match': etag } : {}) }, body: pidf(ALICE, { note }) });
    assert.equal(r.status, 200, `PUBLISH: ${r.status} ${r.reason}`);
    etag = r.h('sip-etag');
  };

  test('goes over TCP to the same address and port; the subscription lives on, smaller NOTIFYs stay on UDP', async () => {
    const watcher = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const tcp = new TcpSide();
    await tcp.listen(watcher.localPort);
    const callId = rnd();
    assert.equal((await watcher.request('SUBSCRIBE', ALICE, { from: 'sip:bob@example.test', callId, headers: { Event: 'presence', Expires: '600' } })).status, 200);
    await watcher.nextRequest((r) => r.method === 'NOTIFY' && r.callId === callId);

    const big = `big-${'x'.repeat(100_000)}`;
    const overTcp = tcp.next();
    await publish(big);
    const notify = await overTcp;
    assert.match(notify, /^NOTIFY /);
    assert.match(notify, /\r\nVia: SIP\/2\.0\/TCP /i, 'its Via names the transport it went over');
    assert.ok(notify.includes(big), 'the whole document');
    assert.ok(Buffer.byteLength(notify) > 65_507);

    const small = `small-${rnd()}`;
    await publish(small);
    const n = await watcher.nextRequest((r) => r.method === 'NOTIFY' && r.callId === callId && r.body.includes(small));
    assert.ok(n, 'the subscription is still there, and a NOTIFY that fits a datagram came over UDP');
    assert.equal(tcp.requests.length, 1, 'only the large one went over TCP');
    assert.equal(h.herald.notifier.subscriptionsOf(ALICE).filter((s) => s.callId === callId).length, 1);
    watcher.close();
    await tcp.close();
  });

  test('when TCP fails too the subscription is removed, with a log line that says why', async () => {
    const watcher = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const callId = rnd();
    assert.equal((await watcher.request('SUBSCRIBE', ALICE, { from: 'sip:carol@example.test', callId, headers: { Event: 'presence', Expires: '600' } })).status, 200);
    await watcher.nextRequest((r) => r.method === 'NOTIFY' && r.callId === callId);
    await publish(`big-${'y'.repeat(100_000)}`);
    // Nothing listens on TCP at the watcher's port: the connection is refused at once.
    for (let i = 0; i < 200 && h.herald.notifier.subscriptionsOf(ALICE).some((s) => s.callId === callId); i++) await new Promise((r) => setTimeout(r, 50));
    assert.equal(h.herald.notifier.subscriptionsOf(ALICE).filter((s) => s.callId === callId).length, 0, 'removed');
    assert.ok(warnings.some((w) => w.includes('larger than a UDP datagram not delivered')), warnings.join('\n'));
    watcher.close();
  });
});
