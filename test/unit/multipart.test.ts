import { RFC4662_FULL, RFC4662_NESTED } from '../support/rfc4662.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  MultipartError, newBoundary, newContentId, parseMultipart, renderMultipart, rootPart, type Multipart,
} from '../../src/formats/multipart.js';
import { mediaType } from '../../src/formats/content-types.js';
import { parseRlmi } from '../../src/formats/rlmi.js';
import { parsePidf } from '../../src/formats/pidf.js';

const CRLF = (s: string): string => s.replace(/\r?\n/g, '\r\n');

// RFC 4662 §5.4: the full-state NOTIFY (headers Content-Type and body). The stray quote the RFC
// prints after Bob's URI is removed.
const RFC_CT = 'multipart/related;type="application/rlmi+xml";\r\n    start="<nXYxAE@pres.vancouver.example.com>";boundary="50UBfW7LSCVLtggUPe5z"';
const RFC_BODY = CRLF(`--50UBfW7LSCVLtggUPe5z
Content-Transfer-Encoding: binary
Content-ID: <nXYxAE@pres.vancouver.example.com>
Content-Type: application/rlmi+xml;charset="UTF-8"

${RFC4662_FULL}
--50UBfW7LSCVLtggUPe5z
Content-Transfer-Encoding: binary
Content-ID: <bUZBsM@pres.vancouver.example.com>
Content-Type: application/pidf+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    entity="sip:bob@vancouver.example.com">
  <tuple id="sg89ae">
    <status>
      <basic>open</basic>
    </status>
    <contact priority="1.0">sip:bob@vancouver.example.com</contact>
  </tuple>
</presence>

--50UBfW7LSCVLtggUPe5z
Content-Transfer-Encoding: binary
Content-ID: <ZvSvkz@pres.vancouver.example.com>
Content-Type: application/pidf+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    entity="sip:dave@vancouver.example.com">
  <tuple id="slie74">
    <status>
      <basic>closed</basic>
    </status>
  </tuple>
</presence>

--50UBfW7LSCVLtggUPe5z--
`);

// RFC 4662 §5.4's partial-state NOTIFY: the nested list from another domain arrives as a
// multipart/signed part (with a folded Content-Type) wrapping a multipart/related.
const NESTED_CT = 'multipart/related;type="application/rlmi+xml";start="<2BEI83@pres.vancouver.example.com>";boundary="TfZxoxgAvLqgj4wRWPDL"';
const NESTED_BODY = CRLF(`--TfZxoxgAvLqgj4wRWPDL
Content-Transfer-Encoding: binary
Content-ID: <2BEI83@pres.vancouver.example.com>
Content-Type: application/rlmi+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi"
      uri="sip:adam-friends@pres.vancouver.example.com" version="2" fullState="false">
  <resource uri="sip:ed@dallas.example.net">
    <name>Ed at NET</name>
    <instance id="sdlkmeopdf" state="pending"/>
  </resource>
  <resource uri="sip:adam-friends@stockholm.example.org">
    <name>My Friends at ORG</name>
    <instance id="cmpqweitlp" state="active" cid="1KQhyE@pres.vancouver.example.com"/>
  </resource>
</list>

--TfZxoxgAvLqgj4wRWPDL
Content-Transfer-Encoding: binary
Content-ID: <1KQhyE@pres.vancouver.example.com>
Content-Type: multipart/signed;
    protocol="application/pkcs7-signature";
    micalg=sha1;boundary="l3WMZaaL8NpQWGnQ4mlU"

--l3WMZaaL8NpQWGnQ4mlU
Content-Transfer-Encoding: binary
Content-ID: <ZPvJHL@stockholm.example.org>
Content-Type: multipart/related;type="application/rlmi+xml";
    start="<Cvjpeo@stockholm.example.org>";boundary="tuLLl3lDyPZX0GMr2YOo"

--tuLLl3lDyPZX0GMr2YOo
Content-Transfer-Encoding: binary
Content-ID: <Cvjpeo@stockholm.example.org>
Content-Type: application/rlmi+xml;charset="UTF-8"

${RFC4662_NESTED}

--tuLLl3lDyPZX0GMr2YOo
Content-Transfer-Encoding: binary
Content-ID: <mrEakg@stockholm.example.org>
Content-Type: application/pidf+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:joe@stockholm.example.org">
  <tuple id="7823a4"><status><basic>open</basic></status></tuple>
</presence>

--tuLLl3lDyPZX0GMr2YOo
Content-Transfer-Encoding: binary
Content-ID: <KKMDmv@stockholm.example.org>
Content-Type: application/pidf+xml;charset="UTF-8"

<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:mark@stockholm.example.org">
  <tuple id="398075"><status><basic>closed</basic></status></tuple>
</presence>

--tuLLl3lDyPZX0GMr2YOo--

--l3WMZaaL8NpQWGnQ4mlU
Content-Transfer-Encoding: binary
Content-ID: <K9LB7k@stockholm.example.org>
Content-Type: application/pkcs7-signature

[PKCS #7 signature here]

--l3WMZaaL8NpQWGnQ4mlU--

--TfZxoxgAvLqgj4wRWPDL--
`);

