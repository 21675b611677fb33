import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NS, childElements, firstChild, parseXml, textOf, type XmlElement } from '../../src/formats/xml.js';
import { closedDocument, parsePidf, type PidfDocument } from '../../src/formats/pidf.js';
import { renderXpidf } from '../../src/formats/xpidf.js';
import { renderCpimPidf } from '../../src/formats/cpim-pidf.js';
import { renderLpidf } from '../../src/formats/lpidf.js';
import { CT, mediaType, negotiatePresenceType } from '../../src/formats/content-types.js';

const PROLOG = '<?xml version="1.0"?>\r\n<!DOCTYPE presence PUBLIC "-//IETF//DTD RFCxxxx XPIDF 1.0//EN" "xpidf.dtd">\r\n';

function pidf(body: string, entity = 'sip:alice@example.test'): PidfDocument {
  return parsePidf(
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"' +
    ` xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:x="urn:example:x" entity="${entity}">${body}</presence>`,
  );
}

const open = '<tuple id="t1"><status><basic>open</basic></status><contact priority="0.9">sip:alice@192.0.2.7</contact></tuple>';
const closed = '<tuple id="t2"><status><basic>closed</basic></status></tuple>';
const person = (acts: string): string => `<dm:person id="p"><rpid:activities>${acts}</rpid:activities></dm:person>`;

/** Our parser refuses any DOCTYPE, so the fixed prolog is checked and cut before parsing. */
function parseXpidf(text: string): XmlElement {
  assert.ok(text.startsWith(PROLOG), `prolog: ${JSON.stringify(text.slice(0, 120))}`);
  return parseXml(text.slice(PROLOG.length));
}

function xpidfStatus(doc: PidfDocument): [string | undefined, string | undefined] {
  const root = parseXpidf(renderXpidf(doc));
  const address = firstChild(firstChild(root, '', 'atom') as XmlElement, '', 'address') as XmlElement;
  return [firstChild(address, '', 'status')?.attrs['status'], firstChild(address, '', 'msnsubstatus')?.attrs['substatus']];
}

test('XPIDF has the shape old phones expect', () => {
  const root = parseXpidf(renderXpidf(pidf(open)));
  assert.equal(root.ns, '');
  assert.equal(root.name, 'presence');
  assert.deepEqual(childElements(root).map((e) => e.name), ['presentity', 'atom']);
  assert.deepEqual(firstChild(root, '', 'presentity')?.attrs, { uri: 'sip:alice@example.test;method=SUBSCRIBE' });
  const atom = firstChild(root, '', 'atom') as XmlElement;
  assert.deepEqual(atom.attrs, { id: 'alice' });
  const [address, ...more] = childElements(atom);
  assert.equal(more.length, 0);
  assert.ok(address);
  assert.equal(address.name, 'address');
  assert.deepEqual(address.attrs, { uri: 'sip:alice@192.0.2.7', priority: '0.900000' });
  assert.deepEqual(childElements(address).map((e) => [e.name, e.attrs]), [
    ['status', { status: 'open' }],
    ['msnsubstatus', { substatus: 'online' }],
  ]);
});

test('XPIDF status and msnsubstatus follow basic status and RPID activities', () => {
  const table: Array<[string, [string, string]]> = [
    [open, ['open', 'online']],
    [closed, ['closed', 'offline']],
    [closed + open, ['open', 'online']],
    [open + person('<rpid:away/>'), ['open', 'away']],
    [open + person('<rpid:vacation/>'), ['open', 'away']],
    [open + person('<rpid:busy/>'), ['open', 'busy']],
    [open + person('<rpid:meeting/>'), ['open', 'busy']],
    [open + person('<rpid:on-the-phone/>'), ['inuse', 'onthephone']],
    [open + person('<rpid:away/><rpid:on-the-phone/>'), ['inuse', 'onthephone']],
    [open + person('<rpid:lunch/>'), ['open', 'outtolunch']],
    [open + person('<rpid:other>coding</rpid:other>'), ['open', 'online']],
    [open + '<dm:person id="p"><rpid:user-input>idle</rpid:user-input></dm:person>', ['open', 'idle']],
    [closed + person('<rpid:busy/>'), ['closed', 'offline']],
  ];
  for (const [body, expected] of table) assert.deepEqual(xpidfStatus(pidf(body)), expected, body);
});

