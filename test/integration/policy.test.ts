// Who may see me (RFC 5025 pres-rules on XCAP, RFC 3857 winfo), over real SIP and HTTP sockets with
// digest authentication on: allow, block, polite-block, confirm and approval, per-watcher transformations,
// and that a blocked watcher never receives a byte of presence.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, requestWithAuth, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { presRules, rule, xcap } from '../support/xcap.js';

const D = 'example.test';
const uri = (u: string) => `sip:${u}@${D}`;
const USERS = ['alice', 'bob', 'carol', 'dave', 'eve', 'frank'] as const;
const SECRET = 'secret-note-7c1';
const ALICE_DOC = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="${uri('alice')}">
  <tuple id="t1"><status><basic>open</basic></status><contact>${uri('alice')}</contact><note>${SECRET}</note></tuple>
  <dm:person id="p1"><rpid:activities><rpid:meeting/></rpid:activities><dm:note>${SECRET}</dm:note></dm:person>
</presence>`;
const PRES_RULES_PATH = `pres-rules/users/${uri('alice')}/index`;
const ALL_BUT_NOTES = '<provide-services><all-services/></provide-services><provide-persons><all-persons/></provide-persons><provide-devices><all-devices/></provide-devices>';
const EVERYTHING = `${ALL_BUT_NOTES}<provide-activities>true</provide-activities><provide-note>true</provide-note>`;

describe('pres-rules, XCAP and watcher info', () => {
  let h: TestHerald;
  const ua: Record<string, TestUA> = {};
  /** Every NOTIFY each watcher received, for the leak check at the end. */
  const received = (who: string): Msg[] => ua[who]!.requests.filter((m) => m.method === 'NOTIFY');

  before(async () => {
    h = await startTestHerald({ auth: { enabled: true }, policy: { default: 'confirm' } });
    for (const u of USERS) {
      await h.herald.users.add(uri(u), `${u}-pw`);
      ua[u] = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    }
    const put = await xcap('PUT', h.xcapUrl(), PRES_RULES_PATH, { username: 'alice', password: 'alice-pw' }, presRules(
      rule('r-bob', [uri('bob')], 'allow', EVERYTHING) +
        rule('r-carol', [uri('carol')], 'allow', ALL_BUT_NOTES) +
        rule('r-dave', [uri('dave')], 'block') +
        rule('r-eve', [uri('eve')], 'polite-block') +
        // A rules document replaces the operator's default: with no matching rule a watcher is blocked
        // (RFC 5025 §3.2.1), so clients keep a catch-all "confirm" rule for everyone else of the domain.
        // Permissions combine to the most permissive (RFC 4745 §10), so the catch-all excepts those
        // whose own rule is stricter than confirm.
        `<cr:rule id="r-others"><cr:conditions><cr:identity><cr:many domain="${D}">${['bob', 'dave', 'eve'].map((u) => `<cr:except id="${uri(u)}"/>`).join('')}</cr:many></cr:identity></cr:conditions><cr:actions><sub-handling>confirm</sub-handling></cr:actions></cr:rule>`,
    ), 'application/auth-policy+xml');
    assert.equal(put.status, 201, put.body);
    const pub = await requestWithAuth(ua['alice']!, 'PUBLISH', uri('alice'), { from: uri('alice'), headers: { Event: 'presence', Expires: '600' }, body: ALICE_DOC }, 'alice', 'alice-pw');
    assert.equal(pub.status, 200);
  });
  after(async () => {
    for (const u of Object.values(ua)) u.close();
    await h.stop();
  });

  const subscribe = (who: string, headers: Record<string, string> = {}, callId = rnd()) =>
    requestWithAuth(ua[who]!, 'SUBSCRIBE', uri('alice'), { from: uri(who), callId, headers: { Event: 'presence', Expires: '600', ...headers } }, who, `${who}-pw`).then((res) => ({ res, callId }));
  const notify = (who: string, callId: string, pred: (m: Msg) => boolean = () => true, seen = new Set<Msg>()) =>
    ua[who]!.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && pred(m), 5000, seen);

  test('allow with every transformation: bob sees the note and the activities', async () => {
    const { res, callId } = await subscribe('bob');
    assert.equal(res.status, 200);
    const n = await notify('bob', callId);
    assert.match(n.h('subscription-state') ?? '', /^active/);
    assert.ok(n.body.includes(SECRET), n.body);
    assert.match(n.body, /meeting/);
  });

  test('allow without provide-note/provide-activities: carol sees presence but neither', async () => {
    const { res, callId } = await subscribe('carol');
    assert.equal(res.status, 200);
    const n = await notify('carol', callId);
    assert.match(n.h('subscription-state') ?? '', /^active/);
    assert.match(n.body, /<basic>open<\/basic>/);
    assert.ok(!n.body.includes(SECRET), 'no note');
    assert.doesNotMatch(n.body, /meeting|activities/);
  });

  test('block: dave is refused with 403', async () => {
    const { res } = await subscribe('dave');
    assert.equal(res.status, 403);
  });

  test('polite-block: eve is accepted and shown a closed presence with nothing else', async () => {
    const { res, callId } = await subscribe('eve');
    assert.equal(res.status, 200);
    const n = await notify('eve', callId);
    assert.match(n.h('subscription-state') ?? '', /^active/);
    assert.match(n.body, /<basic>closed<\/basic>/);
    assert.doesNotMatch(n.body, /person|meeting|open/);
  });

  test('confirm: frank waits (pending, no body), alice sees him in winfo, approves over XCAP, frank gets presence at once', async () => {
    const winfoCall = rnd();
    const seenW = new Set<Msg>();
    const w = await requestWithAuth(ua['alice']!, 'SUBSCRIBE', uri('alice'), { from: uri('alice'), callId: winfoCall, headers: { Event: 'presence.winfo', Expires: '600' } }, 'alice', 'alice-pw');
    assert.equal(w.status, 200);
    const full = await ua['alice']!.nextRequest((m) => m.method === 'NOTIFY' && m.callId === winfoCall, 5000, seenW);
    seenW.add(full);
    assert.match(full.body, /state="full"/);

    const { res, callId } = await subscribe('frank');
    assert.equal(res.status, 200);
    const seenF = new Set<Msg>();
    const pending = await notify('frank', callId, () => true, seenF);
    seenF.add(pending);
    assert.match(pending.h('subscription-state') ?? '', /^pending/);
    assert.equal(pending.body, '', 'a pending NOTIFY carries no presence');

    const told = await ua['alice']!.nextRequest((m) => m.method === 'NOTIFY' && m.callId === winfoCall && m.body.includes(uri('frank')), 5000, seenW);
    seenW.add(told);
    assert.match(told.body, /status="pending"/);
    assert.match(told.body, /state="partial"/);

    const get = await xcap('GET', h.xcapUrl(), PRES_RULES_PATH, { username: 'alice', password: 'alice-pw' });
    const approve = await xcap('PUT', h.xcapUrl(), `${PRES_RULES_PATH}/~~/cr:ruleset/cr:rule%5b@id=%22r-frank%22%5d?xmlns(cr=urn:ietf:params:xml:ns:common-policy)`, { username: 'alice', password: 'alice-pw' },
      `<cr:rule xmlns:cr="urn:ietf:params:xml:ns:common-policy" xmlns="urn:ietf:params:xml:ns:pres-rules" id="r-frank"><cr:conditions><cr:identity><cr:one id="${uri('frank')}"/></cr:identity></cr:conditions><cr:actions><sub-handling>allow</sub-handling></cr:actions><cr:transformations>${ALL_BUT_NOTES}</cr:transformations></cr:rule>`,
      'application/xcap-el+xml');
    assert.ok(approve.status === 201 || approve.status === 200, `${approve.status} ${approve.body} (doc was ${get.body})`);

    const active = await notify('frank', callId, (m) => /^active/.test(m.h('subscription-state') ?? ''), seenF);
    assert.match(active.body, /<basic>open<\/basic>/);
    const approved = await ua['alice']!.nextRequest((m) => m.method === 'NOTIFY' && m.callId === winfoCall && /approved/.test(m.body), 5000, seenW);
    assert.match(approved.body, /status="active"/);
  });

  test('a rule change to block ends an active subscription: bob gets terminated;reason=rejected', async () => {
    const { callId } = await subscribe('bob');
    const seen = new Set<Msg>([await notify('bob', callId)]);
    const r = await xcap('PUT', h.xcapUrl(), `${PRES_RULES_PATH}/~~/cr:ruleset/cr:rule%5b@id=%22r-bob%22%5d/cr:actions/sub-handling?xmlns(cr=urn:ietf:params:xml:ns:common-policy)`,
      { username: 'alice', password: 'alice-pw' }, '<sub-handling xmlns="urn:ietf:params:xml:ns:pres-rules">block</sub-handling>', 'application/xcap-el+xml');
    assert.equal(r.status, 200, r.body);
    const end = await notify('bob', callId, (m) => /^terminated/.test(m.h('subscription-state') ?? ''), seen);
    assert.equal(end.h('subscription-state'), 'terminated;reason=rejected');
    assert.equal(end.body, '');
  });

  test("XCAP: another user's rules are refused, without credentials 401", async () => {
    assert.equal((await xcap('GET', h.xcapUrl(), PRES_RULES_PATH, { username: 'bob', password: 'bob-pw' })).status, 403);
    assert.equal((await xcap('GET', h.xcapUrl(), PRES_RULES_PATH, undefined)).status, 401);
    assert.equal((await xcap('PUT', h.xcapUrl(), PRES_RULES_PATH, { username: 'bob', password: 'bob-pw' }, presRules(''), 'application/auth-policy+xml')).status, 403);
  });

  test('security: the blocked and politely blocked watchers never received a byte of presence', async () => {
    // A fresh publication after all the above, so every watcher had a chance to be notified of it.
    await requestWithAuth(ua['alice']!, 'PUBLISH', uri('alice'), { from: uri('alice'), headers: { Event: 'presence', Expires: '600' }, body: ALICE_DOC.replace('t1', 't2') }, 'alice', 'alice-pw');
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(received('dave'), [], 'dave was refused: not one NOTIFY');
    for (const m of received('eve')) {
      assert.ok(!m.body.includes(SECRET) && !/open|meeting|person/.test(m.body), `eve saw: ${m.body}`);
    }
    for (const m of received('carol')) assert.ok(!m.body.includes(SECRET) && !/meeting/.test(m.body), `carol saw: ${m.body}`);
  });
});
