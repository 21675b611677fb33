import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  DEFAULT_XML_LIMITS, NS, XmlError, childElements, firstChild, parseXml, serializeXml, textOf, toReasonPhrase,
  type XmlElement,
} from '../../src/formats/xml.js';

const XML_LANG = `{${NS.XML}}lang`;

function assertReasonSafe(message: string): void {
  assert.ok(message.length > 0 && message.length <= 100, `length ${message.length}: ${message}`);
  assert.match(message, /^[\x20-\x7e]+$/, `not printable ASCII: ${JSON.stringify(message)}`);
}

/** Expects an XmlError whose message is usable as a SIP reason phrase and matches `re`. */
function rejects(text: string, re: RegExp, limits?: Parameters<typeof parseXml>[1]): void {
  let caught: unknown;
  try {
    parseXml(text, limits);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof XmlError, `expected XmlError, got ${String(caught)}`);
  assertReasonSafe(caught.message);
  assert.match(caught.message, re);
}

test('parse resolves default and prefixed namespaces; xmlns declarations are not attributes', () => {
  const root = parseXml(
    '<?xml version="1.0" encoding="UTF-8"?>\n' +
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:a@x">\n' +
    '  <dm:person id="p1" xml:lang="fr"><note>n</note></dm:person>\n' +
    '  <other xmlns="urn:example:o" xmlns:q="urn:example:q" q:attr="1" plain="2"><q:inner/><deflt/></other>\n' +
    '</presence>',
  );
  assert.equal(root.ns, NS.PIDF);
  assert.equal(root.name, 'presence');
  assert.deepEqual(root.attrs, { entity: 'sip:a@x' });
  const [person, other] = childElements(root);
  assert.ok(person && other);
  assert.equal(person.ns, NS.DM);
  assert.equal(person.name, 'person');
  assert.deepEqual(person.attrs, { id: 'p1', [XML_LANG]: 'fr' });
  // Default namespace is inherited by unprefixed children.
  assert.equal((person.children[0] as XmlElement).ns, NS.PIDF);
  assert.equal(other.ns, 'urn:example:o');
  // Unprefixed attributes are in no namespace; prefixed ones are {uri}local.
  assert.deepEqual(other.attrs, { '{urn:example:q}attr': '1', plain: '2' });
  assert.deepEqual(childElements(other).map((e) => [e.ns, e.name]), [['urn:example:q', 'inner'], ['urn:example:o', 'deflt']]);
});

test('an element with no namespace has ns ""; xmlns="" undeclares the default', () => {
  const root = parseXml('<a><b xmlns="urn:x"><c xmlns=""/></b></a>');
  assert.equal(root.ns, '');
  const b = root.children[0] as XmlElement;
  assert.equal(b.ns, 'urn:x');
  assert.equal((b.children[0] as XmlElement).ns, '');
});

test('only predefined entities and character references are decoded; CDATA is literal; comments dropped', () => {
  const root = parseXml('<a t="&lt;&quot;&apos;&#65;&#x42;">x &amp; y &lt;z&gt; &#x1F600; <![CDATA[<b>&amp;</b>]]><!-- gone --></a>');
  assert.equal(root.attrs['t'], `<"'AB`);
  assert.deepEqual(root.children, ['x & y <z> \u{1F600} <b>&amp;</b>']);
});

test('whitespace-only text between elements is dropped, mixed content kept', () => {
  const root = parseXml('<a>\n  <b> </b>\n  <c>  padded  </c>\n</a>');
  assert.deepEqual(root.children.map((c) => typeof c), ['object', 'object']);
  assert.deepEqual((root.children[0] as XmlElement).children, []);
  assert.deepEqual((root.children[1] as XmlElement).children, ['  padded  ']);
  const mixed = parseXml('<p>one <b>two</b> <i>three</i></p>');
  assert.deepEqual(mixed.children.map((c) => (typeof c === 'string' ? c : c.name)), ['one ', 'b', ' ', 'i']);
});

test('names that are JavaScript object keys are ordinary element names', () => {
  const root = parseXml('<constructor><__proto__ x="1"/><toString>v</toString><hasOwnProperty/></constructor>');
  assert.equal(root.name, 'constructor');
  assert.deepEqual(childElements(root).map((e) => e.name), ['__proto__', 'toString', 'hasOwnProperty']);
  assert.deepEqual((root.children[0] as XmlElement).attrs, { x: '1' });
  const odd = parseXml('<a __proto__="p" constructor="c"/>');
  assert.deepEqual(Object.keys(odd.attrs), ['__proto__', 'constructor']);
  assert.equal(Object.getPrototypeOf(odd.attrs), Object.prototype);
  assert.equal(odd.attrs['constructor'], 'c');
  assert.equal(serializeXml(odd, { declaration: false }), '<a __proto__="p" constructor="c"/>');
});

