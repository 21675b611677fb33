import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NS, childElements, textOf, type XmlElement } from '../../src/formats/xml.js';
import { parsePidf, serializePidf, type PidfDocument } from '../../src/formats/pidf.js';
import { composePresence, type PublishedDocument } from '../../src/presence/compose.js';

const ENTITY = 'sip:alice@example.test';

function pidf(body: string, entity = ENTITY): PidfDocument {
  return parsePidf(
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"' +
    ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"' +
    ` xmlns:x="urn:example:x" entity="${entity}">${body}</presence>`,
  );
}

const tuple = (id: string, basic: 'open' | 'closed', contact = `sip:${id}@192.0.2.1`): string =>
  `<tuple id="${id}"><status><basic>${basic}</basic></status><contact>${contact}</contact></tuple>`;

const pub = (etag: string, publishedAt: number, doc: PidfDocument): PublishedDocument => ({ etag, publishedAt, doc });

/** Person children as "prefix:name=text" for compact assertions. */
function personSummary(doc: PidfDocument): string[] {
  const prefix = (el: XmlElement): string => (el.ns === NS.DM ? 'dm' : el.ns === NS.RPID ? 'rpid' : el.ns === NS.CIPID ? 'c' : el.ns);
  return doc.persons.flatMap((p) => childElements(p).map((c) => {
    const inner = childElements(c).map((g) => g.name).join('+');
    return `${prefix(c)}:${c.name}=${inner || textOf(c)}`;
  }));
}

test('no publications: nothing to compose', () => {
  assert.equal(composePresence(ENTITY, []), undefined);
});

test('one publication comes out unchanged except for the entity', () => {
  const doc = pidf(`${tuple('a', 'open')}<note>hi</note><dm:person id="p"><rpid:activities><rpid:away/></rpid:activities></dm:person>`, 'sip:other@example.test');
  const out = composePresence(ENTITY, [pub('e1', 1, doc)]);
  assert.ok(out);
  assert.deepEqual(out, { ...doc, entity: ENTITY });
});

test('two devices: tuples are the union, newest publication first', () => {
  const desk = pidf(tuple('desk', 'open'));
  const mobile = pidf(tuple('mobile', 'closed') + tuple('mobile-im', 'open'));
  const out = composePresence(ENTITY, [pub('e-desk', 1000, desk), pub('e-mobile', 2000, mobile)]);
  assert.ok(out);
  assert.deepEqual(out.tuples.map((t) => t.id), ['mobile', 'mobile-im', 'desk']);
  assert.equal(out.entity, ENTITY);
});

test('same tuple id in two publications: the newest wins, whatever the input order', () => {
  const older = pidf(tuple('shared', 'open', 'sip:old@192.0.2.1') + tuple('only-old', 'open'));
  const newer = pidf(tuple('shared', 'closed', 'sip:new@192.0.2.2'));
  for (const pubs of [[pub('a', 10, older), pub('b', 20, newer)], [pub('b', 20, newer), pub('a', 10, older)]]) {
    const out = composePresence(ENTITY, pubs);
    assert.ok(out);
    assert.deepEqual(out.tuples.map((t) => [t.id, t.basic, t.contact]), [
      ['shared', 'closed', 'sip:new@192.0.2.2'],
      ['only-old', 'open', 'sip:only-old@192.0.2.1'],
    ]);
  }
});

test('person is built child by child: newest data per kind, nothing erased by a partial publisher', () => {
  // The desk phone (older) published activities, mood, a card and a note.
  const desk = pidf(tuple('desk', 'open') +
    '<dm:person id="p-desk"><rpid:activities><rpid:away/></rpid:activities><rpid:mood><rpid:happy/></rpid:mood>' +
    '<c:card>http://example.test/a.vcf</c:card><dm:note>Back at 3</dm:note></dm:person>');
  // The mobile (newer) publishes only activities.
  const mobile = pidf(tuple('mobile', 'open') +
    '<dm:person id="p-mobile"><rpid:activities><rpid:on-the-phone/></rpid:activities></dm:person>');
  const out = composePresence(ENTITY, [pub('d', 100, desk), pub('m', 200, mobile)]);
  assert.ok(out);
  assert.equal(out.persons.length, 1);
  assert.equal(out.persons[0]?.attrs['id'], 'p-mobile');
  assert.deepEqual(personSummary(out), [
    'rpid:activities=on-the-phone', // newest
    'rpid:mood=happy', // only the desk has a mood: kept
    'c:card=http://example.test/a.vcf',
    'dm:note=Back at 3', // dm:note after other namespaces (RFC 4479 schema order)
  ]);
});