function fails(ct: string, body: string, re: RegExp, limits?: { maxParts: number; maxBytes: number }): void {
  assert.throws(() => parseMultipart(ct, body, limits), (e: unknown) => e instanceof MultipartError && re.test(e.message));
}

const RLMI_XML = '<?xml version="1.0" encoding="UTF-8"?><list xmlns="urn:ietf:params:xml:ns:rlmi" uri="sip:l@example.com" version="0" fullState="true"/>';

const THREE: Multipart = {
  type: 'application/rlmi+xml',
  start: 'root1@rls.example.com',
  boundary: 'b0UND4ry',
  parts: [
    { contentType: 'application/rlmi+xml;charset="UTF-8"', contentId: 'root1@rls.example.com', body: RLMI_XML },
    {
      contentType: 'application/pidf+xml;charset="UTF-8"',
      contentId: 'p2@rls.example.com',
      body: '<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:zoë@example.com"><note>Zoë – 日本語 😀</note></presence>',
    },
    {
      contentType: 'text/plain;charset=utf-8',
      contentId: 'p3@rls.example.com',
      headers: [['Content-Description', 'a note with ümlauts']],
      body: 'line one\r\nline two ✓\r\n',
    },
  ],
};

test('render then parse round-trips three parts, UTF-8 included', () => {
  const { contentType, body } = renderMultipart(THREE);
  assert.equal(contentType, 'multipart/related;type="application/rlmi+xml";start="<root1@rls.example.com>";boundary=b0UND4ry');
  assert.deepEqual(parseMultipart(contentType, body), THREE);
});

test('rendered body layout: binary transfer encoding, Content-ID, CRLF everywhere, close delimiter', () => {
  const { body } = renderMultipart(THREE);
  assert.ok(body.startsWith('--b0UND4ry\r\nContent-Transfer-Encoding: binary\r\nContent-ID: <root1@rls.example.com>\r\n' +
    'Content-Type: application/rlmi+xml;charset="UTF-8"\r\n\r\n<?xml'));
  assert.ok(body.includes('fullState="true"/>\r\n--b0UND4ry\r\n'));
  assert.ok(body.includes('Content-Description: a note with ümlauts\r\n\r\nline one'));
  assert.ok(body.endsWith('line two ✓\r\n\r\n--b0UND4ry--\r\n'));
  assert.equal(/(?<!\r)\n/.test(body), false, 'no bare LF');
  assert.equal(body.split('--b0UND4ry\r\n').length - 1, 3);
});

