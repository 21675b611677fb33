// Instant messages across the XMPP gateway (RFC 7572) against a real Prosody (Debian `prosody`):
// Herald runs with [gateway.xmpp] and [im] exactly as src/server.ts wires them; bob is a SIP UA on a
// real socket that is also the operator's next hop ([im] route), juliet and romeo are @xmpp/client c2s
// sessions on xmpp.test; bob's IM rules live on Herald's embedded XCAP server. Loopback only; Prosody
// is started and stopped by its own pid; every wait is bounded.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { child, el, text, type XNode } from '../../gateways/xmpp/wire.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/process.js';
import { TestUA, type Msg } from '../support/ua.js';
import { xcap } from '../support/xcap.js';
import { Prosody } from './prosody/prosody.js';
import { Jabber } from './prosody/jabber.js';

const D = 'example.test';
const GW = 'xmpp.example.test';
const COMPONENT = 'sip.xmpp.test';
const SECRET = 'interop-im-secret';
const BOB = `sip:bob@${D}`;
const BOB_JID = `bob%${D}@${COMPONENT}`;
const JULIET_SIP = `sip:juliet*xmpp.test@${GW}`;

const isMessageFrom = (from: string, type = 'chat') => (n: XNode): boolean =>
  n.name === 'message' && (n.attrs['from'] ?? '').split('/')[0] === from && (n.attrs['type'] ?? 'normal') === type;

