// RFC 7247 §6 address mapping, both ways, and Herald's gateway addressing.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GatewayAddressing, escapeNode, jidToSip, sipToJid, unescapeNode } from '../../gateways/xmpp/address.js';

describe('RFC 7247 §6.4 SIP → XMPP', () => {
  const cases: [string, string, string][] = [
    // [rule, SIP URI, JID]
    ['§6.4 example: percent-decoded, UTF-8', 'sip:f%C3%BC@sip.example', 'fü@sip.example'],
    ["§6.4 example: ' → \\27", "sip:o'malley@sip.example", 'o\\27malley@sip.example'],
    ['§6.3 example: gr → resource', 'sip:foo@sip.example;gr=bar', 'foo@sip.example/bar'],
    ['& → \\26', 'sip:m&m@sip.example', 'm\\26m@sip.example'],
    ['/ → \\2f', 'sip:a/b@sip.example', 'a\\2fb@sip.example'],
    ['%40 decoded then @ → \\40', 'sip:a%40b@sip.example', 'a\\40b@sip.example'],
    ['%22 " → \\22, %3A : → \\3a, %20 → \\20', 'sip:a%22b%3Ac%20d@sip.example', 'a\\22b\\3ac\\20d@sip.example'],
    ['%3C %3E → \\3c \\3e', 'sip:%3Cx%3E@sip.example', '\\3cx\\3e@sip.example'],
    ['characters both allow stay', "sip:a!$()*+,-.;=?_~b@sip.example", 'a!$()*+,-.;=?_~b@sip.example'],
    ['%25 decoded to % (allowed in XMPP)', 'sip:a%25b@sip.example', 'a%b@sip.example'],
    ['domain lowercased, port and other params dropped', 'sip:Juliet@SIP.Example:5060;transport=tcp', 'Juliet@sip.example'],
    ['sips too', 'sips:juliet@sip.example', 'juliet@sip.example'],
    ['percent-encoded gr', 'sip:foo@sip.example;gr=b%C3%A4r', 'foo@sip.example/bär'],
  ];
  for (const [rule, sip, jid] of cases) it(rule, () => assert.equal(sipToJid(sip), jid));
  it('refuses what is not a SIP URI or not UTF-8', () => {
    assert.equal(sipToJid('mailto:a@b'), undefined);
    assert.equal(sipToJid('sip:%FF@sip.example'), undefined);
  });
});

describe('RFC 7247 §6.5 XMPP → SIP', () => {
  const cases: [string, string, string][] = [
    ['§6.5 example: \\26 → &', 'm\\26m@xmpp.example', 'sip:m&m@xmpp.example'],
    ['§6.5 example: resource → gr', 'baz@xmpp.example/qux', 'sip:baz@xmpp.example;gr=qux'],
    ["\\27 → '", 'o\\27malley@xmpp.example', "sip:o'malley@xmpp.example"],
    ['\\2f → /', 'a\\2fb@xmpp.example', 'sip:a/b@xmpp.example'],
    ['non-ASCII → percent-encoded UTF-8', 'fü@xmpp.example', 'sip:f%C3%BC@xmpp.example'],
    ['# % [ \\ ] ^ ` { | } percent-encoded', 'a#%[]^`{|}b@xmpp.example', 'sip:a%23%25%5B%5D%5E%60%7B%7C%7Db@xmpp.example'],
    ['\\40 → @ → %40, \\20 → %20, \\3a → %3A', 'a\\40b\\20c\\3ad@xmpp.example', 'sip:a%40b%20c%3Ad@xmpp.example'],
    ['\\5c → \\ → %5C', 'a\\5c26@xmpp.example', 'sip:a%5C26@xmpp.example'],
    ['an undefined \\hh is not an escape', 'a\\41b@xmpp.example', 'sip:a%5C41b@xmpp.example'],
    ['resource with space percent-encoded', 'baz@xmpp.example/my phone', 'sip:baz@xmpp.example;gr=my%20phone'],
  ];
  for (const [rule, jid, sip] of cases) it(rule, () => assert.equal(jidToSip(jid), sip));
  it('the resource can be left out', () => assert.equal(jidToSip('baz@xmpp.example/qux', { withResource: false }), 'sip:baz@xmpp.example'));
  it('round trips', () => {
    for (const sip of ["sip:o'malley@sip.example", 'sip:m&m@sip.example', 'sip:f%C3%BC@sip.example', 'sip:foo@sip.example;gr=bar', 'sip:a%40b@sip.example']) {
      assert.equal(jidToSip(sipToJid(sip) as string), sip);
    }
  });
  it('XEP-0106: a backslash is escaped only where it would read as an escape', () => {
    assert.equal(escapeNode('a\\b'), 'a\\b');
    assert.equal(escapeNode('a\\26'), 'a\\5c26');
    assert.equal(unescapeNode(escapeNode('a\\26 &/')), 'a\\26 &/');
  });
});