test('a token boundary goes unquoted (belle-sip compares the quotes too), any other one quoted; both parse', () => {
  const token = renderMultipart({ ...THREE, boundary: 'Ab0-9.x' });
  assert.match(token.contentType, /;boundary=Ab0-9\.x$/);
  const spaced = renderMultipart({ ...THREE, boundary: 'a b:c' });
  assert.match(spaced.contentType, /;boundary="a b:c"$/);
  for (const r of [token, spaced]) assert.deepEqual(parseMultipart(r.contentType, r.body).parts, THREE.parts);
});

test('contentIdStyle "bare" writes Content-Id without brackets (Linphone); the parser reads it back', () => {
  const { contentType, body } = renderMultipart({ ...THREE, contentIdStyle: 'bare' });
  assert.ok(body.includes('\r\nContent-Id: root1@rls.example.com\r\n'));
  assert.ok(!body.includes('<root1@'));
  assert.match(contentType, /start="<root1@rls\.example\.com>"/, 'the start parameter keeps its brackets');
  assert.deepEqual(parseMultipart(contentType, body).parts, THREE.parts);
});

test('without start the first part is the root and no start parameter is written', () => {
  const m: Multipart = { type: 'application/rlmi+xml', boundary: 'xyz', parts: [{ contentType: 'application/rlmi+xml', body: RLMI_XML }] };
  const r = renderMultipart(m);
  assert.equal(r.contentType, 'multipart/related;type="application/rlmi+xml";boundary=xyz');
  const back = parseMultipart(r.contentType, r.body);
  assert.equal(back.start, undefined);
  assert.equal(rootPart(back), back.parts[0]);
  assert.deepEqual(back, m);
});

test('the RFC 4662 §5.4 NOTIFY body parses, and every active cid names a part', () => {
  const m = parseMultipart(RFC_CT, RFC_BODY);
  assert.equal(m.type, 'application/rlmi+xml');
  assert.equal(m.start, 'nXYxAE@pres.vancouver.example.com');
  assert.equal(m.boundary, '50UBfW7LSCVLtggUPe5z');
  assert.equal(m.parts.length, 3);
  assert.deepEqual(m.parts.map((p) => p.contentId), [
    'nXYxAE@pres.vancouver.example.com', 'bUZBsM@pres.vancouver.example.com', 'ZvSvkz@pres.vancouver.example.com',
  ]);
  // Content-Transfer-Encoding is consumed; no other headers remain.
  assert.ok(m.parts.every((p) => p.headers === undefined));
  const root = rootPart(m);
  assert.ok(root !== undefined);
  assert.equal(mediaType(root.contentType), 'application/rlmi+xml');
  const rlmi = parseRlmi(root.body);
  const byCid = new Map(m.parts.map((p) => [p.contentId, p]));
  const active = rlmi.resources.flatMap((r) => r.instances.map((i) => ({ uri: r.uri, cid: i.cid })));
  assert.equal(active.length, 2);
  for (const { uri, cid } of active) {
    const part = byCid.get(cid);
    assert.ok(part !== undefined, `no part for ${cid}`);
    assert.equal(parsePidf(part.body).entity, uri);
  }
  // The line break before each delimiter belongs to the delimiter.
  assert.ok(m.parts[1]?.body.startsWith('<?xml'));
  assert.ok(m.parts[1]?.body.endsWith('</presence>\r\n'));
});