test('childElements, firstChild, textOf', () => {
  const root = parseXml('<r xmlns="urn:a" xmlns:b="urn:b"><x>1</x><b:x> 2 </b:x><y>3<z>4</z></y><x>5</x></r>');
  assert.deepEqual(childElements(root).map(textOf), ['1', '2', '34', '5']);
  assert.deepEqual(childElements(root, 'urn:a').map(textOf), ['1', '34', '5']);
  assert.deepEqual(childElements(root, 'urn:a', 'x').map(textOf), ['1', '5']);
  assert.equal(textOf(firstChild(root, 'urn:b', 'x') as XmlElement), '2');
  assert.equal(firstChild(root, 'urn:b', 'y'), undefined);
  assert.equal(textOf(root), '1 2 345'); // descendants' text, concatenated as is, trimmed at the ends
});

test('serialize: root namespace is the default, conventional prefixes, then ns1, ns2 in order of appearance', () => {
  const tree: XmlElement = {
    ns: NS.PIDF, name: 'presence', attrs: { entity: 'sip:a@x' }, children: [
      { ns: 'urn:example:zz', name: 'z', attrs: {}, children: [] },
      { ns: NS.DM, name: 'person', attrs: { id: 'p' }, children: [
        { ns: NS.RPID, name: 'activities', attrs: {}, children: [{ ns: NS.RPID, name: 'away', attrs: {}, children: [] }] },
        { ns: NS.CIPID, name: 'card', attrs: {}, children: ['http://x/c'] },
      ] },
      { ns: NS.CAPS, name: 'servcaps', attrs: {}, children: [] },
      { ns: 'urn:example:aa', name: 'a', attrs: { '{urn:example:aa}k': 'v' }, children: [] },
    ],
  };
  assert.equal(
    serializeXml(tree),
    '<?xml version="1.0" encoding="UTF-8"?>' +
    '<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:ns1="urn:example:zz" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"' +
    ' xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"' +
    ' xmlns:caps="urn:ietf:params:xml:ns:pidf:caps" xmlns:ns2="urn:example:aa" entity="sip:a@x">' +
    '<ns1:z/><dm:person id="p"><rpid:activities><rpid:away/></rpid:activities><c:card>http://x/c</c:card></dm:person>' +
    '<caps:servcaps/><ns2:a ns2:k="v"/></presence>',
  );
  // Deterministic.
  assert.equal(serializeXml(tree), serializeXml(structuredClone(tree)));
});

test('serialize: prefixes option overrides; bad or clashing prefixes fall back to generated ones', () => {
  const tree: XmlElement = { ns: 'urn:r', name: 'r', attrs: {}, children: [
    { ns: NS.DM, name: 'a', attrs: {}, children: [] },
    { ns: 'urn:u', name: 'b', attrs: {}, children: [] },
    { ns: 'urn:v', name: 'c', attrs: {}, children: [] },
  ] };
  const out = serializeXml(tree, { declaration: false, prefixes: { [NS.DM]: 'model', 'urn:u': 'model', 'urn:v': 'xmlbad' } });
  assert.equal(out, '<r xmlns="urn:r" xmlns:model="urn:ietf:params:xml:ns:pidf:data-model" xmlns:ns1="urn:u" xmlns:ns2="urn:v">' +
    '<model:a/><ns1:b/><ns2:c/></r>');
});

test('serialize: declaration option, xml:lang, no-namespace children, attribute in the root namespace', () => {
  const tree: XmlElement = { ns: 'urn:r', name: 'r', attrs: { '{urn:r}flag': '1', [XML_LANG]: 'en' }, children: [
    { ns: '', name: 'plain', attrs: {}, children: [{ ns: 'urn:r', name: 'back', attrs: {}, children: [] }] },
  ] };
  const out = serializeXml(tree, { declaration: false });
  assert.ok(!out.startsWith('<?xml'));
  assert.equal(out, '<r xmlns="urn:r" xmlns:ns1="urn:r" ns1:flag="1" xml:lang="en"><plain xmlns=""><ns1:back/></plain></r>');
  assert.deepEqual(parseXml(out), tree);
});

