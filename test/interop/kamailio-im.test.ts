// Instant messages with a real Kamailio as the operator's registrar and proxy
// (test/interop/kamailio/remote-presence.cfg with -A REG): bob's phone REGISTERs at Kamailio; Herald
// relays MESSAGE to it (1) through Kamailio as its [im] route (Kamailio looks bob up and relays; its
// answers come back through Herald), and (2) directly to the contact Kamailio reports in its reg event
// (RFC 3680, no route). Everything on 127.0.0.1; Kamailio is stopped by its own pid; waits bounded.
import assert from 'node:assert/strict';
import { describe, test, type TestContext } from 'node:test';
import { startTestHerald, tempDir, type DeepPartial, type TestHerald } from '../support/herald.js';
import { TestUA } from '../support/ua.js';
import { freePort } from './peers.js';
import { Kamailio, requireKamailio } from './kamailio/kamailio.js';

const BOB = 'sip:bob@example.test';
const ALICE = 'sip:alice@example.test';

async function registerAt(kam: Kamailio, ua: TestUA, expires: number, cseq: number): Promise<void> {
  const r = await ua.request('REGISTER', 'sip:example.test', { from: BOB, to: BOB, callId: `reg-${ua.localPort}`, cseq, headers: { Expires: String(expires) } });
  assert.equal(r.status, 200, `REGISTER at Kamailio: ${r.status} ${r.reason}\n${kam.log.slice(-1500)}`);
}

/** Kamailio (registrar, proxy), bob's phone registered there, a Herald configured by `herald(port)`, alice's UA on it; all stopped after the test. */
async function setUp(t: TestContext, herald: (kamailioPort: number) => DeepPartial): Promise<{ kam: Kamailio; phone: TestUA; th: TestHerald; alice: TestUA }> {
  const kam = new Kamailio(await freePort(), tempDir(), ['REG']);
  await kam.start();
  const phone = await TestUA.open('udp', '127.0.0.1', kam.port);
  const th = await startTestHerald(herald(kam.port));
  const alice = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
  t.after(async () => {
    alice.close();
    phone.close();
    await th.stop();
    await kam.stop();
  });
  await registerAt(kam, phone, 120, 1);
  return { kam, phone, th, alice };
}

describe('Kamailio as the registrar and proxy for MESSAGE', () => {
  test('[im] route = Kamailio: delivered to the contact Kamailio looked up; 486 relayed back; unregistered: 480', { timeout: 60_000 }, async (t) => {
    if (!requireKamailio(t)) return;
    const { kam, phone, alice } = await setUp(t, (port) => ({ im: { route: `sip:127.0.0.1:${port}`, timeout: 5 } }));
    const r = await alice.request('MESSAGE', BOB, { from: ALICE, body: 'via kamailio', contentType: 'text/plain', contact: false });
    assert.equal(r.status, 200, `${r.status} ${r.reason}\n${kam.log.slice(-1500)}`);
    const got = await phone.nextRequest((m) => m.method === 'MESSAGE');
    assert.equal(got.body, 'via kamailio');
    assert.equal(got.raw.uri, phone.contactUri, 'Kamailio retargeted to the binding');
    assert.equal(got.raw.headers.via?.length, 3, "Kamailio's Via over Herald's over alice's");
    phone.answerWith = () => 486;
    assert.equal((await alice.request('MESSAGE', BOB, { from: ALICE, body: 'busy?', contentType: 'text/plain', contact: false })).status, 486);
    await registerAt(kam, phone, 0, 2);
    assert.equal((await alice.request('MESSAGE', BOB, { from: ALICE, body: 'gone?', contentType: 'text/plain', contact: false })).status, 480);
  });

  test('no route: the contact from Kamailio’s reg event (RFC 3680), MESSAGE sent straight to it', { timeout: 60_000 }, async (t) => {
    if (!requireKamailio(t)) return;
    const { kam, phone, th, alice } = await setUp(t, (port) => ({ gateway: { sip: { reg: { enabled: true, registrar: `sip:127.0.0.1:${port}`, expires: 60 } } }, im: { lookup_wait: 5, timeout: 5 } }));
    // The phone now hears from Herald directly (its answers go back to Herald, not to Kamailio).
    phone.setPeer(th.port('udp'));
    const r = await alice.request('MESSAGE', BOB, { from: ALICE, body: 'via reg event', contentType: 'text/plain', contact: false }, 10_000);
    assert.equal(r.status, 200, `${r.status} ${r.reason}\n${kam.log.slice(-1500)}`);
    const got = await phone.nextRequest((m) => m.method === 'MESSAGE');
    assert.equal(got.body, 'via reg event');
    assert.equal(got.raw.uri, phone.contactUri, 'the contact URI of the reginfo document');
    assert.equal(got.raw.headers.via?.length, 2, "Herald's Via over alice's: no proxy between");
  });
});