test('the nested example parses level by level (multipart/signed wrapping multipart/related)', () => {
  const outer = parseMultipart(NESTED_CT, NESTED_BODY);
  assert.equal(outer.parts.length, 2);
  const signed = outer.parts.find((p) => p.contentId === '1KQhyE@pres.vancouver.example.com');
  assert.ok(signed !== undefined);
  assert.equal(mediaType(signed.contentType), 'multipart/signed');
  assert.match(signed.contentType, /protocol="application\/pkcs7-signature"; micalg=sha1;boundary="l3WMZaaL8NpQWGnQ4mlU"$/);
  const inner = parseMultipart(signed.contentType, signed.body);
  assert.equal(inner.parts.length, 2);
  assert.equal(inner.type, 'multipart/related'); // no type parameter: taken from the first part
  const related = inner.parts[0];
  assert.ok(related !== undefined);
  const nested = parseMultipart(related.contentType, related.body);
  assert.equal(nested.start, 'Cvjpeo@stockholm.example.org');
  assert.equal(nested.parts.length, 3);
  const nestedRoot = rootPart(nested);
  assert.ok(nestedRoot !== undefined);
  const rl = parseRlmi(nestedRoot.body);
  assert.equal(rl.uri, 'sip:adam-friends@stockholm.example.org');
  assert.deepEqual(rl.resources.map((r) => r.instances[0]?.cid), ['mrEakg@stockholm.example.org', 'KKMDmv@stockholm.example.org']);
  assert.equal(inner.parts[1]?.body, '[PKCS #7 signature here]\r\n');
});

test('rendered nested multipart parts round-trip', () => {
  const innerR = renderMultipart({
    type: 'application/rlmi+xml', start: 'in@x.example', boundary: newBoundary(),
    parts: [{ contentType: 'application/rlmi+xml', contentId: 'in@x.example', body: RLMI_XML }, { contentType: 'application/pidf+xml', contentId: 'q@x.example', body: '<p/>' }],
  });
  const outerR = renderMultipart({
    type: 'application/rlmi+xml', start: 'out@x.example', boundary: newBoundary(),
    parts: [
      { contentType: 'application/rlmi+xml', contentId: 'out@x.example', body: RLMI_XML },
      { contentType: innerR.contentType, contentId: 'nest@x.example', body: innerR.body },
    ],
  });
  const outer = parseMultipart(outerR.contentType, outerR.body);
  const nestPart = outer.parts[1];
  assert.ok(nestPart !== undefined);
  assert.equal(nestPart.contentType, innerR.contentType);
  assert.equal(nestPart.body, innerR.body);
  const inner = parseMultipart(nestPart.contentType, nestPart.body);
  assert.deepEqual(inner.parts.map((p) => p.body), [RLMI_XML, '<p/>']);
});

test('boundary and other parameters quoted or not', () => {
  const body = '--simple\r\nContent-Type: application/rlmi+xml\r\n\r\nX\r\n--simple--\r\n';
  for (const ct of [
    'multipart/related;type="application/rlmi+xml";boundary=simple',
    'multipart/related; type="application/rlmi+xml"; boundary="simple"',
    'Multipart/Related;Boundary=simple;TYPE=application/rlmi+xml', // bare '/' as some stacks send it
    'multipart/related;boundary="simple";type="application/rlmi+xml";', // trailing ';'
    'multipart/related;\r\n\tboundary="simple";type="application/rlmi+xml"', // folded
  ]) {
    const m = parseMultipart(ct, body);
    assert.equal(m.boundary, 'simple', ct);
    assert.equal(m.type, 'application/rlmi+xml', ct);
    assert.equal(m.parts[0]?.body, 'X', ct);
  }
  // Quoted boundaries may hold characters a token may not (here '=' and a space).
  const odd = '----=_Part_9038 2896';
  const m = parseMultipart(`multipart/related;type="application/rlmi+xml";boundary="${odd}"`,
    `--${odd}\r\nContent-Type: application/rlmi+xml\r\n\r\nY\r\n--${odd}--`);
  assert.equal(m.parts[0]?.body, 'Y');
  // A quoted-pair inside a quoted string.
  assert.equal(parseMultipart('multipart/related;boundary="a\\"b"', '--a"b\r\n\r\nZ\r\n--a"b--').parts[0]?.body, 'Z');
});