test('XPIDF of a never-published user is closed/offline with the entity as address', () => {
  const root = parseXpidf(renderXpidf(closedDocument('sip:bob@example.test')));
  const address = firstChild(firstChild(root, '', 'atom') as XmlElement, '', 'address') as XmlElement;
  assert.deepEqual(address.attrs, { uri: 'sip:bob@example.test', priority: '0.800000' });
  assert.deepEqual(xpidfStatus(closedDocument('sip:bob@example.test')), ['closed', 'offline']);
});

test('XPIDF uses a sip: URI for a pres: entity and escapes what it copies', () => {
  const root = parseXpidf(renderXpidf(pidf(open, 'pres:o&apos;brien@example.test')));
  assert.equal(firstChild(root, '', 'presentity')?.attrs['uri'], "sip:o'brien@example.test;method=SUBSCRIBE");
  const tricky = pidf('<tuple id="t"><status><basic>open</basic></status><contact>sip:a@b;x="&lt;&amp;&gt;"</contact></tuple>');
  const text = renderXpidf(tricky);
  assert.ok(text.includes('uri="sip:a@b;x=&quot;&lt;&amp;&gt;&quot;"'));
  const addr = firstChild(firstChild(parseXpidf(text), '', 'atom') as XmlElement, '', 'address');
  assert.equal(addr?.attrs['uri'], 'sip:a@b;x="<&>"');
});

test('CPIM-PIDF: PIDF under the cpim-pidf namespace, tuples with basic/contact/note only', () => {
  const doc = pidf(
    '<tuple id="t1"><status><basic>open</basic><x:extra/></status><x:cap/>' +
    '<contact priority="0.5">sip:alice@192.0.2.7</contact><note xml:lang="en">At desk</note>' +
    '<timestamp>2024-01-01T00:00:00Z</timestamp></tuple>' + closed +
    '<note>top</note>' + person('<rpid:away/>') + '<dm:device id="d"/><x:ext/>',
  );
  const text = renderCpimPidf(doc);
  const root = parseXml(text);
  assert.equal(root.ns, NS.CPIM_PIDF);
  assert.equal(root.name, 'presence');
  assert.deepEqual(root.attrs, { entity: 'pres:alice@example.test' });
  assert.deepEqual(childElements(root).map((e) => [e.ns, e.name]), [
    [NS.CPIM_PIDF, 'tuple'], [NS.CPIM_PIDF, 'tuple'], [NS.CPIM_PIDF, 'note'],
  ]);
  const [t1, t2, note] = childElements(root) as [XmlElement, XmlElement, XmlElement];
  assert.deepEqual(t1.attrs, { id: 't1' });
  assert.deepEqual(childElements(t1).map((e) => e.name), ['status', 'contact', 'note']);
  assert.deepEqual(childElements(firstChild(t1, NS.CPIM_PIDF, 'status') as XmlElement).map((e) => [e.name, textOf(e)]), [['basic', 'open']]);
  assert.deepEqual(firstChild(t1, NS.CPIM_PIDF, 'contact')?.attrs, { priority: '0.5' });
  assert.equal(textOf(firstChild(t1, NS.CPIM_PIDF, 'contact') as XmlElement), 'sip:alice@192.0.2.7');
  assert.deepEqual(firstChild(t1, NS.CPIM_PIDF, 'note')?.attrs, { [`{${NS.XML}}lang`]: 'en' });
  assert.equal(textOf(firstChild(t2, NS.CPIM_PIDF, 'status') as XmlElement), 'closed');
  assert.equal(textOf(note), 'top');
  // Nothing from the data model or extensions leaks through.
  assert.ok(!text.includes('data-model') && !text.includes('rpid') && !text.includes('urn:example:x'));
});

test('CPIM-PIDF: an empty document still has one closed tuple; person notes stand in for missing notes', () => {
  const empty: PidfDocument = { entity: 'sip:bob@example.test', tuples: [], persons: [], devices: [], notes: [], extensions: [] };
  const root = parseXml(renderCpimPidf(empty));
  assert.deepEqual(childElements(root).map((e) => [e.name, e.attrs['id'], textOf(e)]), [['tuple', 'none', 'closed']]);
  const withPersonNote = pidf(`${open}<dm:person id="p"><dm:note>In a meeting</dm:note></dm:person>`);
  const r2 = parseXml(renderCpimPidf(withPersonNote));
  assert.deepEqual(childElements(r2, NS.CPIM_PIDF, 'note').map(textOf), ['In a meeting']);
});

