// Addresses the network made up (issue 16, finding 1): a Via, Contact, Record-Route or upstream proxy
// naming port 0, 65536 or 99999 is a dropped message and a log line on every send path — responses,
// their retransmissions, NOTIFYs and their Timer E retransmissions, upstream requests — never an
// exception that ends the process. Each case is followed by an ordinary OPTIONS that must be answered.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { TestUA, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function options(viaPort: string, branch: string, callId: string): Buffer {
  return Buffer.from(
    [
      'OPTIONS sip:example.test SIP/2.0',
      `Via: SIP/2.0/UDP 127.0.0.1:${viaPort};branch=${branch}`,
      'Max-Forwards: 70',
      'From: <sip:x@example.test>;tag=1',
      'To: <sip:example.test>',
      `Call-ID: ${callId}`,
      'CSeq: 1 OPTIONS',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
    'latin1',
  );
}

describe('a bad address on any send path drops the message, never the process', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald({ gateway: { sip: { enabled: true, policy: 'any', min_retry: 60, peers: [{ domain: 'remote.test', outbound_proxy: 'sip:127.0.0.1:65536' }] } } });
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  async function stillAnswering(): Promise<void> {
    const r = await ua.request('OPTIONS', 'sip:example.test', { from: 'sip:probe@example.test' });
    assert.equal(r.status, 200);
  }

  for (const port of ['0', '65536', '99999']) {
    test(`OPTIONS with Via port ${port}, then its retransmission (answered from the transaction)`, async () => {
      const s = dgram.createSocket('udp4');
      await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
      const m = options(port, `z9hG4bKport${port}${rnd()}`, `port${port}${rnd()}`);
      s.send(m, h.port('udp'), '127.0.0.1');
      await sleep(100);
      s.send(m, h.port('udp'), '127.0.0.1');
      await sleep(200);
      s.close();
      await stillAnswering();
    });
  }

  test('SUBSCRIBE whose Contact has port 0: the NOTIFY and its Timer E retransmissions go nowhere', async () => {
    const r = await ua.request('SUBSCRIBE', 'sip:alice@example.test', {
      from: 'sip:bob@example.test',
      contact: false,
      headers: { Contact: '<sip:bob@127.0.0.1:0>', Event: 'presence', Expires: '60' },
    });
    assert.equal(r.status, 200);
    await sleep(1700); // Timer E fires at 0.5 s and 1.5 s
    await stillAnswering();
  });

  test('SUBSCRIBE whose Contact is TCP port 99999 and whose Record-Route names port 65536', async () => {
    const r1 = await ua.request('SUBSCRIBE', 'sip:alice@example.test', {
      from: 'sip:bob@example.test',
      contact: false,
      headers: { Contact: '<sip:bob@127.0.0.1:99999;transport=tcp>', Event: 'presence', Expires: '60' },
    });
    assert.equal(r1.status, 200);
    const r2 = await ua.request('SUBSCRIBE', 'sip:alice@example.test', {
      from: 'sip:carol@example.test',
      headers: { 'Record-Route': '<sip:127.0.0.1:65536;lr>', Event: 'presence', Expires: '60' },
    });
    assert.equal(r2.status, 200);
    await sleep(1700);
    await stillAnswering();
  });

  test('an upstream SUBSCRIBE to a proxy at port 65536', async () => {
    const r = await ua.request('SUBSCRIBE', 'sip:dave@remote.test', { from: 'sip:bob@example.test', headers: { Event: 'presence', Expires: '60' } });
    assert.ok(r.status !== undefined && r.status >= 200);
    await sleep(1700);
    await stillAnswering();
  });
});
