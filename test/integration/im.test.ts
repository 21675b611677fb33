// Instant messages (RFC 3428) over real loopback sockets: the relay to the operator's next hop and to
// the contacts a registrar reports in its reg event, the answers relayed back (200, 486, 480,
// timeout → 408), the bounds (size, rate), and the recipient's IM rules on the embedded XCAP server.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { TestUA, rnd, type Msg } from '../support/ua.js';
import { xcap } from '../support/xcap.js';
import { freePort } from '../support/process.js';

const BOB = 'sip:bob@example.test';
const ALICE = 'sip:alice@example.test';

const message = (ua: TestUA, to: string, from: string, text: string, headers: Record<string, string> = {}, timeoutMs = 5000): Promise<Msg> =>
  ua.request('MESSAGE', to, { from, body: text, contentType: 'text/plain', contact: false, headers }, timeoutMs);

describe('MESSAGE through [im] route (the operator proxy)', () => {
  let th: TestHerald;
  let proxy: TestUA;
  let alice: TestUA;
  after(async () => {
    proxy?.close();
    alice?.close();
    await th?.stop();
  });

  test('relayed like a stateful proxy: own Via on top, Max-Forwards less one, Route to the next hop, answers back', async () => {
    proxy = await TestUA.open('udp', '127.0.0.1', 0);
    th = await startTestHerald({ im: { route: `sip:127.0.0.1:${proxy.localPort}`, timeout: 1 } });
    alice = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    proxy.setPeer(th.port('udp'));
    const r = await message(alice, BOB, ALICE, 'Hello Bob', { Subject: 'hi', Date: 'Wed, 02 Dec 2026 01:00:00 GMT' });
    assert.equal(r.status, 200);
    const got = await proxy.nextRequest((m) => m.method === 'MESSAGE');
    assert.equal(got.raw.uri, BOB, 'the Request-URI stays the AOR: the proxy routes it');
    assert.equal(got.body, 'Hello Bob');
    assert.equal(got.h('content-type'), 'text/plain');
    assert.equal(got.h('subject'), 'hi');
    assert.equal(got.h('date'), 'Wed, 02 Dec 2026 01:00:00 GMT');
    assert.equal(got.raw.headers.via?.length, 2, "Herald's Via over the sender's");
    assert.equal(got.raw.headers.via?.[1]?.port, alice.localPort);
    assert.equal(String(got.raw.headers['max-forwards']), '69');
    const route = (got.raw.headers.route as { uri: { port?: number; params: Record<string, unknown> } }[] | undefined)?.[0]?.uri;
    assert.equal(route?.port, proxy.localPort, 'Route: the next hop');
    assert.ok(route && 'lr' in route.params, 'a loose route');
    assert.match(got.h('p-asserted-identity') ?? '', /sip:alice@example\.test/);
    assert.equal(got.callId, r.callId, 'Call-ID kept end to end');
  });

  test('the next hop refusing (486, 480) is relayed; silence is 408', async () => {
    proxy.answerWith = (m) => (m.body === 'busy' ? 486 : m.body === 'away' ? 480 : m.body === 'silent' ? 'drop' : 200);
    assert.equal((await message(alice, BOB, ALICE, 'busy')).status, 486);
    assert.equal((await message(alice, BOB, ALICE, 'away')).status, 480);
    assert.equal((await message(alice, BOB, ALICE, 'silent')).status, 408);
    proxy.answerWith = () => 200;
  });

  test('bounds: a body over max_body_bytes is 413; Max-Forwards 0 is 483; a sender over its rate gets 503 with Retry-After', async () => {
    assert.equal((await message(alice, BOB, ALICE, 'x'.repeat(9000))).status, 413);
    assert.equal((await message(alice, BOB, ALICE, 'hop', { 'Max-Forwards': '0' })).status, 483);
    const carol = 'sip:carol@example.test';
    let limited: Msg | undefined;
    for (let i = 0; i < 40 && !limited; i++) {
      const r = await message(alice, BOB, carol, `n${i}`);
      if (r.status === 503) limited = r;
    }
    assert.ok(limited, 'carol was limited within 40 messages (burst 20)');
    assert.ok(Number(limited.h('retry-after')) >= 1);
    // Another sender is not affected.
    assert.equal((await message(alice, BOB, ALICE, 'still fine')).status, 200);
  });

  test('a MESSAGE for another domain is not relayed (404)', async () => {
    assert.equal((await message(alice, 'sip:x@elsewhere.test', ALICE, 'no')).status, 404);
  });

  test('every MESSAGE is counted in the metrics', async () => {
    const res = await fetch(th.xcapUrl().replace(/\/xcap-root.*$/, '/metrics'));
    const text = await res.text();
    assert.match(text, /herald_im_messages_total [1-9]\d*/);
    assert.match(text, /herald_im_delivered_total [1-9]/);
    assert.match(text, /herald_im_rate_limited_total [1-9]/);
  });
});