test('the start parameter selects the root, quoted or bare, and must name a part', () => {
  const body = CRLF(`--B
Content-ID: <first@h>
Content-Type: application/pidf+xml

<p/>
--B
Content-ID: <root@h>
Content-Type: application/rlmi+xml

${RLMI_XML}
--B--
`);
  for (const start of ['"<root@h>"', '<root@h>', 'root@h']) {
    const m = parseMultipart(`multipart/related;type="application/rlmi+xml";start=${start};boundary=B`, body);
    assert.equal(m.start, 'root@h');
    assert.equal(rootPart(m)?.contentId, 'root@h');
  }
  fails('multipart/related;type="application/rlmi+xml";start="<nope@h>";boundary=B', body, /start parameter names no part/);
  // Without a type parameter, the root's media type stands in for it.
  assert.equal(parseMultipart('multipart/related;start="<root@h>";boundary=B', body).type, 'application/rlmi+xml');
  assert.equal(parseMultipart('multipart/related;boundary=B', body).type, 'application/pidf+xml');
});

test('bare LF line ends parse like CRLF', () => {
  const lf = RFC_BODY.replace(/\r\n/g, '\n');
  const m = parseMultipart(RFC_CT, lf);
  const crlf = parseMultipart(RFC_CT, RFC_BODY);
  assert.equal(m.parts.length, 3);
  assert.deepEqual(m.parts.map((p) => p.contentId), crlf.parts.map((p) => p.contentId));
  assert.deepEqual(m.parts.map((p) => p.body), crlf.parts.map((p) => p.body.replace(/\r\n/g, '\n')));
  assert.equal(parseRlmi(m.parts[0]?.body ?? '').resources.length, 4);
});

test('preamble, epilogue, transport padding and near-miss lines', () => {
  const body = CRLF(`This is a preamble. --B in the middle of a line is not a delimiter.
--Bnot-a-delimiter either
--B  \t
Content-Type: text/plain

one
this line merely ends in --B
--B-- is not a close delimiter when text follows, nor --B here
--Bx
--B
Content-Type: text/plain

two
--B--   
epilogue: --B
--B--
`);
  const m = parseMultipart('multipart/mixed;boundary=B', body);
  assert.deepEqual(m.parts.map((p) => p.body), [
    'one\r\nthis line merely ends in --B\r\n--B-- is not a close delimiter when text follows, nor --B here\r\n--Bx',
    'two',
  ]);
  assert.equal(m.type, 'text/plain');
});

test('part header leniency: no Content-Type, folded headers, missing blank line', () => {
  const body = CRLF(`--B

no headers at all
--B
Content-Type: application/pidf+xml;
  charset="UTF-8"
Content-ID:
  <folded@h>
X-Custom : value

<p/>
--B
Content-Type: application/rlmi+xml;charset="UTF-8"
<?xml version="1.0"?><list/>
--B
--B--`);
  const m = parseMultipart('multipart/mixed;boundary=B', body);
  assert.equal(m.parts.length, 4);
  assert.deepEqual(m.parts[0], { contentType: 'text/plain', body: 'no headers at all' });
  assert.deepEqual(m.parts[1], {
    contentType: 'application/pidf+xml; charset="UTF-8"', contentId: 'folded@h', headers: [['X-Custom', 'value']], body: '<p/>',
  });
  assert.deepEqual(m.parts[2], { contentType: 'application/rlmi+xml;charset="UTF-8"', body: '<?xml version="1.0"?><list/>' });
  assert.deepEqual(m.parts[3], { contentType: 'text/plain', body: '' });
});

test('base64 and quoted-printable parts are decoded; unknown encodings refused', () => {
  const b64 = Buffer.from('<p>Zoë 😀</p>', 'utf8').toString('base64');
  const body = CRLF(`--B
Content-Type: application/pidf+xml
Content-Transfer-Encoding: BASE64

${b64.slice(0, 8)}
${b64.slice(8)}
--B
Content-Type: text/plain
Content-Transfer-Encoding: quoted-printable

caf=C3=A9 soft=
break =3D done
--B--`);
  const m = parseMultipart('multipart/mixed;boundary=B', body);
  assert.equal(m.parts[0]?.body, '<p>Zoë 😀</p>');
  assert.equal(m.parts[1]?.body, 'café softbreak = done');
  fails('multipart/mixed;boundary=B', '--B\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nx\r\n--B--', /unsupported Content-Transfer-Encoding/);
  fails('multipart/mixed;boundary=B', '--B\r\nContent-Transfer-Encoding: base64\r\n\r\n!!notbase64\r\n--B--', /invalid base64/);
});