test('serialize escapes text and attributes, drops characters XML cannot carry, and round-trips', () => {
  const tree: XmlElement = { ns: '', name: 'a', attrs: { v: 'q"<&>\t\n\r end' }, children: [
    'a & b < c > d "e" \r\n\x01\x1f\uFFFD\uFFFE\ud800 ok \u{1F600}',
  ] };
  const out = serializeXml(tree, { declaration: false });
  assert.equal(out, '<a v="q&quot;&lt;&amp;&gt;&#9;&#10;&#13; end">a &amp; b &lt; c &gt; d &quot;e&quot; &#13;\n&#xFFFD; ok \u{1F600}</a>');
  const back = parseXml(out);
  assert.equal(back.attrs['v'], 'q"<&>\t\n\r end');
  assert.deepEqual(back.children, ['a & b < c > d "e" \r\n\uFFFD ok \u{1F600}']);
});

test('parse(serialize(parse(x))) is the same tree', () => {
  const src = '<r xmlns="urn:r" xmlns:p="urn:p"><p:x p:a="1" b="&amp;">t<![CDATA[c]]>u</p:x><y xmlns="urn:other"><z/></y><e/></r>';
  const once = parseXml(src);
  const twice = parseXml(serializeXml(once));
  assert.deepEqual(twice, once);
  assert.equal(serializeXml(twice), serializeXml(once));
});

test('serialize refuses names that are not XML names (no markup injection)', () => {
  assert.throws(() => serializeXml({ ns: '', name: 'a><b', attrs: {}, children: [] }), XmlError);
  assert.throws(() => serializeXml({ ns: '', name: 'a', attrs: { 'x="1" y': '2' }, children: [] }), XmlError);
});

test('limits default to 64 KiB, depth 32, 10000 elements', () => {
  assert.deepEqual({ ...DEFAULT_XML_LIMITS }, { maxBytes: 65536, maxDepth: 32, maxElements: 10000 });
});

// ---- hostile input -------------------------------------------------------------------------

test('DOCTYPE is refused, even an innocent one', () => {
  rejects('<!DOCTYPE a><a/>', /DOCTYPE/);
  rejects('<?xml version="1.0"?>\n<!doctype presence SYSTEM "http://evil.test/x.dtd"><presence/>', /DOCTYPE/);
});

test('ENTITY declarations and external entities are refused (XXE)', () => {
  rejects('<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><r>&xxe;</r>', /DOCTYPE|ENTITY/);
  rejects('<r><!ENTITY x "y"></r>', /DOCTYPE|ENTITY/);
  rejects('<r><!ELEMENT r ANY></r>', /declaration/);
});

test('billion laughs is refused at once, without expansion', () => {
  const levels = ['<!ENTITY lol "lol">'];
  for (let i = 1; i <= 9; i++) levels.push(`<!ENTITY lol${i} "${`&lol${i - 1 === 0 ? '' : i - 1};`.repeat(10)}">`);
  const bomb = `<?xml version="1.0"?>\n<!DOCTYPE lolz [\n${levels.join('\n')}\n]>\n<lolz>&lol9;</lolz>`;
  const t0 = performance.now();
  rejects(bomb, /DOCTYPE|ENTITY/);
  assert.ok(performance.now() - t0 < 500);
  // Without the declarations, a reference to an undeclared entity is an error, not text.
  rejects('<lolz>&lol9;</lolz>', /entity/);
  rejects('<a x="&nbsp;"/>', /entity/);
});

test('10,000-deep nesting is refused without exhausting the stack', () => {
  const deep = '<a>'.repeat(10000) + '</a>'.repeat(10000);
  rejects(deep, /too large/); // 70 KB: the size limit already stops it
  const t0 = performance.now();
  rejects(deep, /nested too deeply/, { maxBytes: 1_000_000, maxElements: 1_000_000 });
  rejects('<a>'.repeat(10000), /./, { maxBytes: 1_000_000 });
  assert.ok(performance.now() - t0 < 2000);
  // The limit is exact: depth 32 passes, 33 does not (self-closing innermost element included).
  assert.doesNotThrow(() => parseXml('<a>'.repeat(31) + '<b/>' + '</a>'.repeat(31)));
  rejects('<a>'.repeat(32) + '<b/>' + '</a>'.repeat(32), /nested too deeply/);
  rejects('<a><b><c/></b></a>', /nested too deeply/, { maxDepth: 2 });
});

test('oversize bodies are refused, measured in UTF-8 bytes', () => {
  rejects(`<a>${'x'.repeat(65536)}</a>`, /too large/);
  // 30,000 characters but 90,000 UTF-8 bytes.
  rejects(`<a>${'\u20ac'.repeat(30000)}</a>`, /too large/);
  assert.doesNotThrow(() => parseXml(`<a>${'\u20ac'.repeat(20000)}</a>`));
  rejects('<a>xx</a>', /too large/, { maxBytes: 8 });
});

