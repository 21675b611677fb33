// The XMPP server's side of the component connection is hostile input too (issue 16). Each case below
// ended the process before gateways/xmpp/stream.ts owned the stream: bad JIDs raised "Invalid domain."
// inside xmpp.js's middleware, a mismatched end tag dropped its parser while data kept coming
// ("Cannot read properties of null (reading 'write')") and made it emit an unhandled "XMLError: …
// must be closed.", and `&#0;` made ltx throw "Illegal XML character 0x0". Now a bad stanza is dropped
// or answered with its RFC 6120 error on a connection that stays up, and a stream that is not XML ends
// that connection with a stream error; the component then reconnects, and Herald keeps serving SIP.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { ScriptedXmppServer } from '../support/xmpp-server.js';

const GW = 'sip.xmpp.test';
const ALICE_JID = `alice%example.test@${GW}`;
const DISCO = "<iq from='romeo@xmpp.test/x' to='sip.xmpp.test' type='get' id='disco-N'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>";

describe('XMPP component: hostile stanzas from the XMPP server', () => {
  let h: TestHerald;
  let ua: TestUA;
  const xmpp = new ScriptedXmppServer(GW);
  let probes = 0;

  before(async () => {
    await xmpp.start();
    h = await startTestHerald({
      gateway: { xmpp: { enabled: true, service: xmpp.service, secret: 's', xmpp_domains: ['xmpp.test'], reconnect_initial: 0.05, reconnect_max: 0.2 } },
    });
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    await xmpp.online();
  });
  after(async () => {
    ua.close();
    await h.stop();
    await xmpp.stop();
  });

  /** The component answers disco#info on the connection there is now, and SIP is still served. */
  async function serving(): Promise<void> {
    await xmpp.online();
    const id = `disco-${++probes}`;
    xmpp.write(DISCO.replace('disco-N', id));
    await xmpp.until((r) => r.includes(`id='${id}'`) || r.includes(`id="${id}"`));
    assert.equal((await ua.request('OPTIONS', 'sip:example.test', { from: 'sip:probe@example.test' })).status, 200);
  }

  /** Writes `bad` and expects the component to end this connection with `condition`, then reconnect. */
  async function endsStream(bad: string | Buffer, condition: string): Promise<void> {
    await xmpp.online();
    const before = xmpp.connections;
    const closed = xmpp.closed();
    xmpp.write(bad);
    // More data after the error: xmpp.js read it with a parser it had already dropped.
    xmpp.write("<presence from='romeo@xmpp.test' to='alice%example.test@sip.xmpp.test'/>");
    await xmpp.until((r) => r.includes(`<${condition} xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>`));
    await closed;
    await xmpp.online();
    assert.ok(xmpp.connections > before, 'the component reconnected');
    await serving();
  }

  test('a from that is not a JID ("Invalid domain." in xmpp.js) is dropped; the connection stays', async () => {
    await xmpp.online();
    const n = xmpp.connections;
    xmpp.write(`<presence from='/x' to='${ALICE_JID}' type='subscribe'/><presence from='@' to='${ALICE_JID}'/><message from='a@b@c' to='${ALICE_JID}'><body>x</body></message>`);
    await serving();
    assert.equal(xmpp.connections, n, 'same connection');
    assert.doesNotMatch(xmpp.received, /to=['"](\/x|@|a@b@c)['"]/, 'nothing answered to a non-JID');
  });

  test('a to that is not a JID is answered jid-malformed from the component domain (RFC 6120 §8.3.3.8)', async () => {
    const n = xmpp.connections;
    xmpp.write("<presence from='romeo@xmpp.test' to='/' type='subscribe' id='bad-to'/>");
    await xmpp.until((r) => /id=['"]bad-to['"]/.test(r));
    const reply = xmpp.received.slice(xmpp.received.search(/<presence[^>]*bad-to/));
    assert.match(reply, /type=['"]error['"]/);
    assert.match(reply, /from=['"]sip\.xmpp\.test['"]/);
    assert.match(reply, /<jid-malformed xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/);
    await serving();
    assert.equal(xmpp.connections, n);
  });

  test('an iq get with two children is answered once, bad-request (RFC 6120 §8.2.3)', async () => {
    xmpp.write("<iq from='romeo@xmpp.test/x' to='sip.xmpp.test' type='get' id='two'><a xmlns='x'/><b xmlns='y'/></iq>");
    await xmpp.until((r) => /id=['"]two['"]/.test(r));
    await serving();
    assert.equal(xmpp.received.match(/id=['"]two['"]/g)?.length, 1, 'one answer (xmpp.js answered too)');
    assert.match(xmpp.received, /<bad-request xmlns=['"]urn:ietf:params:xml:ns:xmpp-stanzas['"]/);
  });

  test('an error is never answered (RFC 6120 §8.3.1), even with a bad to', async () => {
    xmpp.write("<message from='romeo@xmpp.test' to='%%%/' type='error' id='err1'><error type='cancel'/></message>");
    await serving();
    assert.doesNotMatch(xmpp.received, /id=['"]err1['"]/);
  });

  test('a mismatched end tag with more data after it ("reading \'write\'", "must be closed.") ends the stream, not-well-formed', async () => {
    await endsStream(`<presence from='romeo@xmpp.test' to='${ALICE_JID}'><show>away</status></presence><message></iq>`, 'not-well-formed');
  });

  test('&#0; ("Illegal XML character 0x0") ends the stream, not-well-formed', async () => {
    await endsStream(`<message from='romeo@xmpp.test/x' to='${ALICE_JID}'><body>&#0;</body></message>`, 'not-well-formed');
  });

  test('a raw control character ends the stream (XML 1.0 Char), not-well-formed', async () => {
    await endsStream(`<presence from='romeo@xmpp.test' to='${ALICE_JID}'><status>a\u0001b</status></presence>`, 'not-well-formed');
  });

  test('bytes that are not UTF-8 end the stream, unsupported-encoding (RFC 6120 §11.6)', async () => {
    await endsStream(Buffer.concat([Buffer.from(`<presence from='romeo@xmpp.test' to='${ALICE_JID}'><status>`), Buffer.from([0xff, 0xfe, 0xc3]), Buffer.from('</status></presence>')]), 'unsupported-encoding');
  });

  test('a stanza that never ends is not buffered without bound: policy-violation', async () => {
    await endsStream(`<message from='romeo@xmpp.test/x' to='${ALICE_JID}'><body>${'x'.repeat(1_200_000)}`, 'policy-violation');
  });

  test('an end tag with no start ends the stream', async () => {
    await endsStream('</presence></presence>', 'not-well-formed');
  });
});