describe('SIP ⇄ XMPP instant messages with Prosody', { skip: !Prosody.available() && process.env.CI !== 'true' ? 'prosody not installed' : false, timeout: 120_000 }, () => {
  let prosody: Prosody;
  let th: TestHerald;
  let bob: TestUA;
  let juliet: Jabber;
  let romeo: Jabber;
  let service: string;

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-prosody-im-'));
    const [c2s, comp] = [await freePort(), await freePort()];
    service = `xmpp://127.0.0.1:${c2s}`;
    prosody = new Prosody({ dir, c2sPort: c2s, componentPort: comp, secret: SECRET });
    for (const u of ['romeo', 'juliet']) prosody.register(u, 'xmpp.test', 'pw');
    await prosody.start();
    // bob's phone is the operator's next hop too: every MESSAGE for bob reaches this socket.
    bob = await TestUA.open('udp', '127.0.0.1', 0);
    th = await startTestHerald({
      im: { route: `sip:127.0.0.1:${bob.localPort}`, timeout: 3 },
      gateway: { xmpp: prosody.heraldGateway() },
    });
    bob.setPeer(th.port('udp'));
    await th.herald.users.add(BOB, 'bob-pw');
    juliet = new Jabber(service, 'juliet', 'pw');
    romeo = new Jabber(service, 'romeo', 'pw');
    await juliet.start();
    await romeo.start();
    await juliet.presence(undefined);
    await romeo.presence(undefined);
  });

  after(async () => {
    await juliet?.stop();
    await romeo?.stop();
    bob?.close();
    await th?.stop();
    await prosody?.stop();
  });

  const sipMessage = (to: string, body: string, contentType = 'text/plain', headers: Record<string, string> = {}): Promise<Msg> =>
    bob.request('MESSAGE', to, { from: BOB, body, contentType, contact: false, headers });

  it('a SIP MESSAGE to sip:juliet*xmpp.test@gateway reaches juliet as a chat message from bob%example.test@sip.xmpp.test', async () => {
    const r = await sipMessage(JULIET_SIP, 'Neither, fair saint, if either thee dislike.', 'text/plain', { Subject: 'balcony' });
    assert.equal(r.status, 202, `${r.status} ${r.reason}`);
    const m = await juliet.next(isMessageFrom(BOB_JID));
    assert.equal(text(child(m, 'body')), 'Neither, fair saint, if either thee dislike.');
    assert.equal(text(child(m, 'subject')), 'balcony');
    assert.equal(text(child(m, 'thread')), r.callId, 'RFC 7572: Call-ID → <thread/>');
  });

  it('a CPIM-wrapped MESSAGE (RFC 3862) arrives as its text, its DateTime as a delay stamp', async () => {
    const cpim = 'From: <sip:bob@example.test>\r\nTo: <sip:juliet@xmpp.test>\r\nDateTime: 2026-12-01T10:00:00Z\r\n\r\nContent-Type: text/plain\r\n\r\nWrapped hello';
    const r = await sipMessage(JULIET_SIP, cpim, 'message/cpim');
    assert.equal(r.status, 202);
    const m = await juliet.next(isMessageFrom(BOB_JID));
    assert.equal(text(child(m, 'body')), 'Wrapped hello');
    assert.equal(child(m, 'delay')?.attrs['stamp'], '2026-12-01T10:00:00.000Z');
  });

  it('a Jabber message to bob%example.test@sip.xmpp.test becomes a SIP MESSAGE to bob; his answer (486) returns as an XMPP error', async () => {
    await juliet.send(el('message', { to: BOB_JID, type: 'chat', id: 'j1' }, el('body', {}, 'Romeo, Romeo'), el('thread', {}, 'balcony-thread')));
    const got = await bob.nextRequest((m) => m.method === 'MESSAGE' && m.body === 'Romeo, Romeo', 8000);
    assert.equal(String(got.raw.headers.from?.uri), JULIET_SIP, 'From: the gateway address replies go back to');
    assert.equal(String(got.raw.headers.to?.uri), BOB);
    assert.match(got.h('content-type') ?? '', /^text\/plain/);
    assert.equal(got.callId, 'balcony-thread', 'RFC 7572: <thread/> → Call-ID');
    assert.ok(got.h('date'), 'Date set');
    bob.answerWith = (m) => (m.method === 'MESSAGE' ? 486 : 200);
    await juliet.send(el('message', { to: BOB_JID, type: 'chat', id: 'j2' }, el('body', {}, 'busy?')));
    const err = await juliet.next((n) => n.name === 'message' && n.attrs['type'] === 'error' && n.attrs['id'] === 'j2', 8000);
    assert.ok(child(child(err, 'error')!, 'recipient-unavailable'), 'RFC 7247 §7.2: 486 → recipient-unavailable');
    bob.answerWith = () => 200;
  });

  it('a message to a Jabber domain that is not bridged is refused; one to the gateway itself is a loop', async () => {
    assert.equal((await sipMessage(`sip:eve*evil.test@${GW}`, 'x')).status, 403);
    assert.equal((await sipMessage(`sip:x*${COMPONENT}@${GW}`, 'x')).status, 482);
  });

  it("bob's IM rules decide Jabber senders: romeo blocked gets a forbidden error and bob receives nothing; juliet still reaches him", async () => {
    const rules = `<?xml version="1.0"?><cp:ruleset xmlns="urn:herald:params:xml:ns:im-rules" xmlns:cp="urn:ietf:params:xml:ns:common-policy">` +
      '<cp:rule id="jabber"><cp:conditions><cp:identity><cp:many domain="xmpp.test"><cp:except id="sip:romeo@xmpp.test"/></cp:many></cp:identity></cp:conditions><cp:actions><im-handling>allow</im-handling></cp:actions></cp:rule>' +
      '</cp:ruleset>';
    const put = await xcap('PUT', th.xcapUrl(), `im-rules/users/${BOB}/index`, { username: 'bob', password: 'bob-pw' }, rules, 'application/auth-policy+xml');
    assert.ok(put.status === 200 || put.status === 201, `${put.status} ${put.body}`);
    const before = bob.requests.length;
    await romeo.send(el('message', { to: BOB_JID, type: 'chat', id: 'r1' }, el('body', {}, 'Let me in')));
    const err = await romeo.next((n) => n.name === 'message' && n.attrs['type'] === 'error' && n.attrs['id'] === 'r1', 8000);
    const e = child(err, 'error')!;
    assert.equal(e.attrs['type'], 'auth');
    assert.ok(child(e, 'forbidden'), 'RFC 7247 §7.2: 403 → forbidden');
    await juliet.send(el('message', { to: BOB_JID, type: 'chat', id: 'j3' }, el('body', {}, 'It is I')));
    await bob.nextRequest((m) => m.method === 'MESSAGE' && m.body === 'It is I', 8000);
    assert.equal(bob.requests.slice(before).filter((m) => m.body === 'Let me in').length, 0, 'the blocked message never reached bob');
  });
});