test('too many elements are refused', () => {
  rejects(`<r>${'<e/>'.repeat(10001)}</r>`, /too many/);
  rejects('<r><e/><e/></r>', /too many/, { maxElements: 2 });
  assert.doesNotThrow(() => parseXml('<r><e/></r>', { maxElements: 2 }));
});

test('bytes that were not UTF-8 (U+FFFD from a non-fatal TextDecoder) are refused', () => {
  const bytes = new Uint8Array([0x3c, 0x61, 0x3e, 0xc3, 0x28, 0xff, 0x3c, 0x2f, 0x61, 0x3e]); // <a>\xC3(\xFF</a>
  const text = new TextDecoder('utf-8', { fatal: false }).decode(bytes);
  rejects(text, /UTF-8/);
  // A character reference to U+FFFD is legitimate text.
  assert.deepEqual(parseXml('<a>&#xFFFD;</a>').children, ['\uFFFD']);
});

test('illegal characters are refused', () => {
  rejects('<a>\u0000</a>', /illegal|invalid/);
  rejects('<a>\u0007</a>', /illegal|invalid/);
  rejects('<a>\ud800</a>', /invalid/);
  rejects('<a>&#1;</a>', /illegal/);
  rejects('<a>&#xD800;</a>', /illegal/);
});

test('unbound prefixes are refused, on elements and on attributes', () => {
  rejects('<p:a/>', /unbound/);
  rejects('<a xmlns:q="urn:q"><p:b/></a>', /unbound/);
  rejects('<a p:x="1"/>', /unbound/);
  // The binding is scoped to the declaring element.
  rejects('<a><b xmlns:p="urn:p"/><p:c/></a>', /unbound/);
});

test('namespace misuse is refused', () => {
  rejects('<a xmlns:p=""/>', /empty namespace/);
  rejects('<a xmlns:xml="urn:x"/>', /xml namespace/);
  rejects('<a xmlns:xmlns="urn:x"/>', /xmlns/);
  rejects('<a:b:c xmlns:a="urn:a"/>', /qualified name/);
  rejects('<a xmlns:p="urn:u" xmlns:q="urn:u" p:x="1" q:x="2"/>', /duplicate attribute/);
});

test('malformed XML is refused', () => {
  rejects('<a><b></a></b>', /mismatched/);
  rejects('<a><b></a>', /mismatched|unclosed/);
  rejects('<a>', /unclosed/);
  rejects('<a></b>', /mismatched/);
  rejects('</a>', /malformed/);
  rejects('', /malformed/);
  rejects('just text', /malformed/);
  rejects('<a/><b/>', /root/);
  rejects('<a/>trailing', /root/);
  rejects('<a></a>trailing', /root/);
  rejects('<a x=1/>', /malformed/);
  rejects('<a x="1"y="2"/>', /malformed/);
  rejects('<a x/>', /malformed/);
  rejects('<a>&amp</a>', /malformed/);
  rejects('<a>x & y</a>', /malformed/);
  rejects('<a x="a & b"/>', /malformed/);
  rejects('<a><![CDATA[x</a>', /malformed/);
  rejects('<1a/>', /malformed/);
});

test('hostile-but-small inputs finish quickly', () => {
  const inputs = [
    '<'.repeat(65000),
    `<a>${'&'.repeat(65000)}</a>`,
    `<a b=${'"\''.repeat(30000)}/>`,
    `<a${' '.repeat(65000)}/>`,
    `<a>${'<!--'.repeat(16000)}</a>`,
    `<a>${'<![CDATA['.repeat(7000)}</a>`,
    `<r>${'<x:y/>'.repeat(10000)}</r>`,
  ];
  for (const text of inputs) {
    const t0 = performance.now();
    try { parseXml(text); } catch (e) { assert.ok(e instanceof XmlError, String(e)); }
    assert.ok(performance.now() - t0 < 1000, `slow on ${text.slice(0, 20)}`);
  }
});

test('toReasonPhrase keeps reason phrases printable ASCII, single-line, <= 100 chars', () => {
  assert.equal(toReasonPhrase('bad\r\nthing\u00e9'), 'bad thing?');
  const long = toReasonPhrase('x'.repeat(500));
  assert.equal(long.length, 100);
  assert.ok(long.endsWith('...'));
  assertReasonSafe(new XmlError(`weird \u0000 ${'\u4e2d'.repeat(300)}`).message);
});
