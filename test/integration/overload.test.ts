// Overload control and caps on what one peer can make Herald hold (issue 16 #4), over real sockets:
// a SUBSCRIBE flood gets 503 with Retry-After for its excess while OPTIONS probes stay answered;
// subscriptions per source, publications per presentity, inbound TCP connections (count and idle
// time) and responses kept for Timer J are bounded.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function subscribe(port: number, i: number): Buffer {
  return Buffer.from(
    [
      `SUBSCRIBE sip:user${i % 50}@example.test SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=z9hG4bKflood${i}x${rnd()};rport`,
      'Max-Forwards: 70',
      `From: <sip:w${i}@example.test>;tag=${i}`,
      `To: <sip:user${i % 50}@example.test>`,
      `Call-ID: flood-${i}-${rnd()}`,
      'CSeq: 1 SUBSCRIBE',
      `Contact: <sip:w@127.0.0.1:${port}>`,
      'Event: presence',
      'Expires: 60',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
}

function optionsWithVias(port: number, branch: string, vias: number): Buffer {
  const extra = Array.from({ length: vias }, (_, i) => `Via: SIP/2.0/UDP 10.0.${i >> 8}.${i & 255}:5060;branch=z9hG4bKhop${i}`);
  return Buffer.from(
    [
      'OPTIONS sip:example.test SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${port};branch=${branch};rport`,
      ...extra,
      'Max-Forwards: 70',
      'From: <sip:x@example.test>;tag=1',
      'To: <sip:example.test>',
      `Call-ID: ${branch}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  );
}

describe('overload: a SUBSCRIBE flood', () => {
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald({ limits: { max_pending_requests: 20, max_event_loop_delay: 50, retry_after: 7 } });
  });
  after(() => h.stop());

  test('excess gets 503 with Retry-After; every OPTIONS probe is answered', async () => {
    const flood = dgram.createSocket({ type: 'udp4', recvBufferSize: 8 * 1024 * 1024 });
    await new Promise<void>((r) => flood.bind(0, '127.0.0.1', () => r()));
    const port = flood.address().port;
    const answers = new Map<number, number>();
    let withRetryAfter = 0;
    flood.on('message', (m) => {
      const text = m.toString('latin1');
      const st = /^SIP\/2\.0 (\d{3})/.exec(text);
      if (!st) return; // NOTIFYs, left unanswered
      const status = Number(st[1]);
      answers.set(status, (answers.get(status) ?? 0) + 1);
      if (status === 503 && /\r\nRetry-After: 7\r\n/i.test(text)) withRetryAfter++;
    });
    const probe = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const probes: Promise<number>[] = [];
    const TOTAL = 3000;
    for (let i = 0; i < TOTAL; i += 150) {
      for (let k = i; k < i + 150; k++) flood.send(subscribe(port, k), h.port('udp'), '127.0.0.1');
      probes.push(probe.request('OPTIONS', 'sip:example.test', { from: 'sip:probe@example.test' }, 15_000).then((r) => r.status!));
      await sleep(5);
    }
    const statuses = await Promise.all(probes);
    await sleep(500);
    flood.close();
    probe.close();
    assert.deepEqual(new Set(statuses), new Set([200]), 'every OPTIONS probe answered 200');
    const shed = answers.get(503) ?? 0;
    assert.ok(shed > 0, `some SUBSCRIBEs shed (answers: ${JSON.stringify([...answers])})`);
    assert.equal(withRetryAfter, shed, 'each 503 carries Retry-After');
    assert.ok((answers.get(200) ?? 0) > 0, 'some served');
  });
});

describe('limits: what one peer can make Herald hold', () => {
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald({
      limits: { max_subscriptions_per_source: 3, max_publications_per_presentity: 2, max_connections: 5, connection_idle_timeout: 1, max_retained_response_bytes: 4096 },
    });
  });
  after(() => h.stop());

  test('subscriptions per source address: the 4th is refused', async () => {
    const ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await ua.request('SUBSCRIBE', `sip:s${i}@example.test`, { from: 'sip:w@example.test', headers: { Event: 'presence', Expires: '60' } })).status!);
    ua.close();
    assert.deepEqual(statuses, [200, 200, 200, 403]);
  });

  test('publications per presentity: the 3rd device is refused', async () => {
    const ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await ua.request('PUBLISH', 'sip:p@example.test', { from: 'sip:p@example.test', headers: { Event: 'presence', Expires: '60' }, body: pidf('sip:p@example.test', { tuple: `t${i}` }) })).status!);
    ua.close();
    assert.deepEqual(statuses, [200, 200, 403]);
  });

  test('inbound TCP connections: at most max_connections, and idle ones are closed', async () => {
    const sockets = await Promise.all(
      Array.from({ length: 8 }, () => new Promise<{ s: net.Socket; closed: boolean }>((resolve) => {
        const s = net.connect({ host: '127.0.0.1', port: h.port('tcp') });
        const st = { s, closed: false };
        s.on('close', () => (st.closed = true));
        s.on('error', () => undefined);
        s.on('connect', () => resolve(st));
      })),
    );
    await sleep(300);
    assert.ok(sockets.filter((x) => x.closed).length >= 3, 'connections past the cap are closed');
    await sleep(2500);
    assert.equal(sockets.filter((x) => x.closed).length, 8, 'idle connections are closed after the idle timeout');
  });

  test('a final response larger than max_retained_response_bytes is not kept for retransmissions', async () => {
    const s = dgram.createSocket('udp4');
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const got = new Map<string, number>();
    s.on('message', (m) => {
      const b = /branch=(z9hG4bK[^;\r\n]+)/.exec(m.toString('latin1'))?.[1] ?? '';
      got.set(b, (got.get(b) ?? 0) + 1);
    });
    const big = `z9hG4bKbig${rnd()}`;
    const small = `z9hG4bKsmall${rnd()}`;
    for (const [b, vias] of [[big, 200], [small, 0]] as const) {
      const m = optionsWithVias(s.address().port, b, vias);
      s.send(m, h.port('udp'), '127.0.0.1');
      await sleep(100);
      s.send(m, h.port('udp'), '127.0.0.1');
    }
    await sleep(300);
    s.close();
    assert.equal(got.get(big), 1, 'the big answer went out once');
    assert.equal(got.get(small), 2, 'the small one is resent for the retransmission');
  });
});
