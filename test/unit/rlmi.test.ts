import { RFC4662_FULL, RFC4662_NESTED } from '../support/rfc4662.js';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XmlError } from '../../src/formats/xml.js';
import { RlmiError, parseRlmi, renderRlmi, type RlmiList } from '../../src/formats/rlmi.js';



// RFC 4662 §5.4, second example: partial state (version 2) after Ed's subscription went pending
// and the nested list at ORG became active.
const RFC4662_PARTIAL = `<?xml version="1.0" encoding="UTF-8"?>
<list xmlns="urn:ietf:params:xml:ns:rlmi"
      uri="sip:adam-friends@pres.vancouver.example.com"
      version="2" fullState="false">
  <name xml:lang="en">Buddy List at COM</name>
  <name xml:lang="de">Liste der Freunde an COM</name>
  <resource uri="sip:ed@dallas.example.net">
    <name>Ed at NET</name>
    <instance id="sdlkmeopdf" state="pending"/>
  </resource>
  <resource uri="sip:adam-friends@stockholm.example.org">
    <name xml:lang="en">My Friends at ORG</name>
    <name xml:lang="de">Meine Freunde an ORG</name>
    <instance id="cmpqweitlp" state="active"
              cid="1KQhyE@pres.vancouver.example.com"/>
  </resource>
</list>
`;



function rejects(xml: string, re: RegExp): RlmiError {
  let caught: unknown;
  try {
    parseRlmi(xml);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof RlmiError, `expected RlmiError, got ${String(caught)}`);
  assert.match(caught.message, re);
  return caught;
}

function renderRejects(list: RlmiList, re: RegExp): void {
  assert.throws(() => renderRlmi(list), (e: unknown) => e instanceof RlmiError && re.test(e.message));
}

/** A minimal document with `inner` as the content of one resource. */
function doc(listAttrs: string, inner = ''): string {
  return `<list xmlns="urn:ietf:params:xml:ns:rlmi" ${listAttrs}><resource uri="sip:a@example.com">${inner}</resource></list>`;
}
const OK_ATTRS = 'uri="sip:l@example.com" version="3" fullState="false"';

const SAMPLE: RlmiList = {
  uri: 'sip:friends@rls.example.com',
  version: 7,
  fullState: false,
  names: [{ lang: 'en', text: 'Friends & family <all>' }, { lang: 'de', text: 'Freunde – Zoë 日本 😀' }],
  resources: [
    {
      uri: 'sip:bob@example.com',
      names: [{ text: 'Bob "the builder"' }],
      instances: [
        { id: 'a1', state: 'active', cid: 'x1@rls.example.com' },
        { id: 'a2', state: 'terminated', reason: 'deactivated' },
      ],
    },
    { uri: 'sip:carol@example.com', names: [], instances: [{ id: 'p', state: 'pending' }] },
    { uri: 'sip:dave@example.com', names: [{ lang: 'fr', text: 'Dave' }], instances: [] },
    { uri: 'sip:sub-list@example.com', names: [], instances: [{ id: 'n', state: 'active', cid: 'nested@rls.example.com' }] },
  ],
};

