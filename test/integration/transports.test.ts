// TLS and WebSocket (RFC 7118) with real connections: PUBLISH, SUBSCRIBE and NOTIFY over each.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

describe('TLS and WebSocket transports', () => {
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald({
      sip: {
        listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0', 'tls:127.0.0.1:0', 'ws:127.0.0.1:0'],
        tls_cert: fixture('tls-cert.pem'),
        tls_key: fixture('tls-key.pem'),
      },
    });
  });
  after(async () => h.stop());

  for (const proto of ['tls', 'ws'] as const) {
    test(`${proto}: publish, subscribe, NOTIFY over the same connection, with a non-ASCII note`, async () => {
      const ua = await TestUA.open(proto, '127.0.0.1', h.port(proto));
      try {
        const who = `sip:${proto}-${rnd()}@example.test`;
        const note = 'Grüße — 会議中';
        const p = await ua.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '60' }, body: pidf(who, { note }) });
        assert.equal(p.status, 200);
        const callId = rnd();
        const s = await ua.request('SUBSCRIBE', who, { from: 'sip:bob@example.test', callId, headers: { Event: 'presence', Expires: '60' } });
        assert.equal(s.status, 200);
        assert.match(JSON.stringify(s.raw.headers.contact), new RegExp(`transport=${proto}`));
        const n = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
        assert.ok(n.body.includes(note), `the NOTIFY body keeps UTF-8 intact: ${n.body}`);
        assert.equal(Number(n.h('content-length')), Buffer.byteLength(n.body, 'utf8'), 'Content-Length counts bytes');
      } finally {
        ua.close();
      }
    });
  }
});
