// Hostile input over real sockets: each kind gets the right answer or is dropped, and Herald keeps
// serving everyone else (checked after every case with a normal PUBLISH and a NOTIFY).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const ALICE = 'sip:alice@example.test';

function rawRequest(opts: { method?: string; cseqMethod?: string; omit?: string[]; extra?: string[]; body?: Buffer | string; contentLength?: string; port: number; proto?: string }): Buffer {
  const method = opts.method ?? 'PUBLISH';
  const body = typeof opts.body === 'string' ? Buffer.from(opts.body, 'utf8') : (opts.body ?? Buffer.alloc(0));
  const headers: [string, string][] = [
    ['Via', `SIP/2.0/${opts.proto ?? 'UDP'} 127.0.0.1:${opts.port};branch=z9hG4bK${rnd()};rport`],
    ['Max-Forwards', '70'],
    ['From', `<${ALICE}>;tag=${rnd()}`],
    ['To', `<${ALICE}>`],
    ['Call-ID', rnd()],
    ['CSeq', `1 ${opts.cseqMethod ?? method}`],
    ['Event', 'presence'],
    ['Content-Type', 'application/pidf+xml'],
    ['Content-Length', opts.contentLength ?? String(body.length)],
  ];
  const lines = headers.filter(([n]) => !(opts.omit ?? []).includes(n)).map(([n, v]) => `${n}: ${v}`);
  return Buffer.concat([Buffer.from(`${method} ${ALICE} SIP/2.0\r\n${[...lines, ...(opts.extra ?? [])].join('\r\n')}\r\n\r\n`, 'latin1'), body]);
}

/** Sends bytes over a fresh TCP connection; resolves with what came back before it closed or went quiet. */
function overTcp(port: number, data: Buffer, quietMs = 300): Promise<{ text: string; closed: boolean }> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let text = '';
    let closed = false;
    let t: NodeJS.Timeout;
    const done = () => {
      clearTimeout(t);
      s.destroy();
      resolve({ text, closed });
    };
    const arm = () => {
      clearTimeout(t);
      t = setTimeout(done, quietMs);
    };
    s.on('data', (d) => {
      text += d.toString('latin1');
      arm();
    });
    s.on('close', () => {
      closed = true;
      done();
    });
    s.on('error', () => undefined);
    s.on('connect', () => {
      s.write(data);
      arm();
    });
  });
}