test('render then parse gives the same list back', () => {
  const xml = renderRlmi(SAMPLE);
  assert.deepEqual(parseRlmi(xml), SAMPLE);
  assert.ok(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><list xmlns="urn:ietf:params:xml:ns:rlmi"'));
  assert.match(xml, /uri="sip:friends@rls.example.com" version="7" fullState="false"/);
  assert.match(xml, /<name xml:lang="en">Friends &amp; family &lt;all&gt;<\/name>/);
  assert.match(xml, /<instance id="a2" state="terminated" reason="deactivated"\/>/);
  // A resource of unknown state has no instance element at all (§5.2).
  assert.match(xml, /<resource uri="sip:dave@example.com"><name xml:lang="fr">Dave<\/name><\/resource>/);
});

test('values that XML must escape survive the string writer: quotes, markup, CR, tabs, newlines in attributes', () => {
  const awkward: RlmiList = {
    uri: 'sip:a"b&c<d>@example.com',
    version: 3,
    fullState: true,
    names: [{ lang: 'x"y', text: 'one\ttwo\nthree & <four>' }, { text: '' }],
    resources: [
      { uri: "sip:o'neil@example.com", names: [{ text: 'CR\rhere' }], instances: [{ id: 'i"1', state: 'terminated', reason: 'no\tresource' }] },
      { uri: 'sip:e@example.com', names: [], instances: [{ id: 'x', state: 'active', cid: 'c&1@example.com' }] },
    ],
  };
  const back = parseRlmi(renderRlmi(awkward));
  assert.equal(back.uri, awkward.uri);
  assert.deepEqual(back.names, [{ lang: 'x"y', text: 'one\ttwo\nthree & <four>' }, { text: '' }]);
  assert.equal(back.resources[0]?.uri, "sip:o'neil@example.com");
  assert.equal(back.resources[0]?.names[0]?.text, 'CR\rhere');
  assert.deepEqual(back.resources[0]?.instances, [{ id: 'i"1', state: 'terminated', reason: 'no\tresource' }]);
  assert.deepEqual(back.resources[1]?.instances, [{ id: 'x', state: 'active', cid: 'c&1@example.com' }]);
});

test('a nested list carries its own cid attribute', () => {
  const nested: RlmiList = { ...SAMPLE, cid: 'self@rls.example.com' };
  const xml = renderRlmi(nested);
  assert.match(xml, /fullState="false" cid="self@rls.example.com"/);
  assert.equal(parseRlmi(xml).cid, 'self@rls.example.com');
  assert.equal(parseRlmi(renderRlmi(SAMPLE)).cid, undefined);
});

test('version 0 with full state: the first NOTIFY of a subscription (RFC 4662 §5.2)', () => {
  const first: RlmiList = { uri: 'sip:l@example.com', version: 0, fullState: true, names: [], resources: [] };
  const xml = renderRlmi(first);
  assert.match(xml, /version="0" fullState="true"/);
  const back = parseRlmi(xml);
  assert.equal(back.version, 0);
  assert.equal(back.fullState, true);
  assert.deepEqual(back.resources, []);
});

test('RFC 4662 §5.4 full-state example parses', () => {
  const l = parseRlmi(RFC4662_FULL);
  assert.equal(l.uri, 'sip:adam-friends@pres.vancouver.example.com');
  assert.equal(l.version, 1);
  assert.equal(l.fullState, true);
  assert.deepEqual(l.names, [{ lang: 'en', text: 'Buddy List at COM' }, { lang: 'de', text: 'Liste der Freunde an COM' }]);
  assert.deepEqual(l.resources.map((r) => r.uri), [
    'sip:bob@vancouver.example.com', 'sip:dave@vancouver.example.com',
    'sip:ed@dallas.example.net', 'sip:adam-friends@stockholm.example.org',
  ]);
  assert.deepEqual(l.resources[0]?.names, [{ text: 'Bob Smith' }]);
  assert.deepEqual(l.resources[0]?.instances, [{ id: 'juwigmtboe', state: 'active', cid: 'bUZBsM@pres.vancouver.example.com' }]);
  assert.deepEqual(l.resources[1]?.instances, [{ id: 'hqzsuxtfyq', state: 'active', cid: 'ZvSvkz@pres.vancouver.example.com' }]);
  assert.deepEqual(l.resources[2]?.instances, []); // state unknown
  assert.deepEqual(l.resources[3]?.names, [{ lang: 'en', text: 'My Friends at ORG' }, { lang: 'de', text: 'Meine Freunde an ORG' }]);
});

test('RFC 4662 §5.4 partial-state example and its nested list parse', () => {
  const p = parseRlmi(RFC4662_PARTIAL);
  assert.equal(p.version, 2);
  assert.equal(p.fullState, false);
  assert.deepEqual(p.resources[0]?.instances, [{ id: 'sdlkmeopdf', state: 'pending' }]);
  assert.deepEqual(p.resources[1]?.instances, [{ id: 'cmpqweitlp', state: 'active', cid: '1KQhyE@pres.vancouver.example.com' }]);

  const n = parseRlmi(RFC4662_NESTED);
  assert.equal(n.uri, 'sip:adam-friends@stockholm.example.org');
  assert.deepEqual(n.resources.map((r) => r.instances[0]?.id), ['1', '1']);
});

test('the parse of a rendered RFC example is stable', () => {
  const l = parseRlmi(RFC4662_FULL);
  assert.deepEqual(parseRlmi(renderRlmi(l)), l);
});

test('each MUST of RFC 4662 §5.2–5.3 is enforced on parse', () => {
  rejects(doc('uri="sip:l@example.com" fullState="true"'), /without version/);
  rejects(doc('uri="sip:l@example.com" version="-1" fullState="true"'), /non-negative integer/);
  rejects(doc('uri="sip:l@example.com" version="1.5" fullState="true"'), /non-negative integer/);
  rejects(doc('uri="sip:l@example.com" version="abc" fullState="true"'), /non-negative integer/);
  rejects(doc('uri="sip:l@example.com" version="" fullState="true"'), /non-negative integer/);
  rejects(doc('uri="sip:l@example.com" version="4294967296" fullState="true"'), /out of range/);
  rejects(doc('uri="sip:l@example.com" version="1"'), /without fullState/);
  rejects(doc('uri="sip:l@example.com" version="1" fullState="yes"'), /fullState must be/);
  rejects(doc('uri="sip:l@example.com" version="1" fullState="TRUE"'), /fullState must be/);
  rejects(doc('version="1" fullState="true"'), /list without uri/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="active" cid="c1@h"/><instance id="x" state="pending"/>'), /duplicate instance id/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="waiting"/>'), /state must be/);
  rejects(doc(OK_ATTRS, '<instance id="x"/>'), /state must be/);
  rejects(doc(OK_ATTRS, '<instance state="pending"/>'), /instance without id/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="terminated"/>'), /terminated instance needs a reason/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="terminated" reason=" "/>'), /terminated instance needs a reason/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="active"/>'), /active instance needs a cid/);
  rejects(doc(OK_ATTRS, '<instance id="x" state="active" cid=""/>'), /active instance needs a cid/);
  rejects(`<list xmlns="urn:ietf:params:xml:ns:rlmi" ${OK_ATTRS}><resource/></list>`, /resource without uri/);
  rejects(`<list xmlns="urn:ietf:params:xml:ns:rmli" ${OK_ATTRS}/>`, /root element/); // the old draft's typo
  rejects(`<lists xmlns="urn:ietf:params:xml:ns:rlmi" ${OK_ATTRS}/>`, /root element/);
});