describe('MESSAGE to a Jabber address while the XMPP server is away', () => {
  test('415 (with Accept) for what cannot be bridged, 403 for a sender of another domain, 480 while the component is offline', async (t) => {
    const th = await startTestHerald({ gateway: { xmpp: { enabled: true, service: 'xmpp://127.0.0.1:1', xmpp_domains: ['xmpp.test'], reconnect_initial: 60, reconnect_max: 60 } } });
    const ua = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    t.after(async () => {
      ua.close();
      await th.stop();
    });
    const JULIET = 'sip:juliet*xmpp.test@xmpp.example.test';
    const html = await ua.request('MESSAGE', JULIET, { from: ALICE, body: '<b>hi</b>', contentType: 'text/html', contact: false });
    assert.equal(html.status, 415);
    assert.equal(html.h('accept'), 'text/plain, message/cpim');
    assert.equal((await message(ua, JULIET, 'sip:x@elsewhere.test', 'relay me')).status, 403, 'no open relay into XMPP');
    assert.equal((await message(ua, JULIET, ALICE, 'anyone?')).status, 480, 'nothing is stored for later');
  });
});

describe('loops', () => {
  test('[im] route pointing back at Herald: the returning MESSAGE carries its own branch, 482 (RFC 3261 §16.3)', async (t) => {
    const port = await freePort();
    const th = await startTestHerald({ sip: { listen: [`udp:127.0.0.1:${port}`] }, im: { route: `sip:127.0.0.1:${port}` } });
    const ua = await TestUA.open('udp', '127.0.0.1', port);
    t.after(async () => {
      ua.close();
      await th.stop();
    });
    assert.equal((await message(ua, BOB, ALICE, 'round and round')).status, 482);
  });
});

describe('MESSAGE to the contacts of the reg event (no [im] route)', () => {
  test('no registrar configured: 480', async (t) => {
    const th = await startTestHerald();
    t.after(() => th.stop());
    const ua = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    t.after(() => ua.close());
    assert.equal((await message(ua, BOB, ALICE, 'anyone?')).status, 480);
  });

  test('delivered to the contact the registrar NOTIFYed; 480 once it is deregistered', async (t) => {
    const registrar = await TestUA.open('udp', '127.0.0.1', 0);
    const bobPhone = await TestUA.open('udp', '127.0.0.1', 0);
    const th = await startTestHerald({ gateway: { sip: { reg: { enabled: true, registrar: `sip:127.0.0.1:${registrar.localPort}` } } }, im: { lookup_wait: 3, timeout: 2 } });
    const alice = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    registrar.setPeer(th.port('udp'));
    bobPhone.setPeer(th.port('udp'));
    t.after(async () => {
      for (const u of [registrar, bobPhone, alice]) u.close();
      await th.stop();
    });
    const toTag = rnd();
    registrar.answerWith = (m) => (m.method === 'SUBSCRIBE' ? { status: 200, toTag, headers: { Expires: '600' } } : 200);
    const reginfo = (version: number, state: 'active' | 'terminated') =>
      `<?xml version="1.0"?>\n<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="${version}" state="full">` +
      `<registration aor="${BOB}" id="r1" state="${state}">` +
      (state === 'active' ? `<contact id="c1" state="active" event="registered"><uri>${bobPhone.contactUri}</uri></contact>` : '') +
      '</registration></reginfo>';
    // The first MESSAGE makes Herald watch bob's registration; the registrar answers it at once.
    const first = message(alice, BOB, ALICE, 'hello phone', {}, 8000);
    const sub = await registrar.nextRequest((m) => m.method === 'SUBSCRIBE' && m.h('event') === 'reg');
    const notify = (cseq: number, body: string) =>
      registrar.request('NOTIFY', String((sub.raw.headers.contact as { uri: string }[])[0]!.uri), {
        from: String(sub.raw.headers.to!.uri), fromTag: toTag, to: String(sub.raw.headers.from!.uri), toTag: sub.fromTag!, callId: sub.callId, cseq,
        headers: { Event: 'reg', 'Subscription-State': 'active;expires=600' }, body, contentType: 'application/reginfo+xml', contact: true,
      });
    assert.equal((await notify(1, reginfo(0, 'active'))).status, 200);
    assert.equal((await first).status, 200);
    const got = await bobPhone.nextRequest((m) => m.method === 'MESSAGE');
    assert.equal(got.body, 'hello phone');
    assert.equal(got.raw.uri, bobPhone.contactUri, 'retargeted to the registered contact');
    assert.equal(String(got.raw.headers.to?.uri), BOB, 'To stays the AOR');
    bobPhone.answerWith = () => 486;
    assert.equal((await message(alice, BOB, ALICE, 'busy?')).status, 486);
    // Partial state (RFC 3680 §5.3): a second device registers; both get the next message (parallel
    // forking, RFC 3428 §7), the first 2xx is relayed.
    const tablet = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    t.after(() => tablet.close());
    const partial = `<?xml version="1.0"?>\n<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="1" state="partial">` +
      `<registration aor="${BOB}" id="r1" state="active"><contact id="c2" state="active" event="registered"><uri>${tablet.contactUri}</uri></contact></registration></reginfo>`;
    assert.equal((await notify(2, partial)).status, 200);
    tablet.answerWith = () => 'drop';
    assert.equal((await message(alice, BOB, ALICE, 'to both')).status, 486, "the phone's 486, not the silent tablet's 408");
    assert.ok(tablet.dropped.some((m) => m.body === 'to both'), 'the tablet got it too');
    tablet.answerWith = () => 200;
    assert.equal((await message(alice, BOB, ALICE, 'first 2xx wins')).status, 200, "the tablet's 200 beats the phone's 486");
    assert.ok(tablet.requests.some((m) => m.body === 'first 2xx wins'));
    assert.equal((await notify(3, reginfo(2, 'terminated'))).status, 200);
    assert.equal((await message(alice, BOB, ALICE, 'gone?')).status, 480);
  });
});