describe('hostile input', () => {
  let h: TestHerald;
  let ua: TestUA;
  let watcher: TestUA;
  let watchCall: string;
  before(async () => {
    h = await startTestHerald({ sip: { max_message_bytes: 4096 }, presence: { max_document_bytes: 2048, max_xml_depth: 16 } });
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    watcher = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    watchCall = rnd();
    const r = await watcher.request('SUBSCRIBE', ALICE, { from: 'sip:bob@example.test', callId: watchCall, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(r.status, 200);
  });
  after(async () => {
    ua.close();
    watcher.close();
    await h.stop();
  });

  /** After each hostile message: a normal PUBLISH still works and the watcher is notified of it. */
  async function stillServing(): Promise<void> {
    const note = `ok-${rnd()}`;
    const r = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '60' }, body: pidf(ALICE, { note }) });
    assert.equal(r.status, 200);
    await watcher.nextRequest((m) => m.method === 'NOTIFY' && m.callId === watchCall && m.body.includes(note));
  }

  async function udpAnswer(data: Buffer, ms = 300): Promise<string[]> {
    const got: string[] = [];
    const sock = (await import('node:dgram')).createSocket('udp4');
    await new Promise<void>((r) => sock.bind(0, '127.0.0.1', () => r()));
    sock.on('message', (m) => got.push(m.toString('latin1')));
    sock.send(data, h.port('udp'), '127.0.0.1');
    await new Promise((r) => setTimeout(r, ms));
    sock.close();
    return got;
  }

  test('garbage start line: dropped', async () => {
    const got = await udpAnswer(Buffer.from('HELLO WORLD\r\nfoo\r\n\r\n'));
    assert.equal(got.length, 0);
    await stillServing();
  });

  test('malformed header line: dropped', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, extra: ['this is not a header'] }));
    assert.equal(got.length, 0);
    await stillServing();
  });

  test('missing Call-ID: 400 naming it', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, omit: ['Call-ID'] }));
    assert.equal(got.length, 1);
    assert.match(got[0]!, /^SIP\/2\.0 400 Missing or malformed Call-ID/);
    await stillServing();
  });

  test('missing From and To: 400', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, omit: ['From', 'To'] }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 400 /);
    await stillServing();
  });

  test('missing Via: dropped (nowhere to answer)', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, omit: ['Via'] }));
    assert.equal(got.length, 0);
    await stillServing();
  });

  test('CSeq method differs from the request method: 400', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, cseqMethod: 'SUBSCRIBE' }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 400 /);
    await stillServing();
  });

  test('UDP datagram larger than max_message_bytes: 413', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, body: pidf(ALICE, { note: 'x'.repeat(6000) }) }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 413 /);
    await stillServing();
  });

  test('UDP body shorter than Content-Length: 400', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, body: pidf(ALICE), contentLength: '3000' }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 400 /);
    await stillServing();
  });

  test('XML with a DOCTYPE / entity declarations: 400, no expansion', async () => {
    const lol = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${ALICE}"><tuple id="a"><status><basic>open</basic></status><note>&lol2;</note></tuple></presence>`;
    const r = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence' }, body: lol });
    assert.equal(r.status, 400);
    await stillServing();
  });

  test('deep nesting: 400', async () => {
    const deep = `<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${ALICE}"><tuple id="a"><status><basic>open</basic></status>${'<x:e xmlns:x="urn:x">'.repeat(40)}${'</x:e>'.repeat(40)}</tuple></presence>`;
    const r = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence' }, body: deep });
    assert.equal(r.status, 400);
    await stillServing();
  });

  test('non-UTF-8 body: 400', async () => {
    const bad = Buffer.concat([Buffer.from(`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${ALICE}"><tuple id="a"><status><basic>open</basic></status><note>`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('</note></tuple></presence>')]);
    const got = await udpAnswer(rawRequest({ port: 1, body: bad }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 400 /);
    await stillServing();
  });

  test('TCP: missing Content-Length: 400 and the connection is closed', async () => {
    const r = await overTcp(h.port('tcp'), rawRequest({ port: 1, proto: 'TCP', omit: ['Content-Length'] }));
    assert.match(r.text, /^SIP\/2\.0 400 Missing Content-Length/);
    assert.equal(r.closed, true);
    await stillServing();
  });

  test('TCP: non-numeric Content-Length: 400 and closed (no unbounded buffering)', async () => {
    const r = await overTcp(h.port('tcp'), rawRequest({ port: 1, proto: 'TCP', contentLength: 'abc' }));
    assert.match(r.text, /^SIP\/2\.0 400 Bad Content-Length/);
    assert.equal(r.closed, true);
    await stillServing();
  });

  test('TCP: Content-Length beyond the bound: 413 and closed', async () => {
    const r = await overTcp(h.port('tcp'), rawRequest({ port: 1, proto: 'TCP', contentLength: '99999999' }));
    assert.match(r.text, /^SIP\/2\.0 413 /);
    assert.equal(r.closed, true);
    await stillServing();
  });

  test('TCP: endless header section: closed', async () => {
    const r = await overTcp(h.port('tcp'), Buffer.from(`PUBLISH ${ALICE} SIP/2.0\r\n${'X-Junk: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n'.repeat(300)}`));
    assert.equal(r.closed, true);
    await stillServing();
  });

  test('TCP: a CRLF keep-alive is answered (RFC 5626 §4.4.1) and the connection stays usable', async () => {
    const r = await overTcp(h.port('tcp'), Buffer.from('\r\n\r\n'));
    assert.equal(r.text, '\r\n');
    assert.equal(r.closed, false);
  });

  test('methods Herald does not serve: 405 with Allow; unknown ones 501', async () => {
    const got = await udpAnswer(rawRequest({ port: 1, method: 'INFO' }));
    assert.match(got[0] ?? '', /^SIP\/2\.0 405 /);
    assert.match(got[0] ?? '', /Allow: .*SUBSCRIBE/);
    const got2 = await udpAnswer(rawRequest({ port: 1, method: 'FROBNICATE' }));
    assert.match(got2[0] ?? '', /^SIP\/2\.0 501 /);
    await stillServing();
  });
});