test('malformed bodies are MultipartErrors', () => {
  const ct = 'multipart/related;type="application/rlmi+xml";boundary=B';
  fails(ct, '--B\r\nContent-Type: text/plain\r\n\r\nno end\r\n--B\r\n\r\nstill no end\r\n', /missing close delimiter/);
  fails(ct, '--B\r\nContent-Type: text/plain\r\n\r\nno end', /missing close delimiter/);
  fails(ct, 'no delimiter at all', /no boundary delimiter/);
  fails(ct, '', /no boundary delimiter/);
  fails(ct, '--B--\r\n', /no body parts/);
  fails('application/rlmi+xml', '--B\r\n\r\nx\r\n--B--', /not multipart/);
  fails('multipart/related', '--B\r\n\r\nx\r\n--B--', /boundary/);
  fails('multipart/related;boundary=""', '--\r\n\r\nx\r\n----', /boundary/);
  fails(`multipart/related;boundary=${'a'.repeat(71)}`, 'x', /boundary/);
  fails('multipart/related;boundary=B;boundary=C', '--B\r\n\r\nx\r\n--B--', /duplicate boundary/);
  fails('multipart/related;boundary="B', '--B\r\n\r\nx\r\n--B--', /unterminated/);
  fails('multipart/related;boundary', '--B\r\n\r\nx\r\n--B--', /parameter/);
  fails(ct, '--B\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\nx\r\n--B--', /duplicate Content-Type/);
  fails(ct, '--B\r\nContent-Type: nonsense\r\n\r\nx\r\n--B--', /invalid Content-Type/);
});

test('too many parts and oversize bodies are refused', () => {
  const ct = 'multipart/mixed;boundary=B';
  const parts = (n: number): string => `${'--B\r\n\r\nx\r\n'.repeat(n)}--B--\r\n`;
  assert.equal(parseMultipart(ct, parts(3), { maxParts: 3, maxBytes: 1000 }).parts.length, 3);
  fails(ct, parts(4), /too many body parts/, { maxParts: 3, maxBytes: 1000 });
  fails(ct, parts(1001), /too many body parts/); // default limit 1000
  const big = `--B\r\n\r\n${'x'.repeat(100)}\r\n--B--`;
  fails(ct, big, /too large/, { maxParts: 10, maxBytes: 50 });
  // The limit counts UTF-8 bytes, not UTF-16 units: 20 characters, 60 bytes.
  const wide = `--B\r\n\r\n${'日'.repeat(20)}\r\n--B--`;
  assert.ok(wide.length < 50);
  fails(ct, wide, /too large/, { maxParts: 10, maxBytes: 50 });
});

test('hostile bodies fail fast, never hang', () => {
  const t0 = Date.now();
  // A megabyte of near-miss delimiters.
  fails('multipart/mixed;boundary=bb', '\n--bbb'.repeat(200000), /no boundary delimiter/);
  // A megabyte of one-character candidate matches inside a single line.
  fails('multipart/mixed;boundary=a', '--a'.repeat(350000), /no boundary delimiter|missing close/);
  // Hundreds of thousands of tiny parts stop at the part limit.
  fails('multipart/mixed;boundary=B', '--B\n'.repeat(300000), /too many body parts/);
  // A huge header area.
  fails('multipart/mixed;boundary=B', `--B\r\n${'X-A: b\r\n'.repeat(100000)}`, /missing close delimiter/);
  assert.ok(Date.now() - t0 < 3000, `took ${Date.now() - t0} ms`);
});

