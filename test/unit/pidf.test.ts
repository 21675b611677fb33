import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NS, childElements, firstChild, parseXml, textOf, type XmlElement } from '../../src/formats/xml.js';
import {
  PidfError, buildTuple, closedDocument, parsePidf, serializePidf, withEntity,
} from '../../src/formats/pidf.js';

const ACME = 'urn:example:acme:presence';

// A rich document as a modern softphone publishes it: RFC 4479 person/device, RPID (RFC 4480),
// CIPID (RFC 4482), caps (RFC 5196) and a vendor namespace Herald knows nothing about.
const REAL_WORLD = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"
    xmlns:caps="urn:ietf:params:xml:ns:pidf:caps"
    entity="sip:alice@example.test">
  <tuple id="t-bria-1">
    <status><basic>open</basic></status>
    <caps:servcaps>
      <caps:audio>true</caps:audio>
      <caps:video>false</caps:video>
      <caps:methods><caps:supported><caps:INVITE/><caps:MESSAGE/></caps:supported></caps:methods>
    </caps:servcaps>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
    <contact priority="0.8">sip:alice@192.0.2.10:5060;transport=tls</contact>
    <note xml:lang="en">Available</note>
    <timestamp>2024-05-01T10:00:00Z</timestamp>
  </tuple>
  <tuple id="t-im">
    <status><basic>closed</basic></status>
  </tuple>
  <note xml:lang="en">Working from home</note>
  <dm:person id="p-alice">
    <rpid:activities><rpid:on-the-phone/></rpid:activities>
    <rpid:mood><rpid:happy/></rpid:mood>
    <c:card>http://example.test/alice.vcf</c:card>
    <c:display-name>Alice Example</c:display-name>
    <dm:note>On a call</dm:note>
  </dm:person>
  <dm:device id="d-bria">
    <rpid:user-input>active</rpid:user-input>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
  </dm:device>
  <acme:location-hint xmlns:acme="urn:example:acme:presence" acme:floor="3" building="B">
    <acme:desk id="42">near the window &amp; the plant</acme:desk>
    <acme:flags><acme:flag/>mixed <b xmlns="">content</b></acme:flags>
  </acme:location-hint>