describe("MESSAGE under the recipient's IM rules (im-rules on the embedded XCAP server)", () => {
  const imRules = (rules: string): string =>
    `<?xml version="1.0"?><cp:ruleset xmlns="urn:herald:params:xml:ns:im-rules" xmlns:cp="urn:ietf:params:xml:ns:common-policy">${rules}</cp:ruleset>`;
  const imRule = (id: string, who: string, handling: string): string =>
    `<cp:rule id="${id}"><cp:conditions><cp:identity><cp:one id="${who}"/></cp:identity></cp:conditions><cp:actions><im-handling>${handling}</im-handling></cp:actions></cp:rule>`;
  const BOB_AUTH = { username: 'bob', password: 'bob-pw' };

  test('allowed, blocked (403), polite-blocked (202, dropped), no rules ([im] default), a PUT taking effect at once', async (t) => {
    const phone = await TestUA.open('udp', '127.0.0.1', 0);
    const th = await startTestHerald({ im: { route: `sip:127.0.0.1:${phone.localPort}`, default: 'block' } });
    const ua = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
    phone.setPeer(th.port('udp'));
    t.after(async () => {
      ua.close();
      phone.close();
      await th.stop();
    });
    await th.herald.users.add(BOB, BOB_AUTH.password);
    const put = async (rules: string): Promise<void> => {
      const r = await xcap('PUT', th.xcapUrl(), `im-rules/users/${BOB}/index`, BOB_AUTH, imRules(rules), 'application/auth-policy+xml');
      assert.ok(r.status === 200 || r.status === 201, `im-rules PUT: ${r.status} ${r.body}`);
    };
    const delivered = (text: string) => phone.requests.some((m) => m.method === 'MESSAGE' && m.body === text);

    // No document yet: [im] default = block.
    assert.equal((await message(ua, BOB, ALICE, 'before rules')).status, 403);
    assert.equal(delivered('before rules'), false);

    await put(imRule('friend', ALICE, 'allow') + imRule('pest', 'sip:mallory@example.test', 'block') + imRule('quiet', 'sip:dave@example.test', 'polite-block'));
    assert.equal((await message(ua, BOB, ALICE, 'from alice')).status, 200);
    assert.ok(delivered('from alice'));
    assert.equal((await message(ua, BOB, 'sip:mallory@example.test', 'from mallory')).status, 403);
    const polite = await message(ua, BOB, 'sip:dave@example.test', 'from dave');
    assert.equal(polite.status, 202, 'polite-block: answered as if accepted');
    assert.equal((await message(ua, BOB, 'sip:erin@example.test', 'from erin')).status, 403, 'no rule matches: block');
    await phone.quiet(200);
    assert.equal(delivered('from mallory'), false);
    assert.equal(delivered('from dave'), false, 'polite-block: dropped');

    // Changed over XCAP: the very next message is decided by the new rules.
    await put(imRule('friend', ALICE, 'block') + imRule('pest', 'sip:mallory@example.test', 'allow'));
    assert.equal((await message(ua, BOB, ALICE, 'alice again')).status, 403);
    assert.equal((await message(ua, BOB, 'sip:mallory@example.test', 'mallory again')).status, 200);
    assert.ok(delivered('mallory again'));

    // The document removed: the default again.
    assert.equal((await xcap('DELETE', th.xcapUrl(), `im-rules/users/${BOB}/index`, BOB_AUTH)).status, 200);
    assert.equal((await message(ua, BOB, 'sip:mallory@example.test', 'after delete')).status, 403);
  });
});