describe("Herald's gateway addressing", () => {
  const a = new GatewayAddressing({
    componentDomain: 'sip.xmpp.test',
    gatewayDomain: 'xmpp.example.test',
    separator: '*',
    xmppDomains: ['xmpp.test', 'paired.test'],
    domainPairs: [{ sip: 'im.example.test', xmpp: 'paired.test' }],
    componentSipDomain: 'home.test',
  });
  it('a Jabber user from SIP: sip:<node>*<xmpp-domain>@<gateway-domain>', () => {
    assert.deepEqual(a.jabberOf('sip:romeo*xmpp.test@xmpp.example.test'), { jid: 'romeo@xmpp.test' });
    assert.deepEqual(a.jabberOf("sip:o'malley*xmpp.test@xmpp.example.test"), { jid: 'o\\27malley@xmpp.test' });
    // split at the last separator: the node may hold one, a domain never does
    assert.deepEqual(a.jabberOf('sip:a*b*xmpp.test@xmpp.example.test'), { jid: 'a*b@xmpp.test' });
    assert.equal(a.sipOfJabber('romeo@xmpp.test/balcony'), 'sip:romeo*xmpp.test@xmpp.example.test');
    assert.equal(a.sipOfJabber('m\\26m@xmpp.test'), 'sip:m&m*xmpp.test@xmpp.example.test');
  });
  it('a configured domain pair: sip:<node>@<mapped-domain>', () => {
    assert.deepEqual(a.jabberOf('sip:nurse@im.example.test'), { jid: 'nurse@paired.test' });
    assert.equal(a.sipOfJabber('nurse@paired.test'), 'sip:nurse@im.example.test');
  });
  it('RFC 7247 native addressing for a bridged domain', () => {
    assert.deepEqual(a.jabberOf('sip:romeo@xmpp.test'), { jid: 'romeo@xmpp.test' });
  });
  it('loops and unbridged domains are named, not bridged', () => {
    assert.equal(a.jabberOf('sip:bob%25example.test*sip.xmpp.test@xmpp.example.test')?.refused, 'own');
    assert.equal(a.jabberOf('sip:eve*evil.test@xmpp.example.test')?.refused, 'domain');
    assert.equal(a.jabberOf('sip:bob@example.test'), undefined);
    assert.equal(a.jabberOf('sip:nodomain*@xmpp.example.test'), undefined);
  });
  it('a SIP user from XMPP: <user>%<sip-domain>@<component-domain>', () => {
    assert.equal(a.jidOfSipUser('sip:bob@example.test'), 'bob%example.test@sip.xmpp.test');
    assert.equal(a.sipUserOfJid('bob%example.test@sip.xmpp.test/x'), 'sip:bob@example.test');
    assert.equal(a.jidOfSipUser("sip:o'malley@example.test"), 'o\\27malley%example.test@sip.xmpp.test');
    assert.equal(a.sipUserOfJid('o\\27malley%example.test@sip.xmpp.test'), "sip:o'malley@example.test");
    assert.equal(a.sipUserOfJid('bob%example.test@elsewhere.test'), undefined);
  });
  it('the configured component SIP domain needs no %domain', () => {
    assert.equal(a.jidOfSipUser('sip:carol@home.test'), 'carol@sip.xmpp.test');
    assert.equal(a.sipUserOfJid('carol@sip.xmpp.test'), 'sip:carol@home.test');
    // a user part with a '%' keeps its domain explicit, to stay reversible
    assert.equal(a.jidOfSipUser('sip:a%25b@home.test'), 'a%b%home.test@sip.xmpp.test');
    assert.equal(a.sipUserOfJid('a%b%home.test@sip.xmpp.test'), 'sip:a%25b@home.test');
  });
  it("a Jabber watcher's SIP identity for pres-rules", () => {
    assert.equal(a.watcherIdentity('juliet@xmpp.test/balcony'), 'sip:juliet@xmpp.test');
    assert.equal(a.watcherIdentity('nurse@paired.test'), 'sip:nurse@im.example.test');
  });
});
