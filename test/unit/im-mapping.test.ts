// RFC 7572 page-mode mapping (gateways/xmpp/im.ts), CPIM unwrapping (RFC 3862), the proxy's choice of
// the answer to relay (RFC 3261 §16.7) and the per-sender rate. Pure functions, no sockets.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayAddressing, jidToSip, sipToJid } from '../../gateways/xmpp/address.js';
import { callIdOfThread, messageStanza, readMessageStanza, sipHeadersOf } from '../../gateways/xmpp/im.js';
import { child, el, serialize, text } from '../../gateways/xmpp/wire.js';
import { parseCpim } from '../../src/im/relay.js';
import { TIMED_OUT, bestResponse } from '../../src/im/forward.js';
import { SenderRate } from '../../src/im/rate.js';

describe('RFC 7572 addresses', () => {
  it('§5 example: sip:romeo@example.net sends to sip:juliet@example.com, i.e. romeo@example.net to juliet@example.com (RFC 7247 §6)', () => {
    assert.equal(sipToJid('sip:romeo@example.net'), 'romeo@example.net');
    assert.equal(sipToJid('sip:juliet@example.com'), 'juliet@example.com');
    assert.equal(jidToSip('juliet@example.com/yn0cl4bnw0yr3vym'), 'sip:juliet@example.com;gr=yn0cl4bnw0yr3vym');
  });
  const a = new GatewayAddressing({ componentDomain: 'sip.xmpp.test', gatewayDomain: 'xmpp.example.test', separator: '*', xmppDomains: ['xmpp.test'], domainPairs: [], componentSipDomain: '' });
  it("Herald's forms: sip:juliet*xmpp.test@gateway is juliet@xmpp.test; bob's JID is bob%example.test@component", () => {
    assert.deepEqual(a.jabberOf('sip:juliet*xmpp.test@xmpp.example.test'), { jid: 'juliet@xmpp.test' });
    assert.equal(a.jidOfSipUser('sip:bob@example.test'), 'bob%example.test@sip.xmpp.test');
    assert.equal(a.sipUserOfJid('bob%example.test@sip.xmpp.test/phone'), 'sip:bob@example.test');
    assert.equal(a.sipOfJabber('juliet@xmpp.test/balcony'), 'sip:juliet*xmpp.test@xmpp.example.test');
    assert.equal(a.watcherIdentity('juliet@xmpp.test/balcony'), 'sip:juliet@xmpp.test', 'who IM rules see');
  });
});

describe('RFC 7572 §5: SIP MESSAGE → XMPP <message/>', () => {
  const now = Date.parse('2026-12-02T01:00:00Z');
  it('the §5 example: body, chat, thread from Call-ID, subject, xml:lang', () => {
    const m = messageStanza(
      { from: 'sip:romeo@example.net', to: 'sip:juliet@example.com', text: 'Neither, fair saint, if either thee dislike.', thread: 'RDl9Gv89@example.net', subject: 'balcony', lang: 'en' },
      'romeo@example.net', 'juliet@example.com', 'id1', now,
    );
    assert.equal(
      serialize(m),
      '<message from="romeo@example.net" to="juliet@example.com" type="chat" id="id1" xml:lang="en"><subject>balcony</subject><body>Neither, fair saint, if either thee dislike.</body><thread>RDl9Gv89@example.net</thread></message>',
    );
  });
  it('a Date older than 30 s becomes an XEP-0203 delay; a fresh one does not', () => {
    const base = { from: 'sip:a@x', to: 'sip:b@y', text: 'hi' };
    assert.equal(child(messageStanza({ ...base, sentAt: now - 5000 }, 'a@x', 'b@y', 'i', now), 'delay'), undefined);
    const d = child(messageStanza({ ...base, sentAt: now - 120_000 }, 'a%x@gw', 'b@y', 'i', now), 'delay');
    assert.equal(d?.attrs['stamp'], '2026-12-02T00:58:00.000Z');
    assert.equal(d?.attrs['xmlns'], 'urn:xmpp:delay');
    assert.equal(d?.attrs['from'], 'gw');
  });
  it('markup in the text is escaped, never parsed', () => {
    assert.match(serialize(messageStanza({ from: 'sip:a@x', to: 'sip:b@y', text: '<b>&</b>' }, 'a@x', 'b@y', 'i', now)), /<body>&lt;b&gt;&amp;&lt;\/b&gt;<\/body>/);
  });
});

