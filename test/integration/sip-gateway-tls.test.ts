// The presence B2BUA over TLS and TCP (issue 5: "UDP, TCP and TLS"; UDP is sip-gateway.test.ts): Herald
// subscribes upstream through a peer's outbound proxy (over TLS verifying its certificate against
// sip.tls_ca), and relays the NOTIFY that comes back on the same connection to a local watcher.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import tls from 'node:tls';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import sip from 'sip';
import { TestUA, rnd } from '../support/ua.js';
import { startTestHerald } from '../support/herald.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));
const BOB = 'sip:bob@remote.test';
const PIDF = `<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${BOB}"><tuple id="t"><status><basic>open</basic></status><note>over-tls</note></tuple></presence>`;

/** A remote domain's presence server on TLS or TCP: 200 to SUBSCRIBE, then a NOTIFY with bob's PIDF on the same connection. */
function upstream(proto: 'tls' | 'tcp'): Promise<{ port: number; subscribes: string[]; close: () => void }> {
  const subscribes: string[] = [];
  const onSocket = (socket: net.Socket) => {
    let buf = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      buf += d;
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const len = Number(/content-length\s*:\s*(\d+)/i.exec(buf.slice(0, end))?.[1] ?? 0);
        if (buf.length < end + 4 + len) return;
        const text = buf.slice(0, end + 4 + len);
        buf = buf.slice(end + 4 + len);
        const m = sip.parse(text);
        if (!m?.method || m.method !== 'SUBSCRIBE') continue;
        subscribes.push(text);
        const h = m.headers;
        const raw = (name: string) => new RegExp(`^${name}\\s*:\\s*(.*)$`, 'im').exec(text)?.[1]?.trim() ?? '';
        const tag = rnd();
        const expires = raw('Expires') || '600';
        const via = raw('Via');
        socket.write(`SIP/2.0 200 OK\r\nVia: ${via}\r\nFrom: ${raw('From')}\r\nTo: ${raw('To')};tag=${tag}\r\nCall-ID: ${h['call-id']}\r\nCSeq: ${h.cseq!.seq} SUBSCRIBE\r\nContact: <sip:pres@127.0.0.1:${server.address() && (server.address() as { port: number }).port};transport=${proto}>\r\nExpires: ${expires}\r\nContent-Length: 0\r\n\r\n`, 'latin1');
        if (expires === '0') continue;
        const body = Buffer.from(PIDF, 'utf8');
        const contact = /<([^>]+)>/.exec(raw('Contact'))?.[1] ?? raw('Contact');
        socket.write(
          `NOTIFY ${contact} SIP/2.0\r\nVia: SIP/2.0/${proto.toUpperCase()} 127.0.0.1:1;branch=z9hG4bK${rnd()}\r\nMax-Forwards: 70\r\nFrom: ${raw('To')};tag=${tag}\r\nTo: ${raw('From')}\r\nCall-ID: ${h['call-id']}\r\nCSeq: 1 NOTIFY\r\nContact: <sip:pres@127.0.0.1;transport=${proto}>\r\nEvent: presence\r\nSubscription-State: active;expires=${expires}\r\nContent-Type: application/pidf+xml\r\nContent-Length: ${body.length}\r\n\r\n${PIDF}`,
          'latin1',
        );
      }
    });
    socket.on('error', () => undefined);
  };
  const server = proto === 'tls' ? tls.createServer({ cert: readFileSync(fixture('tls-cert.pem')), key: readFileSync(fixture('tls-key.pem')) }, onSocket) : net.createServer(onSocket);
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ port: (server.address() as { port: number }).port, subscribes, close: () => server.close() })));
}

for (const proto of ['tls', 'tcp'] as const) {
test(`upstream over ${proto.toUpperCase()}: SUBSCRIBE through the peer's outbound proxy${proto === 'tls' ? ' (certificate verified)' : ''}, the NOTIFY relayed to the local watcher`, async () => {
  const up = await upstream(proto);
  const h = await startTestHerald({
    sip: { listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0', 'tls:127.0.0.1:0'], tls_cert: fixture('tls-cert.pem'), tls_key: fixture('tls-key.pem'), tls_ca: fixture('tls-cert.pem') },
    gateway: { sip: { enabled: true, policy: 'peers', peers: [{ domain: 'remote.test', outbound_proxy: `sip:127.0.0.1:${up.port};transport=${proto}` }] } },
  });
  const w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  try {
    const callId = rnd();
    const s = await w.request('SUBSCRIBE', BOB, { from: 'sip:alice@example.test', callId, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(s.status, 200);
    const n = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.body.includes('over-tls'), 8000);
    assert.match(n.body, /<basic>open<\/basic>/);
    assert.equal(up.subscribes.length >= 1, true);
    assert.match(up.subscribes[0]!, /^SUBSCRIBE sip:bob@remote\.test SIP\/2\.0/);
    assert.match(up.subscribes[0]!, new RegExp(`Via: SIP/2\\.0/${proto.toUpperCase()}`));
    assert.match(up.subscribes[0]!, /From: <sip:alice@example\.test>/, 'per-watcher mode: the watcher is the From');
  } finally {
    w.close();
    await h.stop();
    up.close();
  }
});
}
