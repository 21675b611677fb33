// Watcher info (RFC 3857/3858) over real sockets: owner only, full state first, partial after.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';

describe('presence.winfo', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald();
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  test('only the presentity may watch its watchers', async () => {
    const r = await ua.request('SUBSCRIBE', ALICE, { from: 'sip:carol@example.test', headers: { Event: 'presence.winfo', Expires: '60' } });
    assert.equal(r.status, 403);
  });

  test('full state first, then partial state with only the watcher that changed', async () => {
    const winfoCall = rnd();
    const seen = new Set<Msg>();
    const next = async (pred: (m: Msg) => boolean) => {
      const m = await ua.nextRequest((x) => x.method === 'NOTIFY' && x.callId === winfoCall && pred(x), 5000, seen);
      seen.add(m);
      return m;
    };
    const s = await ua.request('SUBSCRIBE', ALICE, { from: ALICE, callId: winfoCall, headers: { Event: 'presence.winfo', Expires: '600' } });
    assert.equal(s.status, 200);
    const n0 = await next(() => true);
    assert.equal(n0.h('content-type'), 'application/watcherinfo+xml');
    assert.equal(n0.h('event'), 'presence.winfo');
    assert.match(n0.body, /version="0"/);
    assert.match(n0.body, /state="full"/);
    assert.match(n0.body, /<watcher-list resource="sip:alice@example.test" package="presence"\s*\/?>/);

    const bobCall = rnd();
    const bobTag = rnd();
    const b = await ua.request('SUBSCRIBE', ALICE, { from: BOB, fromTag: bobTag, callId: bobCall, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(b.status, 200);
    const n1 = await next((m) => m.body.includes(BOB));
    assert.match(n1.body, /version="1"/);
    assert.match(n1.body, /state="partial"/);
    assert.match(n1.body, /status="active"/);
    assert.match(n1.body, /event="subscribe"/);
    assert.doesNotMatch(n1.body, new RegExp(bobCall), 'the watcher id does not leak the Call-ID');

    await ua.request('SUBSCRIBE', ALICE, { from: BOB, fromTag: bobTag, toTag: b.toTag!, callId: bobCall, cseq: 2, headers: { Event: 'presence', Expires: '0' } });
    const n2 = await next((m) => m.body.includes('terminated'));
    assert.match(n2.body, /version="2"/);
    assert.match(n2.body, /state="partial"/);
    assert.match(n2.body, /event="timeout"/);
  });
});