</presence>`;

function pidfRejects(text: string, re: RegExp): void {
  let caught: unknown;
  try {
    parsePidf(text);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof PidfError, `expected PidfError, got ${String(caught)}`);
  assert.match(caught.message, /^Bad PIDF: /);
  assert.match(caught.message, re);
  assert.ok(caught.message.length <= 100 && /^[\x20-\x7e]+$/.test(caught.message));
}

const wrap = (body: string, entity = 'sip:a@example.test'): string =>
  `<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="${entity}">${body}</presence>`;

test('a real-world PIDF: facts extracted, every part classified', () => {
  const doc = parsePidf(REAL_WORLD);
  assert.equal(doc.entity, 'sip:alice@example.test');
  assert.equal(doc.tuples.length, 2);
  const [t1, t2] = doc.tuples;
  assert.ok(t1 && t2);
  assert.deepEqual(
    { id: t1.id, basic: t1.basic, contact: t1.contact, priority: t1.priority, timestamp: t1.timestamp },
    { id: 't-bria-1', basic: 'open', contact: 'sip:alice@192.0.2.10:5060;transport=tls', priority: 0.8, timestamp: '2024-05-01T10:00:00Z' },
  );
  assert.deepEqual(
    { id: t2.id, basic: t2.basic, contact: t2.contact, priority: t2.priority, timestamp: t2.timestamp },
    { id: 't-im', basic: 'closed', contact: undefined, priority: undefined, timestamp: undefined },
  );
  // The tuple element is the whole original element: caps and deviceID survive.
  const servcaps = firstChild(t1.element, NS.CAPS, 'servcaps');
  assert.ok(servcaps);
  assert.equal(textOf(firstChild(servcaps, NS.CAPS, 'audio') as XmlElement), 'true');
  assert.ok(firstChild(t1.element, NS.DM, 'deviceID'));

  assert.equal(doc.notes.length, 1);
  assert.equal(textOf(doc.notes[0] as XmlElement), 'Working from home');
  assert.equal(doc.persons.length, 1);
  const person = doc.persons[0] as XmlElement;
  assert.equal(person.attrs['id'], 'p-alice');
  assert.deepEqual(childElements(person).map((e) => `${e.ns === NS.DM ? 'dm' : e.ns === NS.RPID ? 'rpid' : 'c'}:${e.name}`),
    ['rpid:activities', 'rpid:mood', 'c:card', 'c:display-name', 'dm:note']);
  assert.equal(doc.devices.length, 1);
  assert.equal((doc.devices[0] as XmlElement).attrs['id'], 'd-bria');

  // The unknown namespace is kept intact, attributes, text and nesting included.
  assert.equal(doc.extensions.length, 1);
  const ext = doc.extensions[0] as XmlElement;
  assert.equal(ext.ns, ACME);
  assert.deepEqual(ext.attrs, { [`{${ACME}}floor`]: '3', building: 'B' });
  const desk = firstChild(ext, ACME, 'desk') as XmlElement;
  assert.deepEqual(desk.attrs, { id: '42' });
  assert.deepEqual(desk.children, ['near the window & the plant']);
  const flags = firstChild(ext, ACME, 'flags') as XmlElement;
  assert.deepEqual(flags.children, [
    { ns: ACME, name: 'flag', attrs: {}, children: [] }, 'mixed ', { ns: '', name: 'b', attrs: {}, children: ['content'] },
  ]);
});

test('round trip: parsePidf(serializePidf(d)) deep-equals d', () => {
  const doc = parsePidf(REAL_WORLD);
  const text = serializePidf(doc);
  assert.deepEqual(parsePidf(text), doc);
  // ...and serialization is stable.
  assert.equal(serializePidf(parsePidf(text)), text);
  // The vendor namespace is declared and its content present in the output.
  assert.ok(text.includes(`="${ACME}"`));
  assert.ok(text.includes('near the window &amp; the plant'));
  assert.ok(text.startsWith('<?xml version="1.0" encoding="UTF-8"?><presence xmlns="urn:ietf:params:xml:ns:pidf"'));
});

test('serialize orders tuples, notes, persons, devices, extensions (RFC 3863 schema order)', () => {
  const doc = parsePidf(wrap('<x:e xmlns:x="urn:x"/><dm:device id="d"/><dm:person id="p"/><note>n</note><tuple id="t"><status/></tuple>'));
  const root = parseXml(serializePidf(doc));
  assert.deepEqual(childElements(root).map((e) => e.name), ['tuple', 'note', 'person', 'device', 'e']);
});

test('status without basic is allowed (RFC 3863 §4.1.4); basic is then undefined', () => {
  const doc = parsePidf(wrap('<tuple id="t"><status><x:y xmlns:x="urn:x"/></status></tuple>'));
  assert.equal(doc.tuples[0]?.basic, undefined);
});

test('priority accepts qvalues 0..1', () => {
  for (const [p, v] of [['0', 0], ['1', 1], ['0.5', 0.5], ['1.000', 1], [' 0.25 ', 0.25]] as const) {
    const doc = parsePidf(wrap(`<tuple id="t"><status><basic>open</basic></status><contact priority="${p}">sip:x@y</contact></tuple>`));
    assert.equal(doc.tuples[0]?.priority, v);
  }
});

test('invalid PIDF is refused with a PidfError usable as a 400 reason phrase', () => {
  pidfRejects('<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="t"><status/></tuple></presence>', /missing entity/);
  pidfRejects(wrap('', ' '), /missing entity/);
  pidfRejects('<presence entity="sip:a@b"/>', /root element/);
  pidfRejects('<presence xmlns="urn:ietf:params:xml:ns:cpim-pidf" entity="sip:a@b"/>', /root element/);
  pidfRejects('<tuple xmlns="urn:ietf:params:xml:ns:pidf" id="t"/>', /root element/);
  pidfRejects(wrap('<tuple><status><basic>open</basic></status></tuple>'), /tuple without id/);
  pidfRejects(wrap('<tuple id="t"><contact>sip:x@y</contact></tuple>'), /without status/);
  pidfRejects(wrap('<tuple id="t"><status><basic>busy</basic></status></tuple>'), /basic/);
  pidfRejects(wrap('<tuple id="t"><status><basic>OPEN</basic></status></tuple>'), /basic/);
  pidfRejects(wrap('<tuple id="t"><status/></tuple><tuple id="t"><status/></tuple>'), /duplicate tuple id/);
  pidfRejects(wrap('<tuple id="t"><status/><contact priority="2">sip:x@y</contact></tuple>'), /priority/);
  pidfRejects(wrap('<tuple id="t"><status/><contact priority="high">sip:x@y</contact></tuple>'), /priority/);
  pidfRejects(wrap('<dm:person/>'), /person without id/);
  pidfRejects(wrap('<dm:device id="d"/><dm:device id="d"/>'), /duplicate device id/);
});

test('XML errors surface as PidfError', () => {
  pidfRejects('<!DOCTYPE presence><presence/>', /DOCTYPE/);
  pidfRejects(wrap('<tuple id="t"><status></tuple>'), /malformed/);
  pidfRejects(wrap('<p:tuple/>'), /unbound/);
  pidfRejects('<presence>\uFFFD</presence>', /UTF-8/);
  pidfRejects(wrap(`<note>${'x'.repeat(70000)}</note>`), /too large/);
});

test('limits are passed through', () => {
  const text = wrap('<tuple id="t"><status><basic>open</basic></status></tuple>');
  assert.doesNotThrow(() => parsePidf(text));
  assert.throws(() => parsePidf(text, { maxElements: 2 }), PidfError);
});

test('closedDocument: one closed tuple, nothing else, and it serializes to valid PIDF', () => {
  const doc = closedDocument('sip:bob@example.test');
  assert.equal(doc.entity, 'sip:bob@example.test');
  assert.equal(doc.tuples.length, 1);
  assert.equal(doc.tuples[0]?.basic, 'closed');
  assert.deepEqual([doc.persons, doc.devices, doc.notes, doc.extensions], [[], [], [], []]);
  const back = parsePidf(serializePidf(doc));
  assert.deepEqual(back, doc);
});

test('withEntity changes only the entity and leaves the original alone', () => {
  const doc = parsePidf(REAL_WORLD);
  const before = structuredClone(doc);
  const other = withEntity(doc, 'sip:alias@example.test');
  assert.equal(other.entity, 'sip:alias@example.test');
  assert.deepEqual({ ...other, entity: doc.entity }, doc);
  assert.deepEqual(doc, before);
  assert.ok(serializePidf(other).includes('entity="sip:alias@example.test"'));
});

test('buildTuple makes facts and element agree', () => {
  const t = buildTuple({ id: 'gw', basic: 'open', contact: 'xmpp:bob@jabber.test', priority: 0.1234, timestamp: '2024-01-01T00:00:00Z', notes: ['Away & out'] });
  assert.equal(t.priority, 0.123);
  const doc = { entity: 'sip:bob@example.test', tuples: [t], persons: [], devices: [], notes: [], extensions: [] };
  assert.deepEqual(parsePidf(serializePidf(doc)), doc);
  assert.equal(textOf(firstChild(t.element, NS.PIDF, 'note') as XmlElement), 'Away & out');
});