test('several elements of one kind come together from one publication', () => {
  const a = pidf('<dm:person id="pa"><dm:note xml:lang="en">Lunch</dm:note><dm:note xml:lang="de">Mittag</dm:note></dm:person>');
  const b = pidf('<dm:person id="pb"><dm:note>Newer note</dm:note><rpid:mood><rpid:sad/></rpid:mood></dm:person>');
  const c = pidf('<dm:person id="pc"><rpid:mood><rpid:happy/></rpid:mood><rpid:place-type><rpid:home/></rpid:place-type></dm:person>');
  const out = composePresence(ENTITY, [pub('a', 3, a), pub('b', 2, b), pub('c', 1, c)]);
  assert.ok(out);
  assert.equal(out.persons[0]?.attrs['id'], 'pa');
  assert.deepEqual(personSummary(out), ['rpid:mood=sad', 'rpid:place-type=home', 'dm:note=Lunch', 'dm:note=Mittag']);
});

test('three devices: notes from the newest that has any, devices by id, extensions deduplicated', () => {
  const ext1 = '<x:geo x:lat="1" lon="2"><x:acc>5</x:acc></x:geo>';
  const ext2 = '<x:flag/>';
  const p1 = pidf(`${tuple('t1', 'open')}<note>oldest note</note><dm:device id="dev-a"><dm:deviceID>urn:a:old</dm:deviceID></dm:device>${ext1}`);
  // Same extension written with the attributes the other way round: still an exact duplicate.
  const p2 = pidf(`${tuple('t2', 'open')}<note>middle note</note><note xml:lang="fr">note du milieu</note>` +
    `<dm:device id="dev-b"/><x:geo lon="2" x:lat="1"><x:acc>5</x:acc></x:geo>${ext2}`);
  const p3 = pidf(`${tuple('t3', 'closed')}<dm:device id="dev-a"><dm:deviceID>urn:a:new</dm:deviceID></dm:device>` +
    '<dm:person id="p3"><rpid:activities><rpid:busy/></rpid:activities></dm:person>');
  const out = composePresence(ENTITY, [pub('1', 1, p1), pub('2', 2, p2), pub('3', 3, p3)]);
  assert.ok(out);
  assert.deepEqual(out.tuples.map((t) => t.id), ['t3', 't2', 't1']);
  // The newest publication has no note, so the next newest's notes (both of them) are used.
  assert.deepEqual(out.notes.map(textOf), ['middle note', 'note du milieu']);
  assert.deepEqual(out.devices.map((d) => [d.attrs['id'], childElements(d).map(textOf).join()]), [
    ['dev-a', 'urn:a:new'],
    ['dev-b', ''],
  ]);
  assert.deepEqual(out.extensions.map((e) => e.name), ['geo', 'flag']);
  assert.equal(out.extensions[0], p2.extensions[0], 'the newest copy of a duplicate is kept');
  assert.deepEqual(personSummary(out), ['rpid:activities=busy']);
  assert.equal(out.persons[0]?.attrs['id'], 'p3');
});

test('extensions that differ are all kept, newest first', () => {
  const a = pidf('<x:geo x:lat="1"/>');
  const b = pidf('<x:geo x:lat="2"/>');
  const out = composePresence(ENTITY, [pub('a', 1, a), pub('b', 2, b)]);
  assert.deepEqual(out?.extensions.map((e) => e.attrs['{urn:example:x}lat']), ['2', '1']);
});

test('no person anywhere: no person in the output', () => {
  const out = composePresence(ENTITY, [pub('a', 1, pidf(tuple('a', 'open'))), pub('b', 2, pidf(tuple('b', 'open')))]);
  assert.deepEqual(out?.persons, []);
  assert.deepEqual(out?.notes, []);
});

test('deterministic: input order and equal timestamps do not change the result', () => {
  const a = pidf(tuple('x', 'open', 'sip:a@192.0.2.1') + '<dm:person id="pa"><rpid:mood><rpid:happy/></rpid:mood></dm:person>');
  const b = pidf(tuple('x', 'closed', 'sip:b@192.0.2.2') + '<dm:person id="pb"><rpid:mood><rpid:sad/></rpid:mood></dm:person>');
  const c = pidf(tuple('y', 'open'));
  const pubs = [pub('etag-a', 5, a), pub('etag-b', 5, b), pub('etag-c', 1, c)];
  const first = serializePidf(composePresence(ENTITY, pubs) as PidfDocument);
  for (const order of [[0, 1, 2], [1, 0, 2], [2, 1, 0], [2, 0, 1]]) {
    const out = composePresence(ENTITY, order.map((i) => pubs[i] as PublishedDocument));
    assert.equal(serializePidf(out as PidfDocument), first);
  }
});

test('pure: the publications are not modified, and the result is valid PIDF', () => {
  const a = pidf(`${tuple('a', 'open')}<dm:person id="pa"><rpid:mood><rpid:happy/></rpid:mood></dm:person><x:e/>`);
  const b = pidf(`${tuple('b', 'open')}<dm:person id="pb"><rpid:activities><rpid:away/></rpid:activities></dm:person>`);
  const pubs = [pub('a', 1, a), pub('b', 2, b)];
  const before = structuredClone(pubs);
  const out = composePresence(ENTITY, pubs) as PidfDocument;
  assert.deepEqual(pubs, before);
  const reparsed = parsePidf(serializePidf(out));
  assert.deepEqual(reparsed, out);
});