test('a boundary that occurs in a part is replaced by a fresh one', () => {
  const m: Multipart = {
    type: 'application/rlmi+xml', boundary: 'clash',
    parts: [{ contentType: 'application/rlmi+xml', body: `${RLMI_XML}<!-- clash -->` }, { contentType: 'text/plain', body: '--clash--' }],
  };
  const r = renderMultipart(m);
  const back = parseMultipart(r.contentType, r.body);
  assert.notEqual(back.boundary, 'clash');
  assert.match(r.contentType, new RegExp(`boundary=${back.boundary}$`));
  assert.deepEqual(back.parts.map((p) => p.body), m.parts.map((p) => p.body));
});

test('the renderer refuses malformed descriptions', () => {
  const part = { contentType: 'application/rlmi+xml', contentId: 'r@h', body: RLMI_XML };
  const base: Multipart = { type: 'application/rlmi+xml', start: 'r@h', boundary: 'B', parts: [part] };
  const refuses = (m: Multipart, re: RegExp): void => {
    assert.throws(() => renderMultipart(m), (e: unknown) => e instanceof MultipartError && re.test(e.message));
  };
  refuses({ ...base, parts: [] }, /at least one part/);
  refuses({ ...base, start: 'other@h' }, /start names no part/);
  refuses({ ...base, type: 'application/pidf+xml' }, /root part must have the media type/);
  refuses({ ...base, type: 'nonsense' }, /invalid root type/);
  refuses({ ...base, parts: [part, { ...part }] }, /duplicate Content-ID/);
  refuses({ ...base, parts: [{ ...part, contentType: 'application/rlmi+xml\r\nX-Injected: 1' }] }, /invalid Content-Type/);
  refuses({ ...base, parts: [{ ...part, headers: [['X-Ok', 'a\r\nX-Injected: 1']] }] }, /invalid header/);
  refuses({ ...base, parts: [{ ...part, headers: [['Bad Name', 'v']] }] }, /invalid header/);
  refuses({ ...base, parts: [{ ...part, headers: [['content-id', '<x@y>']] }] }, /set by the renderer/);
  refuses({ ...base, parts: [{ ...part, contentId: '<r@h>' }], start: '<r@h>' }, /invalid Content-ID/);
  refuses({ ...base, boundary: 'a'.repeat(71) }, /invalid boundary/);
  refuses({ ...base, boundary: 'has"quote' }, /invalid boundary/);
  refuses({ ...base, boundary: 'ends with space ' }, /invalid boundary/);
  refuses({ ...base, boundary: '' }, /invalid boundary/);
});

test('newBoundary: 24 safe random characters, accepted by the renderer', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const b = newBoundary();
    assert.match(b, /^[A-Za-z0-9]{24}$/);
    seen.add(b);
  }
  assert.equal(seen.size, 200);
  const b = newBoundary();
  const r = renderMultipart({ type: 'text/plain', boundary: b, parts: [{ contentType: 'text/plain', body: 'x' }] });
  assert.equal(parseMultipart(r.contentType, r.body).boundary, b);
});

test('newContentId: random@domain, usable as Content-ID and start', () => {
  const a = newContentId('RLS.Example.COM');
  assert.match(a, /^[A-Za-z0-9]{12}@rls\.example\.com$/);
  assert.notEqual(newContentId('rls.example.com'), newContentId('rls.example.com'));
  assert.match(newContentId('192.0.2.1'), /@192\.0\.2\.1$/);
  assert.match(newContentId('[2001:db8::1]'), /@\[2001:db8::1\]$/);
  for (const bad of ['', 'bad domain', 'a@b', 'x>y', '-lead.example.com', 'host:5060']) {
    assert.throws(() => newContentId(bad), MultipartError, bad);
  }
  const r = renderMultipart({ type: 'text/plain', start: a, boundary: 'B', parts: [{ contentType: 'text/plain', contentId: a, body: 'x' }] });
  assert.equal(parseMultipart(r.contentType, r.body).start, a);
});
