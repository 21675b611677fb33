// RFC 6665 / RFC 3856 SUBSCRIBE and NOTIFY over real sockets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const user = () => `sip:u${rnd()}@example.test`;
const BOB = 'sip:bob@example.test';

describe('SUBSCRIBE/NOTIFY (RFC 6665, RFC 3856)', () => {
  let h: TestHerald;
  let pub: TestUA;
  let w: TestUA;
  before(async () => {
    h = await startTestHerald({ presence: { subscribe_min_expires: 10 } });
    pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    pub.close();
    w.close();
    await h.stop();
  });

  const publish = (who: string, body: string, headers: Record<string, string> = {}) =>
    pub.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '600', ...headers }, body });

  async function subscribe(ua: TestUA, who: string, headers: Record<string, string> = {}) {
    const callId = rnd();
    const fromTag = rnd();
    const res = await ua.request('SUBSCRIBE', who, { from: BOB, fromTag, callId, headers: { Event: 'presence', Expires: '600', ...headers } });
    return { res, callId, fromTag };
  }

  const notifyIn = (ua: TestUA, callId: string, pred: (m: Msg) => boolean = () => true, seen = new Set<Msg>()) =>
    ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && pred(m), 5000, seen);

  test('200 with To tag and Expires, an immediate NOTIFY, then a NOTIFY on every change', async () => {
    const alice = user();
    await publish(alice, pidf(alice, { note: 'first' }));
    const { res, callId, fromTag } = await subscribe(w, alice);
    assert.equal(res.status, 200);
    assert.ok(res.toTag, '200 carries a To tag');
    assert.equal(res.h('expires'), '600');
    const n1 = await notifyIn(w, callId);
    assert.equal(n1.toTag, fromTag, 'NOTIFY To tag is the subscriber From tag');
    assert.equal(n1.fromTag, res.toTag, 'NOTIFY From tag is the 200 To tag');
    assert.match(n1.h('subscription-state') ?? '', /^active;expires=\d+/);
    assert.equal(n1.h('event'), 'presence');
    assert.equal(n1.h('content-type'), 'application/pidf+xml');
    assert.match(n1.body, /first/);
    assert.match(n1.body, new RegExp(`entity="${alice}"`));

    const seen = new Set([n1]);
    await publish(alice, pidf(alice, { tuple: 't2', note: 'second' }));
    const n2 = await notifyIn(w, callId, (m) => /second/.test(m.body), seen);
    assert.ok(n2.cseq > n1.cseq, 'CSeq increases in the dialog');
    assert.match(n2.body, /first/, 'both devices are composed into one document');
  });

  test('a watcher of a user who never published gets a closed document', async () => {
    const nobody = user();
    const { res, callId } = await subscribe(w, nobody);
    assert.equal(res.status, 200);
    const n = await notifyIn(w, callId);
    assert.match(n.body, /<basic>closed<\/basic>/);
  });

  test('refresh in dialog: 200 and a NOTIFY; unsubscribe: final NOTIFY terminated', async () => {
    const alice = user();
    await publish(alice, pidf(alice));
    const { res, callId, fromTag } = await subscribe(w, alice);
    const n1 = await notifyIn(w, callId);
    const seen = new Set([n1]);
    const r2 = await w.request('SUBSCRIBE', alice, { from: BOB, fromTag, toTag: res.toTag!, callId, cseq: 2, headers: { Event: 'presence', Expires: '300' } });
    assert.equal(r2.status, 200);
    assert.equal(r2.h('expires'), '300');
    const n2 = await notifyIn(w, callId, () => true, seen);
    seen.add(n2);
    assert.match(n2.h('subscription-state') ?? '', /^active;expires=(300|299)/);
    const r3 = await w.request('SUBSCRIBE', alice, { from: BOB, fromTag, toTag: res.toTag!, callId, cseq: 3, headers: { Event: 'presence', Expires: '0' } });
    assert.equal(r3.status, 200);
    const n3 = await notifyIn(w, callId, () => true, seen);
    assert.match(n3.h('subscription-state') ?? '', /^terminated/);
    assert.equal(h.herald.notifier.subscriptionsOf(alice).length, 0);
    const r4 = await w.request('SUBSCRIBE', alice, { from: BOB, fromTag, toTag: res.toTag!, callId, cseq: 4, headers: { Event: 'presence', Expires: '60' } });
    assert.equal(r4.status, 481, 'the ended dialog is gone');
  });

  test('an in-dialog SUBSCRIBE with an old CSeq is refused', async () => {
    const alice = user();
    const { res, callId, fromTag } = await subscribe(w, alice);
    const r = await w.request('SUBSCRIBE', alice, { from: BOB, fromTag, toTag: res.toTag!, callId, cseq: 1, headers: { Event: 'presence', Expires: '60' } });
    assert.equal(r.status, 500);
  });

  test('expiry: NOTIFY terminated;reason=timeout', async () => {
    const short = await startTestHerald({ presence: { subscribe_min_expires: 1 } });
    const u = await TestUA.open('udp', '127.0.0.1', short.port('udp'));
    try {
      const alice = user();
      const r = await u.request('SUBSCRIBE', alice, { from: BOB, callId: 'exp-1', headers: { Event: 'presence', Expires: '1' } });
      assert.equal(r.status, 200);
      const n = await u.nextRequest((m) => /terminated/.test(m.h('subscription-state') ?? ''), 4000);
      assert.equal(n.h('subscription-state'), 'terminated;reason=timeout');
      assert.equal(short.herald.notifier.size, 0);
    } finally {
      u.close();
      await short.stop();
    }
  });

  test('a 481 answer to NOTIFY removes the subscription', async () => {
    const u = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      const alice = user();
      u.answerWith = () => 481;
      const { res } = await subscribe(u, alice);
      assert.equal(res.status, 200);
      for (let i = 0; i < 50 && h.herald.notifier.subscriptionsOf(alice).length > 0; i++) await new Promise((r) => setTimeout(r, 20));
      assert.equal(h.herald.notifier.subscriptionsOf(alice).length, 0);
      await publish(alice, pidf(alice));
      assert.equal(h.herald.notifier.subscriptionsOf(alice).length, 0);
    } finally {
      u.close();
    }
  });

  test('unknown event package: 489 with Allow-Events', async () => {
    const r = await w.request('SUBSCRIBE', user(), { from: BOB, headers: { Event: 'dialog', Expires: '60' } });
    assert.equal(r.status, 489);
    assert.match(r.h('allow-events') ?? '', /presence/);
  });

  test('too brief: 423 with Min-Expires', async () => {
    const r = await w.request('SUBSCRIBE', user(), { from: BOB, headers: { Event: 'presence', Expires: '3' } });
    assert.equal(r.status, 423);
    assert.equal(r.h('min-expires'), '10');
  });

  test('missing Contact: 400', async () => {
    const r = await w.request('SUBSCRIBE', user(), { from: BOB, contact: false, headers: { Event: 'presence' } });
    assert.equal(r.status, 400);
  });

  test('Accept negotiation: xpidf, cpim-pidf, lpidf, and 406 when nothing fits', async () => {
    const alice = user();
    await publish(alice, pidf(alice));
    const x = await subscribe(w, alice, { Accept: 'application/xpidf+xml' });
    const nx = await notifyIn(w, x.callId);
    assert.equal(nx.h('content-type'), 'application/xpidf+xml');
    assert.match(nx.body, /<presentity/);
    const c = await subscribe(w, alice, { Accept: 'application/cpim-pidf+xml' });
    const nc = await notifyIn(w, c.callId);
    assert.equal(nc.h('content-type'), 'application/cpim-pidf+xml');
    const l = await subscribe(w, alice, { Accept: 'application/lpidf+xml' });
    const nl = await notifyIn(w, l.callId);
    assert.equal(nl.h('content-type'), 'application/lpidf+xml');
    assert.match(nl.body, new RegExp(`^To: <${alice.replace(/[.+]/g, '\\$&')}>\r\nContact: <[^>]+>;q=[01]\r\n`));
    const bad = await subscribe(w, alice, { Accept: 'text/html' });
    assert.equal(bad.res.status, 406);
    assert.match(bad.res.h('accept') ?? '', /application\/lpidf\+xml/);
  });

  test('RFC 5839: Suppress-If-Match on a refresh (204, no NOTIFY) and on a new subscription (NOTIFY without body)', async () => {
    const alice = user();
    await publish(alice, pidf(alice, { note: 'tagged' }));
    const { res, callId, fromTag } = await subscribe(w, alice);
    const n1 = await notifyIn(w, callId);
    const etag = n1.h('sip-etag');
    assert.ok(etag, 'NOTIFY carries SIP-ETag');
    const seen = new Set([n1]);
    const refresh = (cseq: number, tag: string) => w.request('SUBSCRIBE', alice, { from: BOB, fromTag, toTag: res.toTag!, callId, cseq, headers: { Event: 'presence', Expires: '600', 'Suppress-If-Match': tag } });
    const r204 = await refresh(2, etag);
    assert.equal(r204.status, 204);
    assert.equal(r204.h('expires'), '600');
    await assert.rejects(w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId, 700, seen), 'no NOTIFY after 204');

    // The watcher's tag names its own view: an xpidf watcher's tag differs from a pidf watcher's.
    const x = await subscribe(w, alice, { Accept: 'application/xpidf+xml' });
    const nx = await notifyIn(w, x.callId);
    assert.notEqual(nx.h('sip-etag'), etag);

    await publish(alice, pidf(alice, { note: 'changed' }));
    const n2 = await notifyIn(w, callId, (m) => /changed/.test(m.body), seen);
    seen.add(n2);
    assert.notEqual(n2.h('sip-etag'), etag, 'a new state, a new entity-tag');
    const stale = await refresh(3, etag);
    assert.equal(stale.status, 200, 'an old tag: an ordinary refresh');
    const n3 = await notifyIn(w, callId, () => true, seen);
    assert.match(n3.body, /changed/);

    // A new subscription (say after the watcher lost its dialog) that holds the current state.
    const fresh = await subscribe(w, alice, { 'Suppress-If-Match': n3.h('sip-etag')! });
    assert.equal(fresh.res.status, 200);
    const nb = await notifyIn(w, fresh.callId);
    assert.equal(nb.body, '', 'no body (RFC 5839 §6.3)');
    assert.equal(nb.h('sip-etag'), n3.h('sip-etag'));
    assert.match(nb.h('subscription-state') ?? '', /^active/);
  });

  test('fetch (Expires: 0): one NOTIFY with the state, terminated, nothing kept', async () => {
    const alice = user();
    await publish(alice, pidf(alice, { note: 'fetched' }));
    const { res, callId } = await subscribe(w, alice, { Expires: '0' });
    assert.equal(res.status, 200);
    const n = await notifyIn(w, callId);
    assert.match(n.h('subscription-state') ?? '', /^terminated/);
    assert.match(n.body, /fetched/);
    assert.equal(h.herald.notifier.subscriptionsOf(alice).length, 0);
  });

  test('Record-Route: the 200 echoes it and NOTIFY carries it as Route', async () => {
    const alice = user();
    const proxy = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      const rr = `<sip:127.0.0.1:${w.localPort};lr>`;
      // The request comes from `proxy`'s socket but its Contact is `w`; the Record-Route points at `w`
      // as if it were the proxy, so the NOTIFY must reach `w` through the route.
      const callId = rnd();
      const res = await proxy.request('SUBSCRIBE', alice, { from: BOB, callId, headers: { Event: 'presence', Expires: '60', 'Record-Route': rr } });
      assert.equal(res.status, 200);
      assert.match(JSON.stringify(res.raw.headers['record-route']), /127\.0\.0\.1/);
      const n = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
      assert.ok(n.raw.headers.route && n.raw.headers.route.length === 1, 'NOTIFY has a Route header');
    } finally {
      proxy.close();
    }
  });

  test('OPTIONS: 200 with Allow, Allow-Events and Accept', async () => {
    const r = await w.request('OPTIONS', 'sip:example.test', { from: BOB, headers: {} });
    assert.equal(r.status, 200);
    assert.match(r.h('allow') ?? '', /SUBSCRIBE/);
    assert.match(r.h('allow') ?? '', /PUBLISH/);
    assert.match(r.h('allow-events') ?? '', /presence/);
    assert.match(r.h('accept') ?? '', /application\/pidf\+xml/);
  });

  test('a watcher on TCP gets NOTIFY over its own connection', async () => {
    const t = await TestUA.open('tcp', '127.0.0.1', h.port('tcp'));
    try {
      const alice = user();
      await publish(alice, pidf(alice, { note: 'tcp' }));
      const { res, callId } = await subscribe(t, alice);
      assert.equal(res.status, 200);
      const n = await notifyIn(t, callId);
      assert.match(n.body, /tcp/);
    } finally {
      t.close();
    }
  });
});