describe('RFC 7572 §4: XMPP <message/> → SIP MESSAGE', () => {
  it('the §4 example: body, type, thread, id', () => {
    const n = el('message', { from: 'juliet@example.com/yn0cl4bnw0yr3vym', to: 'romeo@example.net', type: 'chat', id: 'ju2ba41c' },
      el('body', {}, 'Art thou not Romeo, and a Montague?'), el('thread', {}, 'Ccd4PvZC'));
    const m = readMessageStanza(n)!;
    assert.equal(m.text, 'Art thou not Romeo, and a Montague?');
    assert.equal(m.thread, 'Ccd4PvZC');
    assert.equal(m.id, 'ju2ba41c');
    assert.equal(m.type, 'chat');
    assert.equal(callIdOfThread(m.thread), 'Ccd4PvZC', '<thread/> → Call-ID');
  });
  it('no body (chat state, receipt): nothing to send', () => {
    assert.equal(readMessageStanza(el('message', { from: 'a@x', to: 'b@y' }, el('composing', { xmlns: 'http://jabber.org/protocol/chatstates' }))), undefined);
  });
  it('a thread that is no Call-ID word is hashed into one, the same every time; none gives a fresh Call-ID', () => {
    const c = callIdOfThread('a thread with spaces');
    assert.match(c, /^[0-9a-f]{32}@herald$/);
    assert.equal(callIdOfThread('a thread with spaces'), c);
    assert.notEqual(callIdOfThread(undefined), callIdOfThread(undefined));
  });
  it('delay → Date, subject → Subject, xml:lang → Content-Language', () => {
    const n = el('message', { from: 'a@x', to: 'b@y', 'xml:lang': 'de' }, el('subject', {}, 'Betreff'), el('body', {}, 'Hallo'), el('delay', { xmlns: 'urn:xmpp:delay', stamp: '2026-12-01T10:00:00Z' }));
    const h = new Map(sipHeadersOf(readMessageStanza(n)!));
    assert.equal(h.get('Date'), 'Tue, 01 Dec 2026 10:00:00 GMT');
    assert.equal(h.get('Subject'), 'Betreff');
    assert.equal(h.get('Content-Language'), 'de');
    assert.equal(text(child(n, 'body')), 'Hallo');
  });
});

describe('CPIM (RFC 3862)', () => {
  it('the §3 example shape: message headers, MIME headers, content', () => {
    const m = parseCpim('From: MR SANDERS <im:piglet@100akerwood.com>\r\nTo: Depressed Donkey <im:eeyore@100akerwood.com>\r\nDateTime: 2000-12-13T13:40:00-08:00\r\nSubject: the weather will be fine today\r\n\r\nContent-type: text/plain\r\nContent-ID: <1234567890@foo.com>\r\n\r\nHere is the text of my message.');
    assert.ok(m);
    assert.equal(m.contentType, 'text/plain');
    assert.equal(m.body, 'Here is the text of my message.');
    assert.equal(m.sentAt, Date.parse('2000-12-13T21:40:00Z'));
    assert.equal(m.subject, 'the weather will be fine today');
  });
  it('not CPIM: undefined', () => assert.equal(parseCpim('just text'), undefined));
});

describe('RFC 3261 §16.7: the answer a forking proxy relays', () => {
  const r = (status: number) => ({ status, reason: String(status) });
  it('a 6xx wins over 4xx; else the lowest class; 503 goes on as 500; none at all is 408', () => {
    assert.equal(bestResponse([r(486), r(603), r(404)]).status, 603);
    assert.equal(bestResponse([r(486), r(480)]).status, 480);
    assert.equal(bestResponse([r(500), r(486)]).status, 486);
    assert.equal(bestResponse([r(503)]).status, 500);
    assert.equal(bestResponse([]).status, 408);
    assert.equal(bestResponse([TIMED_OUT, r(486)]).status, 486, "a busy phone's answer before a silent tablet's timeout");
    assert.equal(bestResponse([TIMED_OUT, r(500)]).status, 408, 'a lower class still wins');
  });
});

describe('per-sender rate', () => {
  it('burst at once, then rate per second; each sender on its own; bounded', () => {
    const r = new SenderRate({ rate: 2, burst: 3, maxSenders: 2 });
    const t = 1_000_000;
    assert.deepEqual([r.take('a', t), r.take('a', t), r.take('a', t)], [0, 0, 0]);
    assert.ok(r.take('a', t) >= 1, 'the fourth waits');
    assert.equal(r.take('a', t + 500), 0, 'half a second later one token is back');
    assert.equal(r.take('b', t), 0);
    r.take('c', t);
    assert.ok(r.size <= 2);
  });
});