test('XML failures become RlmiError with the XmlError as cause', () => {
  const e = rejects('<list xmlns="urn:ietf:params:xml:ns:rlmi" uri="x"', /^Bad RLMI: /);
  assert.ok(e.cause instanceof XmlError);
  rejects('<!DOCTYPE list [<!ENTITY a "b">]><list/>', /DOCTYPE/);
});

test('harmless deviations of deployed servers are accepted', () => {
  // xs:boolean also allows 1/0; xs:unsignedInt allows '+' and surrounding whitespace.
  const l = parseRlmi(doc('uri="sip:l@example.com" version=" +3 " fullState="1"',
    '<instance id="t" state="terminated" reason="noresource" cid="tel:+1555"/>' +
    '<instance id="p" state="pending" reason="subscribe"/>' +
    '<x:extra xmlns:x="urn:example:x">ignored</x:extra>'));
  assert.equal(l.version, 3);
  assert.equal(l.fullState, true);
  assert.deepEqual(l.resources[0]?.instances, [
    { id: 't', state: 'terminated', reason: 'noresource', cid: 'tel:+1555' },
    { id: 'p', state: 'pending', reason: 'subscribe' },
  ]);
  assert.equal(parseRlmi(doc('uri="sip:l@example.com" version="0" fullState="0"')).fullState, false);
});

test('the renderer refuses to write a document that breaks a MUST', () => {
  const base: RlmiList = { uri: 'sip:l@example.com', version: 1, fullState: true, names: [], resources: [] };
  const withInstances = (instances: RlmiList['resources'][number]['instances']): RlmiList =>
    ({ ...base, resources: [{ uri: 'sip:a@example.com', names: [], instances }] });
  renderRejects({ ...base, version: -1 }, /version/);
  renderRejects({ ...base, version: 1.5 }, /version/);
  renderRejects({ ...base, version: Number.NaN }, /version/);
  renderRejects({ ...base, version: 2 ** 32 }, /version/);
  renderRejects({ ...base, uri: '' }, /list without uri/);
  renderRejects(withInstances([{ id: 'a', state: 'active' }]), /needs a cid/);
  renderRejects(withInstances([{ id: 'a', state: 'terminated' }]), /needs a reason/);
  renderRejects(withInstances([{ id: 'a', state: 'pending' }, { id: 'a', state: 'pending' }]), /duplicate instance id/);
  renderRejects(withInstances([{ id: '', state: 'pending' }]), /without id/);
  renderRejects(withInstances([{ id: 'a', state: 'pending', cid: 'c@h' }]), /only an active instance/);
  renderRejects(withInstances([{ id: 'a', state: 'bogus' as 'active', cid: 'c@h' }]), /state must be/);
  renderRejects({ ...base, resources: [{ uri: '', names: [], instances: [] }] }, /resource without uri/);
  // The same id in two different resources is fine (§5.2: unique within the resource).
  const two: RlmiList = {
    ...base,
    resources: [
      { uri: 'sip:a@example.com', names: [], instances: [{ id: '1', state: 'pending' }] },
      { uri: 'sip:b@example.com', names: [], instances: [{ id: '1', state: 'pending' }] },
    ],
  };
  assert.deepEqual(parseRlmi(renderRlmi(two)), two);
});
