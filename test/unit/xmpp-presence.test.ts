// RFC 8048 §6 presence mapping both ways, the RPID bridge, and RFC 7247 §7 error mapping.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parsePidf, serializePidf } from '../../src/formats/pidf.js';
import { NS, firstChild, textOf } from '../../src/formats/xml.js';
import { authorizationFate, sipStatusToXmpp, xmppErrorToSip } from '../../gateways/xmpp/errors.js';
import {
  pidfToXmpp, priorityToQ, qToPriority, readPresence, tupleIdOf, xmppToPidf, type XmppPresence,
} from '../../gateways/xmpp/presence-map.js';

const contact = (r: string): string => `sip:romeo*xmpp.test@gw.test;gr=${r}`;
const one = (p: XmppPresence, r = 'balcony') => xmppToPidf('sip:romeo*xmpp.test@gw.test', new Map([[r, p]]), contact);

describe('XMPP → PIDF (RFC 8048 §6.2)', () => {
  it('resource → tuple id with ID- prefix; available → open; status → note', () => {
    const d = one({ available: true, status: 'Wherefore art thou?' });
    assert.equal(d.tuples[0]?.id, 'ID-balcony');
    assert.equal(d.tuples[0]?.basic, 'open');
    assert.equal(d.tuples[0]?.contact, 'sip:romeo*xmpp.test@gw.test;gr=balcony');
    assert.equal(textOf(firstChild(d.tuples[0]!.element, NS.PIDF, 'note')!), 'Wherefore art thou?');
    // serializes to a PIDF our own parser accepts
    assert.equal(parsePidf(serializePidf(d)).tuples[0]?.id, 'ID-balcony');
  });
  it('unavailable → closed', () => assert.equal(one({ available: false }).tuples[0]?.basic, 'closed'));
  it('no resource at all → one closed tuple', () => assert.equal(xmppToPidf('sip:x@y', new Map(), contact).tuples[0]?.basic, 'closed'));
  it('tuple ids are xs:ID safe (a resource may start with a digit or hold spaces)', () => {
    assert.equal(tupleIdOf('1 phone'), 'ID-1_20_phone');
  });
  const prios: [number | undefined, number | undefined][] = [[0, 0], [127, 1], [64, 0.504], [undefined, 0], [-1, undefined], [-128, undefined]];
  for (const [p, q] of prios) {
    it(`priority ${p} → contact priority ${q} (negatives not mapped)`, () => {
      assert.equal(priorityToQ(p), q);
      assert.equal(one({ available: true, ...(p !== undefined ? { priority: p } : {}) }).tuples[0]?.priority, q);
    });
  }
  const shows: [XmppPresence['show'], string | undefined][] = [['away', 'away'], ['xa', 'away'], ['dnd', 'busy'], ['chat', undefined]];
  for (const [show, activity] of shows) {
    it(`show ${show} embedded as {jabber:client}show and as RPID activity ${activity}`, () => {
      const d = one({ available: true, ...(show ? { show } : {}) });
      const status = firstChild(d.tuples[0]!.element, NS.PIDF, 'status')!;
      assert.equal(textOf(firstChild(status, 'jabber:client', 'show')!), show);
      const acts = d.persons[0] && firstChild(d.persons[0], NS.RPID, 'activities');
      const a = acts?.children.find((c) => typeof c !== 'string');
      assert.equal(typeof a === 'object' ? a.name : undefined, activity);
      assert.match(serializePidf(d), /xmlns:\w+="jabber:client"/);
    });
  }
  it('xml:lang of the status goes on the note', () => {
    const d = one({ available: true, status: 'Ciao', lang: 'it' });
    assert.equal(firstChild(d.tuples[0]!.element, NS.PIDF, 'note')!.attrs[`{${NS.XML}}lang`], 'it');
  });
  it('the person shows the highest-priority available resource', () => {
    const d = xmppToPidf('sip:x@y', new Map<string, XmppPresence>([['a', { available: true, show: 'dnd', priority: 1 }], ['b', { available: true, show: 'away', priority: 5 }], ['c', { available: false }]]), contact);
    assert.equal(d.tuples.length, 3);
    const acts = firstChild(d.persons[0]!, NS.RPID, 'activities')!;
    assert.equal((acts.children[0] as { name: string }).name, 'away');
  });
  it('reads presence stanzas defensively', () => {
    assert.deepEqual(readPresence(undefined, 'dnd', 'x', '5', 'en'), { available: true, show: 'dnd', status: 'x', priority: 5, lang: 'en' });
    assert.deepEqual(readPresence('unavailable', 'bogus', '', '300', undefined), { available: false });
  });
});