test('negotiatePresenceType', () => {
  const table: Array<[string | undefined, string | undefined]> = [
    [undefined, CT.PIDF], // RFC 3856 §6.6: no Accept means PIDF
    ['', undefined], // RFC 3261 §20.1: an empty Accept accepts nothing
    ['application/pidf+xml', CT.PIDF],
    ['Application/PIDF+XML', CT.PIDF],
    ['application/xpidf+xml', CT.XPIDF],
    ['application/cpim-pidf+xml', CT.CPIM_PIDF],
    ['application/xpidf+xml, application/cpim-pidf+xml', CT.XPIDF], // tie: first listed
    ['application/cpim-pidf+xml, application/xpidf+xml', CT.CPIM_PIDF],
    ['application/xpidf+xml, application/pidf+xml', CT.PIDF], // tie: PIDF preferred
    ['application/xpidf+xml;q=1.0, application/pidf+xml;q=0.5', CT.XPIDF],
    ['application/pidf+xml;q=0.1, application/cpim-pidf+xml;q=0.2', CT.CPIM_PIDF],
    ['application/pidf+xml;q=0', undefined],
    ['application/pidf+xml;q=0, application/xpidf+xml;q=0.001', CT.XPIDF],
    ['*/*', CT.PIDF],
    ['application/*', CT.PIDF],
    ['application/*;q=0.5, application/xpidf+xml', CT.XPIDF],
    ['*/*;q=0.1, application/pidf+xml;q=0', CT.CPIM_PIDF], // specific q=0 beats the wildcard
    ['application/*, application/pidf+xml;q=0, application/cpim-pidf+xml;q=0', CT.XPIDF],
    ['text/*, application/sdp', undefined],
    ['application/sdp', undefined],
    ['multipart/related, application/rlmi+xml, application/pidf+xml', CT.PIDF],
    ['application/pidf+xml; charset="utf-8, really"; q=0.7, application/xpidf+xml;q=0.6', CT.PIDF],
    ['application/pidf+xml;q=2, application/xpidf+xml', CT.XPIDF], // bad qvalue voids the range
    ['garbage, application/cpim-pidf+xml', CT.CPIM_PIDF],
    ['*/xml', undefined],
    [' , ,application/pidf+xml , ', CT.PIDF],
    ['application/lpidf+xml', CT.LPIDF],
    ['application/lpidf+xml, application/xpidf+xml', CT.LPIDF], // tie: the range listed first
    ['application/lpidf+xml, application/pidf+xml;q=0.5', CT.LPIDF],
    ['application/*, application/pidf+xml;q=0, application/cpim-pidf+xml;q=0, application/xpidf+xml;q=0', CT.LPIDF],
  ];
  for (const [accept, expected] of table) assert.equal(negotiatePresenceType(accept), expected, String(accept));
});

test('lpidf has the SER PA shape: a To line, then one Contact per tuple with q=1 open, q=0 closed', () => {
  assert.equal(renderLpidf(pidf(open + closed)), 'To: <sip:alice@example.test>\r\nContact: <sip:alice@192.0.2.7>;q=1\r\nContact: <sip:alice@example.test>;q=0\r\n');
  // Never published: the presentity itself, closed.
  assert.equal(renderLpidf(closedDocument('pres:bob@example.test')), 'To: <sip:bob@example.test>\r\nContact: <sip:bob@example.test>;q=0\r\n');
  // A contact cannot break out of its brackets or its line.
  const evil = pidf('<tuple id="e"><status><basic>open</basic></status><contact>sip:x@h&gt;\r\nTo: &lt;sip:y@h</contact></tuple>');
  assert.equal(renderLpidf(evil).split('\r\n').length, 3);
});

test('mediaType', () => {
  const table: Array<[string | undefined, string | undefined]> = [
    [undefined, undefined],
    ['', undefined],
    ['application/pidf+xml', 'application/pidf+xml'],
    ['Application/PIDF+XML ; charset=UTF-8', 'application/pidf+xml'],
    ['  multipart/related;type="application/rlmi+xml";boundary=x', 'multipart/related'],
    ['application', undefined],
    ['application/', undefined],
    ['appli cation/pidf+xml', undefined],
  ];
  for (const [header, expected] of table) assert.equal(mediaType(header), expected, String(header));
});