const pidf = (inner: string, extraNs = ''): string =>
  `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"${extraNs} entity="sip:bob@example.test">${inner}</presence>`;

describe('PIDF → XMPP (RFC 8048 §6.3)', () => {
  it('open → available, note → status with xml:lang', () => {
    assert.deepEqual(pidfToXmpp(parsePidf(pidf('<tuple id="t"><status><basic>open</basic></status><note xml:lang="fr">Au téléphone</note></tuple>'))), { status: 'Au téléphone', lang: 'fr' });
  });
  it('closed → unavailable; no document → unavailable', () => {
    assert.equal(pidfToXmpp(parsePidf(pidf('<tuple id="t"><status><basic>closed</basic></status></tuple>'))).type, 'unavailable');
    assert.equal(pidfToXmpp(undefined).type, 'unavailable');
  });
  it('embedded {jabber:client}show → show', () => {
    const d = parsePidf(pidf('<tuple id="t"><status><basic>open</basic><j:show>xa</j:show></status></tuple>', ' xmlns:j="jabber:client"'));
    assert.equal(pidfToXmpp(d).show, 'xa');
  });
  const acts: [string, string | undefined][] = [['away', 'away'], ['busy', 'dnd'], ['on-the-phone', 'dnd'], ['meeting', 'dnd'], ['vacation', 'xa'], ['lunch', 'away'], ['working', undefined]];
  for (const [activity, show] of acts) {
    it(`RPID activity ${activity} → show ${show}`, () => {
      const d = parsePidf(pidf(`<tuple id="t"><status><basic>open</basic></status></tuple><dm:person id="p"><rpid:activities><rpid:${activity}/></rpid:activities></dm:person>`));
      assert.equal(pidfToXmpp(d).show, show);
    });
  }
  it('contact priority → priority; the highest-priority open tuple leads', () => {
    const d = parsePidf(pidf('<tuple id="a"><status><basic>open</basic></status><contact priority="0.2">sip:a@x</contact><note>low</note></tuple><tuple id="b"><status><basic>open</basic></status><contact priority="1">sip:b@x</contact><note>high</note></tuple>'));
    assert.deepEqual(pidfToXmpp(d), { priority: 127, status: 'high' });
    assert.equal(qToPriority(0.5), 64);
  });
  it('round trip XMPP → PIDF → XMPP keeps show and status', () => {
    for (const show of ['away', 'xa', 'dnd', 'chat'] as const) {
      assert.deepEqual(pidfToXmpp(parsePidf(serializePidf(one({ available: true, show, status: 's' })))), { show, status: 's' });
    }
  });
});

describe('RFC 7247 §7 errors and RFC 8048 §5.2.2 authorization fate', () => {
  const x2s: [string, 'full' | 'bare', number][] = [
    ['service-unavailable', 'full', 403], ['service-unavailable', 'bare', 405], ['item-not-found', 'full', 404], ['item-not-found', 'bare', 604],
    ['forbidden', 'bare', 603], ['remote-server-timeout', 'bare', 408], ['feature-not-implemented', 'bare', 501], ['unexpected-request', 'bare', 491],
    ['no-such-condition', 'bare', 400],
  ];
  for (const [cond, to, status] of x2s) it(`${cond} (${to} JID) → ${status}`, () => assert.equal(xmppErrorToSip({ condition: cond, type: 'cancel' }, to).status, status));
  it('service-unavailable is never 503', () => {
    for (const to of ['full', 'bare'] as const) assert.notEqual(xmppErrorToSip({ condition: 'service-unavailable', type: 'cancel' }, to).status, 503);
  });
  const s2x: [number, string][] = [[400, 'bad-request'], [403, 'forbidden'], [404, 'item-not-found'], [423, 'resource-constraint'], [481, 'item-not-found'], [489, 'policy-violation'], [503, 'internal-server-error'], [603, 'recipient-unavailable'], [302, 'redirect'], [499, 'bad-request'], [599, 'internal-server-error'], [699, 'recipient-unavailable']];
  for (const [status, cond] of s2x) it(`SIP ${status} → ${cond}`, () => assert.equal(sipStatusToXmpp(status).condition, cond));
  it('reason phrase → <text/>', () => assert.equal(sipStatusToXmpp(403, 'Nope').text, 'Nope'));
  it('403/489/603 cancel an authorization for good; 423/481 are transient', () => {
    for (const s of [403, 489, 603]) assert.equal(authorizationFate(s), 'cancelled');
    for (const s of [423, 481]) assert.equal(authorizationFate(s), 'transient');
    assert.equal(authorizationFate('rejected'), 'cancelled');
    assert.equal(authorizationFate('timeout'), 'transient');
  });
});
