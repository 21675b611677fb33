import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NS, childElements, firstChild, textOf, type XmlElement } from '../../src/formats/xml.js';
import { parsePidf, serializePidf, type PidfDocument } from '../../src/formats/pidf.js';
import { PolicyError, mergeRuleSets, parsePresRules, type RuleSet } from '../../src/formats/pres-rules.js';
import type { Identity } from '../../src/policy/common-policy.js';
import { BLOCK_ALL, applyTransformations, evaluate, viewKey, type Permissions } from '../../src/policy/pres-rules.js';

const FOO = 'urn:vendor-specific:foo-namespace';
const NOW = new Date('2024-05-01T12:00:00Z');

// RFC 5025 §6, verbatim: sip and mailto services, all persons, activities, bare user-input, <foo>.
const RFC5025_EXAMPLE = `<?xml version="1.0" encoding="UTF-8"?>
   <cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules"
    xmlns:pr="urn:ietf:params:xml:ns:pres-rules"
    xmlns:cr="urn:ietf:params:xml:ns:common-policy">
    <cr:rule id="a">
     <cr:conditions>
      <cr:identity>
       <cr:one id="sip:user@example.com"/>
      </cr:identity>
     </cr:conditions>
     <cr:actions>
      <pr:sub-handling>allow</pr:sub-handling>
     </cr:actions>
     <cr:transformations>
      <pr:provide-services>
        <pr:service-uri-scheme>sip</pr:service-uri-scheme>
        <pr:service-uri-scheme>mailto</pr:service-uri-scheme>
      </pr:provide-services>
      <pr:provide-persons>
        <pr:all-persons/>
      </pr:provide-persons>
      <pr:provide-activities>true</pr:provide-activities>
      <pr:provide-user-input>bare</pr:provide-user-input>
       <pr:provide-unknown-attribute
        ns="urn:vendor-specific:foo-namespace"
        name="foo">true</pr:provide-unknown-attribute>
     </cr:transformations>
    </cr:rule>
   </cr:ruleset>`;

// A presentity document with everything RFC 5025 §3.3 has a permission for, and some it has not.
const PIDF = `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
    xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
    xmlns:c="urn:ietf:params:xml:ns:pidf:cipid"
    xmlns:caps="urn:ietf:params:xml:ns:pidf:caps"
    xmlns:foo="urn:vendor-specific:foo-namespace"
    entity="sip:alice@example.com">
  <tuple id="t-sip">
    <status><basic>open</basic><foo:status-ext>x</foo:status-ext></status>
    <rpid:class>biz</rpid:class>
    <rpid:relationship><rpid:self/></rpid:relationship>
    <rpid:service-class><rpid:electronic/></rpid:service-class>
    <rpid:status-icon>http://example.com/phone.png</rpid:status-icon>
    <rpid:privacy><rpid:text/></rpid:privacy>
    <rpid:user-input idle-threshold="600" last-input="2024-05-01T11:00:00Z">idle</rpid:user-input>
    <caps:servcaps><caps:audio>true</caps:audio></caps:servcaps>
    <foo:foo>bar</foo:foo>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
    <contact priority="0.8">sip:alice@pc33.example.com</contact>
    <note xml:lang="en">Don't Disturb Please!</note>
    <timestamp>2024-05-01T10:00:00Z</timestamp>
  </tuple>
  <tuple id="t-mail">
    <status><basic>open</basic></status>
    <contact>mailto:alice@example.com</contact>
    <note>mail me</note>
  </tuple>
  <tuple id="t-tel">
    <status><basic>closed</basic></status>
    <rpid:class>home</rpid:class>
    <contact>tel:+1-212-555-1234</contact>
  </tuple>
  <note>Working from home</note>
  <dm:person id="p1">
    <rpid:activities><rpid:on-the-phone/><rpid:note>with the boss</rpid:note></rpid:activities>
    <rpid:mood><rpid:happy/></rpid:mood>
    <rpid:place-is><rpid:audio><rpid:noisy/></rpid:audio></rpid:place-is>
    <rpid:place-type><rpid:home/></rpid:place-type>
    <rpid:privacy><rpid:quiet/></rpid:privacy>
    <rpid:sphere>work</rpid:sphere>
    <rpid:time-offset>-300</rpid:time-offset>
    <rpid:status-icon>http://example.com/alice.png</rpid:status-icon>
    <rpid:class>personal</rpid:class>
    <rpid:user-input idle-threshold="600">active</rpid:user-input>
    <c:display-name>Alice</c:display-name>
    <foo:foo>bar</foo:foo>
    <dm:note>Out for lunch</dm:note>
    <dm:timestamp>2024-05-01T10:00:00Z</dm:timestamp>
  </dm:person>
  <dm:device id="d-pc">
    <rpid:class>biz</rpid:class>
    <rpid:user-input last-input="2024-05-01T11:00:00Z">active</rpid:user-input>
    <dm:deviceID>urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a</dm:deviceID>
    <dm:note>desk phone</dm:note>
    <dm:timestamp>2024-05-01T10:00:00Z</dm:timestamp>
  </dm:device>
  <dm:device id="d-mobile">
    <rpid:class>home</rpid:class>
    <dm:deviceID>urn:uuid:0AC1E3B4-0000-4000-8000-000000000001</dm:deviceID>
  </dm:device>
  <foo:top-level>hello</foo:top-level>
</presence>`;

const DOC = parsePidf(PIDF);

const PREFIX = new Map<string, string>([
  [NS.PIDF, 'pidf'], [NS.DM, 'dm'], [NS.RPID, 'rpid'], [NS.CIPID, 'c'], [NS.CAPS, 'caps'], [FOO, 'foo'],
]);
const kids = (el: XmlElement | undefined): string[] => {
  assert.ok(el, 'element expected');
  return childElements(el).map((c) => `${PREFIX.get(c.ns) ?? c.ns}:${c.name}`);
};
const tupleIds = (d: PidfDocument): string[] => d.tuples.map((t) => t.id);
const tuple = (d: PidfDocument, id: string): XmlElement => {
  const t = d.tuples.find((x) => x.id === id);
  assert.ok(t, `tuple ${id} expected`);
  return t.element;
};

/** allow plus the given permissions, everything else at its lowest value. */
const allow = (over: Partial<Permissions> = {}): Permissions => ({ ...BLOCK_ALL, subHandling: 'allow', ...over });

const ruleset = (...rules: string[]): string =>
  `<ruleset xmlns="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">${rules.join('')}</ruleset>`;
const rule = (id: string, parts: { conditions?: string; actions?: string; transformations?: string }): string =>
  `<rule id="${id}">${parts.conditions === undefined ? '' : `<conditions>${parts.conditions}</conditions>`}` +
  `<actions>${parts.actions ?? ''}</actions><transformations>${parts.transformations ?? ''}</transformations></rule>`;
const one = (...ids: string[]): string => `<identity>${ids.map((i) => `<one id="${i}"/>`).join('')}</identity>`;
const sub = (v: string): string => `<pr:sub-handling>${v}</pr:sub-handling>`;

const bob: Identity = { uri: 'sip:bob@example.com' };
const carol: Identity = { uri: 'sip:carol@example.com' };
const anonymous: Identity = { uri: 'sip:anonymous@anonymous.invalid', anonymous: true };

/** Which rules (by their single marker permission) fired: each rule grants a distinct occurrence-id. */
function fired(rs: RuleSet, w: Identity, now = NOW, sphere?: string): string[] {
  const p = evaluate(rs, w, now, sphere);
  return p.provideServices === 'all' ? ['all'] : p.provideServices.map((g) => g.value).sort();
}
const marker = (id: string, conditions: string | undefined): string =>
  rule(id, { conditions, actions: sub('allow'), transformations: `<pr:provide-services><pr:occurrence-id>${id}</pr:occurrence-id></pr:provide-services>` });

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

test('RFC 5025 §6 example parses into the rule it describes', () => {
  const rs = parsePresRules(RFC5025_EXAMPLE);
  assert.equal(rs.rules.length, 1);
  const r = rs.rules[0];
  assert.ok(r);
  assert.equal(r.id, 'a');
  assert.deepEqual(r.conditions, [{ type: 'identity', children: [{ type: 'one', id: 'sip:user@example.com' }] }]);
  assert.deepEqual(r.actions, { subHandling: 'allow' });
  const { subHandling: _none, ...lowest } = BLOCK_ALL;
  assert.deepEqual(r.transformations, {
    ...lowest,
    provideServices: [{ type: 'service-uri-scheme', value: 'sip' }, { type: 'service-uri-scheme', value: 'mailto' }],
    providePersons: 'all',
    provideActivities: true,
    provideUserInput: 'bare',
    provideUnknownAttributes: [{ ns: FOO, name: 'foo' }],
  });
});

test('RFC 5025 §6 example: the named watcher is allowed, anyone else is blocked', () => {
  const rs = parsePresRules(RFC5025_EXAMPLE);
  const p = evaluate(rs, { uri: 'sip:user@example.com' }, NOW);
  assert.equal(p.subHandling, 'allow');
  assert.equal(p.providePersons, 'all');
  assert.equal(p.provideActivities, true);
  assert.equal(p.provideNote, false);
  assert.deepEqual(evaluate(rs, bob, NOW), BLOCK_ALL);
});

test('RFC 5025 §6 example applied: sip and mailto services, person with activities, <foo>, nothing else', () => {
  const p = evaluate(parsePresRules(RFC5025_EXAMPLE), { uri: 'sip:user@example.com' }, NOW);
  const out = applyTransformations(DOC, p);
  assert.equal(out.entity, 'sip:alice@example.com');
  assert.deepEqual(tupleIds(out), ['t-sip', 't-mail']); // tel: scheme not granted
  assert.deepEqual(kids(tuple(out, 't-sip')), [
    'pidf:status', 'rpid:service-class', 'rpid:user-input', 'foo:foo', 'pidf:contact', 'pidf:timestamp',
  ]);
  assert.deepEqual(kids(firstChild(tuple(out, 't-sip'), NS.PIDF, 'status')), ['pidf:basic']);
  const ui = firstChild(tuple(out, 't-sip'), NS.RPID, 'user-input');
  assert.deepEqual(ui?.attrs, {}); // bare: idle-threshold and the time attribute removed
  assert.equal(ui && textOf(ui), 'idle');
  assert.deepEqual(kids(out.persons[0]), ['rpid:activities', 'rpid:user-input', 'foo:foo', 'dm:timestamp']);
  assert.equal(out.devices.length, 0); // no <provide-devices>
  assert.equal(out.notes.length, 0);
  assert.equal(out.extensions.length, 0);
});

function rejects(xml: string, re: RegExp): void {
  let caught: unknown;
  try {
    parsePresRules(xml);
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof PolicyError, `expected PolicyError, got ${String(caught)}`);
  assert.match(caught.message, re);
  assert.ok(caught.message.length <= 100 && /^[\x20-\x7e]+$/.test(caught.message), caught.message);
}

test('parse errors are PolicyErrors with a usable message, never a crash', () => {
  rejects('', /Bad pres-rules/);
  rejects('not xml at all', /Bad pres-rules/);
  rejects('<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"><rule id="a">', /Bad pres-rules: malformed/);
  rejects('<ruleset xmlns="urn:example:other"/>', /not a common-policy ruleset/);
  rejects('<ruleset/>', /not a common-policy ruleset/);
  rejects(ruleset('<rule><conditions/></rule>'), /rule without id/);
  rejects(ruleset(rule('a', {}), rule('a', {})), /duplicate rule id/);
  rejects(ruleset('<rule id="a"><conditions/><conditions/></rule>'), /unexpected <conditions>/);
  rejects(ruleset('<rule id="a"><whatever/></rule>'), /unexpected <whatever>/);
  rejects(ruleset('<foo/>'), /unexpected <foo> in ruleset/);
  rejects(ruleset(rule('a', { conditions: '<identity><one/></identity>' })), /<one> without id/);
  rejects(ruleset(rule('a', { conditions: '<identity><many><except/></many></identity>' })), /exactly one of id and domain/);
  rejects(ruleset(rule('a', { conditions: '<identity><many><except id="sip:a@b.test" domain="b.test"/></many></identity>' })), /exactly one of id and domain/);
  rejects(ruleset(rule('a', { conditions: '<sphere/>' })), /<sphere> without value/);
  rejects(ruleset(rule('a', { conditions: '<validity><from>2024-01-01T00:00:00Z</from></validity>' })), /pairs/);
  rejects(ruleset(rule('a', { conditions: '<validity/>' })), /pairs/);
  rejects(ruleset(rule('a', { conditions: '<validity><until>2024-01-01T00:00:00Z</until><from>2024-01-01T00:00:00Z</from></validity>' })), /pairs/);
  rejects(ruleset(rule('a', { conditions: '<validity><from>yesterday</from><until>2024-01-01T00:00:00Z</until></validity>' })), /xs:dateTime/);
  rejects(ruleset(rule('a', { conditions: '<validity><from>2024-02-30T00:00:00Z</from><until>2024-03-01T00:00:00Z</until></validity>' })), /xs:dateTime/);
  rejects(ruleset(rule('a', { actions: sub('maybe') })), /sub-handling must be/);
  rejects(ruleset(rule('a', { transformations: '<pr:provide-note>yes</pr:provide-note>' })), /provide-note must be true or false/);
  rejects(ruleset(rule('a', { transformations: '<pr:provide-user-input>some</pr:provide-user-input>' })), /provide-user-input must be/);
  rejects(ruleset(rule('a', { transformations: '<pr:provide-services><pr:all-services/><pr:class>biz</pr:class></pr:provide-services>' })), /must stand alone/);
  rejects(ruleset(rule('a', { transformations: '<pr:provide-services><pr:deviceID>urn:x:y</pr:deviceID></pr:provide-services>' })), /unexpected <deviceID>/);
  rejects(ruleset(rule('a', { transformations: '<pr:provide-unknown-attribute name="foo">true</pr:provide-unknown-attribute>' })), /needs ns and name/);
  rejects(ruleset(rule('a', { transformations: `<pr:provide-unknown-attribute ns="${FOO}" name="f:foo">true</pr:provide-unknown-attribute>` })), /unprefixed/);
});

test('hostile XML is refused by parseXml and surfaces as PolicyError', () => {
  const laughs = `<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>` +
    `<ruleset xmlns="urn:ietf:params:xml:ns:common-policy"><rule id="&lol2;"/></ruleset>`;
  rejects(laughs, /DOCTYPE/);
  const xxe = `<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><ruleset xmlns="urn:ietf:params:xml:ns:common-policy"/>`;
  rejects(xxe, /DOCTYPE/);
  rejects(ruleset(rule('&unknown;', {})), /entity/);
  const huge = ruleset(...Array.from({ length: 2000 }, (_, i) => marker(`r${i}`, one(`sip:user${i}@example.com`))));
  rejects(huge, /too large/);
  let deep = '';
  for (let i = 0; i < 50; i++) deep = `<x:a xmlns:x="urn:x">${deep}</x:a>`;
  rejects(ruleset(rule('a', { conditions: deep })), /nested too deeply/);
});

test('unknown actions and transformations are ignored, the rest of the rule still applies', () => {
  const rs = parsePresRules(ruleset(rule('a', {
    conditions: one(bob.uri),
    actions: `${sub('allow')}<x:forward xmlns:x="urn:example:ext">yes</x:forward><pr:future-action>1</pr:future-action>`,
    transformations: '<x:provide-everything xmlns:x="urn:example:ext"/><pr:provide-x-ray>true</pr:provide-x-ray><pr:provide-note>true</pr:provide-note>',
  })));
  const p = evaluate(rs, bob, NOW);
  assert.equal(p.subHandling, 'allow');
  assert.equal(p.provideNote, true);
  assert.deepEqual({ ...p, provideNote: false }, { ...BLOCK_ALL, subHandling: 'allow' });
});

test('extension members of provide-services grant nothing; booleans accept 1 and 0', () => {
  const rs = parsePresRules(ruleset(rule('a', {
    transformations: '<pr:provide-services><x:by-magic xmlns:x="urn:example:ext">*</x:by-magic></pr:provide-services>' +
      '<pr:provide-mood>1</pr:provide-mood><pr:provide-note> 0 </pr:provide-note>',
    actions: sub('allow'),
  })));
  const p = evaluate(rs, bob, NOW);
  assert.deepEqual(p.provideServices, []);
  assert.equal(p.provideMood, true);
  assert.equal(p.provideNote, false);
  assert.equal(applyTransformations(DOC, p).tuples.length, 0);
});

// ---------------------------------------------------------------------------------------------
// Combining (RFC 4745 §10, RFC 5025 §3.2.1)
// ---------------------------------------------------------------------------------------------

const everyone = '';

test('combining: allow in one rule and block in another is allow, whatever the order', () => {
  const a = rule('a', { conditions: one(bob.uri), actions: sub('allow') });
  const b = rule('b', { conditions: one(bob.uri), actions: sub('block') });
  assert.equal(evaluate(parsePresRules(ruleset(a, b)), bob, NOW).subHandling, 'allow');
  assert.equal(evaluate(parsePresRules(ruleset(b, a)), bob, NOW).subHandling, 'allow');
  assert.equal(evaluate(parsePresRules(ruleset(b)), bob, NOW).subHandling, 'block');
});

test('combining: confirm and polite-block is polite-block; every pair is the maximum', () => {
  const order = ['block', 'confirm', 'polite-block', 'allow'];
  for (const [i, x] of order.entries()) {
    for (const [j, y] of order.entries()) {
      const rs = parsePresRules(ruleset(rule('a', { conditions: everyone, actions: sub(x) }), rule('b', { conditions: everyone, actions: sub(y) })));
      assert.equal(evaluate(rs, bob, NOW).subHandling, order[Math.max(i, j)], `${x} + ${y}`);
    }
  }
  const rs = parsePresRules(ruleset(rule('a', { actions: sub('confirm') }), rule('b', { actions: sub('polite-block') })));
  assert.equal(evaluate(rs, bob, NOW).subHandling, 'polite-block');
});

test('combining: no matching rule is BLOCK_ALL; an empty rule set too', () => {
  assert.deepEqual(evaluate({ rules: [] }, bob, NOW), BLOCK_ALL);
  const rs = parsePresRules(ruleset(rule('a', { conditions: one(carol.uri), actions: sub('allow'), transformations: '<pr:provide-note>true</pr:provide-note>' })));
  assert.deepEqual(evaluate(rs, bob, NOW), BLOCK_ALL);
  assert.equal(BLOCK_ALL.subHandling, 'block');
  assert.ok(Object.isFrozen(BLOCK_ALL));
});

test('combining: a rule without sub-handling contributes transformations but not a handling', () => {
  const rs = parsePresRules(ruleset(
    rule('a', { conditions: one(bob.uri), transformations: '<pr:provide-note>true</pr:provide-note>' }),
    rule('b', { conditions: one(bob.uri, carol.uri), actions: sub('confirm') }),
  ));
  const p = evaluate(rs, bob, NOW);
  assert.equal(p.subHandling, 'confirm');
  assert.equal(p.provideNote, true);
  const alone = evaluate(parsePresRules(ruleset(rule('a', { conditions: one(bob.uri), transformations: '<pr:provide-note>true</pr:provide-note>' }))), bob, NOW);
  assert.equal(alone.subHandling, 'block'); // RFC 5025 §3.2.1: block is the default value
  assert.equal(alone.provideNote, true);
});

test('combining: booleans are OR-ed; false never takes away a true', () => {
  const rs = parsePresRules(ruleset(
    rule('a', { actions: sub('allow'), transformations: '<pr:provide-note>true</pr:provide-note><pr:provide-mood>false</pr:provide-mood>' }),
    rule('b', { transformations: '<pr:provide-note>false</pr:provide-note><pr:provide-mood>true</pr:provide-mood>' }),
    rule('c', { transformations: '<pr:provide-sphere>false</pr:provide-sphere>' }),
  ));
  const p = evaluate(rs, bob, NOW);
  assert.equal(p.provideNote, true);
  assert.equal(p.provideMood, true);
  assert.equal(p.provideSphere, false);
  assert.equal(p.provideActivities, false);
});

test('combining: sets are unioned (RFC 5025 §3.3.1.1 example), duplicates once', () => {
  const rs = parsePresRules(ruleset(
    rule('a', { actions: sub('allow'), transformations: '<pr:provide-devices><pr:deviceID>urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6</pr:deviceID><pr:class>biz</pr:class></pr:provide-devices>' }),
    rule('b', { transformations: '<pr:provide-devices><pr:class>home</pr:class><pr:class>biz</pr:class></pr:provide-devices>' }),
    rule('c', { transformations: `<pr:provide-unknown-attribute ns="${FOO}" name="foo">true</pr:provide-unknown-attribute>` }),
    rule('d', { transformations: `<pr:provide-unknown-attribute ns="${FOO}" name="foo">true</pr:provide-unknown-attribute><pr:provide-unknown-attribute ns="${FOO}" name="bar">true</pr:provide-unknown-attribute><pr:provide-unknown-attribute ns="${FOO}" name="baz">false</pr:provide-unknown-attribute>` }),
  ));
  const p = evaluate(rs, bob, NOW);
  assert.notEqual(p.provideDevices, 'all');
  assert.deepEqual([...(p.provideDevices === 'all' ? [] : p.provideDevices)].sort((x, y) => (x.type + x.value).localeCompare(y.type + y.value)), [
    { type: 'class', value: 'biz' },
    { type: 'class', value: 'home' },
    { type: 'deviceID', value: 'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6' },
  ]);
  assert.deepEqual(p.provideUnknownAttributes, [{ ns: FOO, name: 'foo' }, { ns: FOO, name: 'bar' }]);
});

test('combining: all-services/-persons/-devices and provide-all-attributes dominate', () => {
  const rs = parsePresRules(ruleset(
    rule('a', { actions: sub('allow'), transformations: '<pr:provide-services><pr:class>biz</pr:class></pr:provide-services><pr:provide-persons><pr:all-persons/></pr:provide-persons>' }),
    rule('b', { transformations: '<pr:provide-services><pr:all-services/></pr:provide-services><pr:provide-persons><pr:class>x</pr:class></pr:provide-persons><pr:provide-all-attributes/>' }),
    rule('c', { transformations: '<pr:provide-devices><pr:occurrence-id>d-pc</pr:occurrence-id></pr:provide-devices>' }),
    rule('d', { transformations: '<pr:provide-devices><pr:all-devices/></pr:provide-devices>' }),
  ));
  const p = evaluate(rs, bob, NOW);
  assert.equal(p.provideServices, 'all');
  assert.equal(p.providePersons, 'all');
  assert.equal(p.provideDevices, 'all');
  assert.equal(p.provideAllAttributes, true);
  // all-attributes reveals everything inside the (all) components, even with every boolean false
  const out = applyTransformations(DOC, p);
  assert.equal(serializePidf({ ...out, notes: [], extensions: [] }), serializePidf({ ...DOC, notes: [], extensions: [] }));
});

test('combining: provide-user-input is the maximum of false < bare < thresholds < full', () => {
  const levels = ['false', 'bare', 'thresholds', 'full'];
  for (const [i, x] of levels.entries()) {
    for (const [j, y] of levels.entries()) {
      const rs = parsePresRules(ruleset(
        rule('a', { actions: sub('allow'), transformations: `<pr:provide-user-input>${x}</pr:provide-user-input>` }),
        rule('b', { transformations: `<pr:provide-user-input>${y}</pr:provide-user-input>` }),
      ));
      assert.equal(evaluate(rs, bob, NOW).provideUserInput, levels[Math.max(i, j)], `${x} + ${y}`);
    }
  }
});

test('mergeRuleSets: all documents of a user apply (RFC 5025 §9.7)', () => {
  const index = parsePresRules(ruleset(rule('a', { conditions: one(bob.uri), actions: sub('allow'), transformations: '<pr:provide-services><pr:all-services/></pr:provide-services>' })));
  const other = parsePresRules(ruleset(rule('a', { conditions: one(bob.uri), transformations: '<pr:provide-note>true</pr:provide-note>' })));
  const merged = mergeRuleSets([index, other]);
  assert.equal(merged.rules.length, 2);
  const p = evaluate(merged, bob, NOW);
  assert.equal(p.subHandling, 'allow');
  assert.equal(p.provideServices, 'all');
  assert.equal(p.provideNote, true);
  assert.equal(evaluate(index, bob, NOW).provideNote, false);
  assert.equal(evaluate(other, bob, NOW).subHandling, 'block');
  assert.equal(index.rules.length, 1); // inputs untouched
  assert.deepEqual(mergeRuleSets([]), { rules: [] });
});

// ---------------------------------------------------------------------------------------------
// Conditions (RFC 4745 §7, RFC 5025 §3.1)
// ---------------------------------------------------------------------------------------------

test('<one>: canonical URI comparison (scheme and host case, parameters), user part stays case-sensitive', () => {
  const rs = parsePresRules(ruleset(marker('bob', one('sip:bob@example.com'))));
  assert.deepEqual(fired(rs, bob), ['bob']);
  assert.deepEqual(fired(rs, { uri: 'SIP:bob@EXAMPLE.COM;transport=tcp' }), ['bob']);
  assert.deepEqual(fired(rs, { uri: 'sip:bob@example.com?subject=hi' }), ['bob']);
  assert.deepEqual(fired(rs, { uri: 'sip:b%6Fb@example.com' }), ['bob']); // %6F is an unreserved "o"
  assert.deepEqual(fired(rs, { uri: 'sip:Bob@example.com' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:bob@example.com.evil.test' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:bob@example.org' }), []);
  assert.deepEqual(fired(rs, { uri: 'sips:bob@example.com' }), []); // different schemes never match
  assert.deepEqual(fired(rs, { uri: 'bob@example.com' }), []);
});

test('<one>: an escaped unreserved character equals itself (RFC 3261 §19.1.4, the escape set list members use)', () => {
  const rs = parsePresRules(ruleset(marker('ab', one('sip:a%21b@example.test'))));
  assert.deepEqual(fired(rs, { uri: 'sip:a!b@example.test' }), ['ab']);
  assert.deepEqual(fired(rs, { uri: 'sip:a%21b@example.test' }), ['ab']);
  // ';' is reserved: its escape is another user part (RFC 3261 §19.1.4)
  const semi = parsePresRules(ruleset(marker('semi', one('sip:a%3Bb@example.test'))));
  assert.deepEqual(fired(semi, { uri: 'sip:a;b@example.test' }), []);
});

test('<many domain>: any identity of that domain, compared after ToASCII (RFC 4745 §7.1.3)', () => {
  const rs = parsePresRules(ruleset(marker('ex', '<identity><many domain="example.com"/></identity>'), marker('idn', '<identity><many domain="bücher.example"/></identity>')));
  assert.deepEqual(fired(rs, carol), ['ex']);
  assert.deepEqual(fired(rs, { uri: 'sip:dave@EXAMPLE.com' }), ['ex']);
  assert.deepEqual(fired(rs, { uri: 'sip:dave@example.com.evil.test' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:dave@sub.example.com' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:dave@example.org' }), []);
  assert.deepEqual(fired(rs, { uri: 'tel:+12125551234' }), []); // a tel URI has no domain
  assert.deepEqual(fired(rs, { uri: 'sip:dave@xn--bcher-kva.example' }), ['idn']);
});

test('<many domain> with <except id> (RFC 4745 §7.1.3.3 example)', () => {
  const rs = parsePresRules(ruleset(marker('m', '<identity><many domain="example.com"><except id="sip:alice@example.com"/><except id="sip:bob@example.com"/></many></identity>')));
  assert.deepEqual(fired(rs, carol), ['m']);
  assert.deepEqual(fired(rs, bob), []);
  assert.deepEqual(fired(rs, { uri: 'sip:alice@EXAMPLE.COM' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:alice@example.org' }), []);
});

test('<many> with <except domain> and <except id> (RFC 4745 §7.1.3.2 example)', () => {
  const rs = parsePresRules(ruleset(marker('m', '<identity><many>' +
    '<except domain="example.com"/><except domain="example.org"/><except id="sip:alice@bad.example.net"/>' +
    '<except id="sip:bob@good.example.net"/><except id="tel:+1-212-555-1234"/></many></identity>')));
  assert.deepEqual(fired(rs, { uri: 'sip:dave@example.net' }), ['m']);
  assert.deepEqual(fired(rs, { uri: 'sip:carol@good.example.net' }), ['m']);
  assert.deepEqual(fired(rs, carol), []);
  assert.deepEqual(fired(rs, { uri: 'sip:x@Example.ORG' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:alice@bad.example.net' }), []);
  assert.deepEqual(fired(rs, { uri: 'sip:bob@good.example.net' }), []);
  assert.deepEqual(fired(rs, { uri: 'tel:+12125551234' }), []);
  assert.deepEqual(fired(rs, { uri: 'tel:+12125550000' }), ['m']); // no domain: only the id can exclude it
});

test('<many/> matches any authenticated identity, including tel, but not an anonymous watcher', () => {
  const rs = parsePresRules(ruleset(marker('any', '<identity><many/></identity>')));
  assert.deepEqual(fired(rs, bob), ['any']);
  assert.deepEqual(fired(rs, { uri: 'tel:+12125551234' }), ['any']);
  assert.deepEqual(fired(rs, anonymous), []);
});

test('children of <identity> are OR-ed; several conditions are AND-ed', () => {
  const rs = parsePresRules(ruleset(
    marker('or', one(bob.uri, carol.uri)),
    marker('and', `${one(bob.uri)}<sphere value="work"/>`),
    marker('two-identities', `${one(bob.uri, carol.uri)}<identity><many domain="example.com"><except id="${carol.uri}"/></many></identity>`),
  ));
  assert.deepEqual(fired(rs, bob, NOW, 'work'), ['and', 'or', 'two-identities']);
  assert.deepEqual(fired(rs, bob, NOW, 'home'), ['or', 'two-identities']);
  assert.deepEqual(fired(rs, carol, NOW, 'work'), ['or']);
});

test('<sphere>: token list OR-ed, case-insensitive; an undefined sphere matches nothing', () => {
  const rs = parsePresRules(ruleset(marker('s', '<sphere value="home work"/>'), marker('w', '<sphere value="Work"/>')));
  assert.deepEqual(fired(rs, bob, NOW, 'work'), ['s', 'w']);
  assert.deepEqual(fired(rs, bob, NOW, 'WORK'), ['s', 'w']);
  assert.deepEqual(fired(rs, bob, NOW, 'home'), ['s']);
  assert.deepEqual(fired(rs, bob, NOW, 'travel'), []);
  assert.deepEqual(fired(rs, bob, NOW, undefined), []);
  assert.deepEqual(fired(rs, bob, NOW, ''), []);
  assert.deepEqual(fired(rs, bob, NOW, 'home work'), []); // the presentity has one sphere, not a list
});

test('<validity>: inside [from, until) of any pair, time zones honoured (RFC 4745 §7.4, §12)', () => {
  const rs = parsePresRules(ruleset(marker('v', '<validity>' +
    '<from>2003-12-24T17:00:00+01:00</from><until>2003-12-24T19:00:00+01:00</until>' +
    '<from>2003-12-31T23:00:00-05:00</from><until>2004-01-01T00:00:00.500-05:00</until></validity>')));
  assert.deepEqual(fired(rs, bob, new Date('2003-12-24T16:00:00Z')), ['v']); // = from: inside
  assert.deepEqual(fired(rs, bob, new Date('2003-12-24T17:59:59.999Z')), ['v']);
  assert.deepEqual(fired(rs, bob, new Date('2003-12-24T18:00:00Z')), []); // = until: outside
  assert.deepEqual(fired(rs, bob, new Date('2003-12-24T15:59:59.999Z')), []);
  assert.deepEqual(fired(rs, bob, new Date('2004-01-01T04:30:00Z')), ['v']); // second pair
  assert.deepEqual(fired(rs, bob, new Date('2004-01-01T05:00:00.499Z')), ['v']);
  assert.deepEqual(fired(rs, bob, new Date('2004-01-01T05:00:00.500Z')), []);
  assert.deepEqual(fired(rs, bob, NOW), []);
  assert.deepEqual(fired(rs, bob, new Date(Number.NaN)), []);
  // no time zone: read as UTC
  const utc = parsePresRules(ruleset(marker('u', '<validity><from>2024-05-01T11:00:00</from><until>2024-05-01T12:00:00</until></validity>')));
  assert.deepEqual(fired(utc, bob, new Date('2024-05-01T11:30:00Z')), ['u']);
  assert.deepEqual(fired(utc, bob, NOW), []);
});

test('an unknown condition makes its rule never match (RFC 4745 §7)', () => {
  const rs = parsePresRules(ruleset(
    marker('oma', `${one(bob.uri)}<ocp:external-list xmlns:ocp="urn:oma:xml:xdm:common-policy"><ocp:entry anc="http://xcap.example.com/list"/></ocp:external-list>`),
    marker('cp-typo', `${one(bob.uri)}<identitty/>`),
    marker('plain', one(bob.uri)),
  ));
  assert.deepEqual(fired(rs, bob), ['plain']);
  const only = parsePresRules(ruleset(marker('x', '<x:moon-phase xmlns:x="urn:example:ext" value="full"/>')));
  assert.deepEqual(evaluate(only, bob, NOW), BLOCK_ALL);
  assert.deepEqual(evaluate(only, anonymous, NOW), BLOCK_ALL);
});

test('unknown children of <identity> are FALSE, so OR-ed with a match they do not hide it', () => {
  const rs = parsePresRules(ruleset(
    marker('only-unknown', '<identity><ocp:other-identity xmlns:ocp="urn:oma:xml:xdm:common-policy"/></identity>'),
    marker('with-one', `<identity><ocp:other-identity xmlns:ocp="urn:oma:xml:xdm:common-policy"/><one id="${bob.uri}"/></identity>`),
    marker('extended-one', `<identity><one id="${bob.uri}"><x:only-on-weekdays xmlns:x="urn:example:ext"/></one></identity>`),
    marker('extended-many', '<identity><many><x:but-not xmlns:x="urn:example:ext">bob</x:but-not></many></identity>'),
  ));
  assert.deepEqual(fired(rs, bob), ['with-one']);
  assert.deepEqual(fired(rs, anonymous), []);
});

test('empty or absent <conditions> match everyone, anonymous watchers included', () => {
  const rs = parsePresRules(ruleset(marker('empty', ''), marker('absent', undefined)));
  assert.deepEqual(fired(rs, bob), ['absent', 'empty']);
  assert.deepEqual(fired(rs, { uri: 'tel:+15551234' }), ['absent', 'empty']);
  assert.deepEqual(fired(rs, anonymous), ['absent', 'empty']);
});

test('anonymous watchers match only an empty <identity/> (RFC 5025 §3.1.1.2), authenticated ones never do', () => {
  const rs = parsePresRules(ruleset(
    rule('anon', { conditions: '<identity/>', actions: sub('polite-block'), transformations: '<pr:provide-mood>true</pr:provide-mood>' }),
    rule('auth', { conditions: '<identity><many/></identity>', actions: sub('allow'), transformations: '<pr:provide-services><pr:all-services/></pr:provide-services>' }),
    rule('bob', { conditions: one('sip:anonymous@anonymous.invalid'), actions: sub('allow') }),
    rule('open', { conditions: '', transformations: '<pr:provide-note>true</pr:provide-note>' }),
  ));
  const a = evaluate(rs, anonymous, NOW);
  assert.equal(a.subHandling, 'polite-block');
  assert.equal(a.provideMood, true);
  assert.equal(a.provideNote, true);
  assert.deepEqual(a.provideServices, []);
  // anonymous wins over a URI that happens to be given, and an empty URI is no identity
  assert.deepEqual(evaluate(rs, { uri: bob.uri, anonymous: true }, NOW), a);
  assert.deepEqual(evaluate(rs, { uri: '' }, NOW), a);
  assert.deepEqual(evaluate(rs, { uri: '  ' }, NOW), a);
  const b = evaluate(rs, bob, NOW);
  assert.equal(b.subHandling, 'allow');
  assert.equal(b.provideMood, false); // <identity/> did not match bob
  assert.equal(b.provideServices, 'all');
  assert.equal(b.provideNote, true);
});

test('sip: and tel: never match each other (RFC 5025 §3.1.1.2); tel visual separators are ignored', () => {
  const rs = parsePresRules(ruleset(
    marker('tel', one('tel:+1-212-555-1234')),
    marker('sip-number', one('sip:+12125551234@example.com;user=phone')),
  ));
  assert.deepEqual(fired(rs, { uri: 'tel:+12125551234' }), ['tel']);
  assert.deepEqual(fired(rs, { uri: 'tel:+1(212)555.1234' }), ['tel']);
  assert.deepEqual(fired(rs, { uri: 'sip:+12125551234@example.com;user=phone' }), ['sip-number']);
  assert.deepEqual(fired(rs, { uri: 'sip:+1-212-555-1234@example.com' }), []);
  assert.deepEqual(fired(rs, { uri: 'tel:+12125559999' }), []);
});

test('several asserted URIs: any may match <one>, any excluded by <except> excludes the watcher', () => {
  const both: Identity = { uri: 'sip:bob@example.com', otherUris: ['tel:+12125551234'] };
  const rs = parsePresRules(ruleset(marker('tel', one('tel:+1-212-555-1234'))));
  assert.deepEqual(fired(rs, both), ['tel']);
  const ex = parsePresRules(ruleset(marker('m', '<identity><many domain="example.com"><except id="tel:+12125551234"/></many></identity>')));
  assert.deepEqual(fired(ex, bob), ['m']);
  assert.deepEqual(fired(ex, both), []);
});

// ---------------------------------------------------------------------------------------------
// Transformations (RFC 5025 §3.3, §4)
// ---------------------------------------------------------------------------------------------

test('note and activities: removed for one watcher, kept for another who has provide-note/-activities', () => {
  const rs = parsePresRules(ruleset(
    rule('friends', { conditions: one(bob.uri, carol.uri), actions: sub('allow'),
      transformations: '<pr:provide-services><pr:all-services/></pr:provide-services><pr:provide-persons><pr:all-persons/></pr:provide-persons><pr:provide-devices><pr:all-devices/></pr:provide-devices>' }),
    rule('close', { conditions: one(bob.uri), transformations: '<pr:provide-note>true</pr:provide-note><pr:provide-activities>true</pr:provide-activities>' }),
  ));
  const forBob = applyTransformations(DOC, evaluate(rs, bob, NOW));
  const forCarol = applyTransformations(DOC, evaluate(rs, carol, NOW));
  for (const out of [forBob, forCarol]) {
    assert.deepEqual(tupleIds(out), ['t-sip', 't-mail', 't-tel']);
    assert.equal(out.persons.length, 1);
    assert.equal(out.devices.length, 2);
  }
  // bob: notes everywhere (tuple pidf:note, person/device dm:note, top-level note) and activities
  assert.ok(kids(tuple(forBob, 't-sip')).includes('pidf:note'));
  assert.deepEqual(kids(tuple(forBob, 't-mail')), ['pidf:status', 'pidf:contact', 'pidf:note']);
  assert.deepEqual(kids(forBob.persons[0]), ['rpid:activities', 'dm:note', 'dm:timestamp']);
  assert.deepEqual(kids(forBob.devices[0]), ['dm:deviceID', 'dm:note', 'dm:timestamp']);
  assert.equal(forBob.notes.length, 1);
  // the note inside <activities> belongs to the activities (RFC 5025 §3.3.2.13)
  const acts = firstChild(forBob.persons[0] as XmlElement, NS.RPID, 'activities');
  assert.ok(acts && firstChild(acts, NS.RPID, 'note'));
  // carol: none of it
  assert.ok(!kids(tuple(forCarol, 't-sip')).includes('pidf:note'));
  assert.deepEqual(kids(tuple(forCarol, 't-mail')), ['pidf:status', 'pidf:contact']);
  assert.deepEqual(kids(forCarol.persons[0]), ['dm:timestamp']);
  assert.deepEqual(kids(forCarol.devices[0]), ['dm:deviceID', 'dm:timestamp']);
  assert.equal(forCarol.notes.length, 0);
  const body = serializePidf(forCarol);
  for (const secret of ['Disturb', 'mail me', 'Working from home', 'Out for lunch', 'desk phone', 'on-the-phone', 'boss']) {
    assert.ok(!body.includes(secret), secret);
  }
});

test('transformations are opt-in: allow alone shows no tuple, person or device', () => {
  const out = applyTransformations(DOC, allow());
  assert.deepEqual(out, { entity: DOC.entity, tuples: [], persons: [], devices: [], notes: [], extensions: [] });
});

test('provide-services by service-uri (URI equivalence), by class, by occurrence-id, by scheme', () => {
  const by = (g: Permissions['provideServices']): string[] => tupleIds(applyTransformations(DOC, allow({ provideServices: g })));
  assert.deepEqual(by([{ type: 'service-uri', value: 'sip:alice@pc33.example.com' }]), ['t-sip']);
  assert.deepEqual(by([{ type: 'service-uri', value: 'SIP:alice@PC33.Example.COM' }]), ['t-sip']);
  assert.deepEqual(by([{ type: 'service-uri', value: 'sip:Alice@pc33.example.com' }]), []);
  assert.deepEqual(by([{ type: 'service-uri', value: 'sip:alice@pc33.example.com;transport=tcp' }]), []);
  assert.deepEqual(by([{ type: 'service-uri', value: 'tel:+12125551234' }]), ['t-tel']);
  assert.deepEqual(by([{ type: 'service-uri', value: 'not a uri' }]), []);
  assert.deepEqual(by([{ type: 'class', value: 'biz' }]), ['t-sip']);
  assert.deepEqual(by([{ type: 'class', value: 'home' }]), ['t-tel']);
  assert.deepEqual(by([{ type: 'class', value: 'Home' }]), []); // case-sensitive (§3.3.1.3)
  assert.deepEqual(by([{ type: 'occurrence-id', value: 't-mail' }]), ['t-mail']);
  assert.deepEqual(by([{ type: 'service-uri-scheme', value: 'tel' }, { type: 'occurrence-id', value: 't-mail' }]), ['t-mail', 't-tel']);
  assert.deepEqual(by([{ type: 'service-uri-scheme', value: 'im' }]), []);
  assert.deepEqual(by('all'), ['t-sip', 't-mail', 't-tel']);
});

test('service-uri-scheme compares the scheme exactly, after putting the contact\'s scheme in lower case', () => {
  const doc = parsePidf(`<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">
    <tuple id="upper"><status><basic>open</basic></status><contact>SIP:alice@example.com</contact></tuple>
    <tuple id="sips"><status><basic>open</basic></status><contact>sips:alice@example.com</contact></tuple>
    <tuple id="none"><status><basic>open</basic></status></tuple></presence>`);
  const by = (value: string): string[] => tupleIds(applyTransformations(doc, allow({ provideServices: [{ type: 'service-uri-scheme', value }] })));
  assert.deepEqual(by('sip'), ['upper']);
  assert.deepEqual(by('sips'), ['sips']);
  assert.deepEqual(by('SIP'), []); // RFC 5025 §3.3.1.3: case-sensitive equality with the grant
  assert.deepEqual(by(''), []);
});

test('loose top-level elements need a grant even when the same element is always reported inside a tuple', () => {
  const doc = parsePidf(`<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
    entity="sip:alice@example.com"><rpid:service-class><rpid:electronic/></rpid:service-class><dm:timestamp>2024-05-01T10:00:00Z</dm:timestamp>
    <rpid:mood><rpid:happy/></rpid:mood></presence>`);
  assert.deepEqual(applyTransformations(doc, allow({ provideServices: 'all', provideNote: true })).extensions, []);
  assert.deepEqual(applyTransformations(doc, allow({ provideMood: true })).extensions.map((e) => e.name), ['mood']);
  assert.equal(applyTransformations(doc, allow({ provideAllAttributes: true })).extensions.length, 3);
});

test('provide-devices by deviceID (urn:uuid case-insensitive), class, occurrence-id', () => {
  const by = (g: Permissions['provideDevices']): string[] =>
    applyTransformations(DOC, allow({ provideDevices: g })).devices.map((d) => d.attrs['id'] ?? '?');
  assert.deepEqual(by([{ type: 'deviceID', value: 'urn:uuid:d27459b7-8213-4395-aa77-ed859a3e5b3a' }]), ['d-pc']);
  assert.deepEqual(by([{ type: 'deviceID', value: 'URN:UUID:0ac1e3b4-0000-4000-8000-000000000001' }]), ['d-mobile']);
  assert.deepEqual(by([{ type: 'deviceID', value: 'urn:uuid:00000000-0000-4000-8000-000000000000' }]), []);
  assert.deepEqual(by([{ type: 'class', value: 'home' }]), ['d-mobile']);
  assert.deepEqual(by([{ type: 'occurrence-id', value: 'd-pc' }, { type: 'class', value: 'home' }]), ['d-pc', 'd-mobile']);
  assert.deepEqual(by('all'), ['d-pc', 'd-mobile']);
  // services and persons stay hidden
  const out = applyTransformations(DOC, allow({ provideDevices: 'all' }));
  assert.equal(out.tuples.length + out.persons.length, 0);
});

test('provide-persons by occurrence-id, class and all', () => {
  const by = (g: Permissions['providePersons']): number => applyTransformations(DOC, allow({ providePersons: g })).persons.length;
  assert.equal(by([{ type: 'occurrence-id', value: 'p1' }]), 1);
  assert.equal(by([{ type: 'occurrence-id', value: 'p2' }]), 0);
  assert.equal(by([{ type: 'class', value: 'personal' }]), 1);
  assert.equal(by([{ type: 'class', value: 'biz' }]), 0);
  assert.equal(by('all'), 1);
  assert.equal(by([]), 0);
});

test('what is always reported: tuple contact/basic/timestamp/service-class, person/device timestamp, device deviceID', () => {
  const out = applyTransformations(DOC, allow({ provideServices: 'all', providePersons: 'all', provideDevices: 'all' }));
  assert.deepEqual(kids(tuple(out, 't-sip')), ['pidf:status', 'rpid:service-class', 'pidf:contact', 'pidf:timestamp']);
  assert.deepEqual(kids(tuple(out, 't-tel')), ['pidf:status', 'pidf:contact']);
  assert.deepEqual(kids(out.persons[0]), ['dm:timestamp']);
  assert.deepEqual(kids(out.devices[0]), ['dm:deviceID', 'dm:timestamp']);
  assert.deepEqual(kids(out.devices[1]), ['dm:deviceID']);
  // a tuple's own deviceID needs provide-deviceID (RFC 5025 §3.3.2.3)
  const withId = applyTransformations(DOC, allow({ provideServices: 'all', provideDeviceID: true }));
  assert.ok(kids(tuple(withId, 't-sip')).includes('dm:deviceID'));
});

test('each RPID attribute follows its own permission', () => {
  const base = { provideServices: 'all', providePersons: 'all', provideDevices: 'all' } as const;
  const cases: [Partial<Permissions>, string, string[]][] = [
    [{ provideMood: true }, 'person', ['rpid:mood']],
    [{ providePlaceIs: true }, 'person', ['rpid:place-is']],
    [{ providePlaceType: true }, 'person', ['rpid:place-type']],
    [{ providePrivacy: true }, 'person', ['rpid:privacy']],
    [{ provideSphere: true }, 'person', ['rpid:sphere']],
    [{ provideTimeOffset: true }, 'person', ['rpid:time-offset']],
    [{ provideStatusIcon: true }, 'person', ['rpid:status-icon']],
    [{ provideClass: true }, 'person', ['rpid:class']],
    [{ provideUserInput: 'full' }, 'person', ['rpid:user-input']],
    [{ providePrivacy: true }, 't-sip', ['rpid:privacy']],
    [{ provideRelationship: true }, 't-sip', ['rpid:relationship']],
    [{ provideStatusIcon: true }, 't-sip', ['rpid:status-icon']],
    [{ provideClass: true }, 't-sip', ['rpid:class']],
    [{ provideClass: true }, 'd-pc', ['rpid:class']],
    [{ provideUserInput: 'bare' }, 'd-pc', ['rpid:user-input']],
  ];
  const always: Record<string, string[]> = {
    person: ['dm:timestamp'], 't-sip': ['pidf:status', 'rpid:service-class', 'pidf:contact', 'pidf:timestamp'], 'd-pc': ['dm:deviceID', 'dm:timestamp'],
  };
  for (const [over, where, extra] of cases) {
    const out = applyTransformations(DOC, allow({ ...base, ...over }));
    const el = where === 'person' ? out.persons[0] : where === 'd-pc' ? out.devices[0] : tuple(out, where);
    const got = kids(el).filter((k) => !(always[where] ?? []).includes(k));
    assert.deepEqual(got, extra, `${JSON.stringify(over)} in ${where}`);
  }
});

test('provide-user-input: false removes, bare strips both attributes, thresholds keeps idle-threshold, full keeps all', () => {
  const ui = (level: Permissions['provideUserInput']): XmlElement | undefined =>
    firstChild(tuple(applyTransformations(DOC, allow({ provideServices: 'all', provideUserInput: level })), 't-sip'), NS.RPID, 'user-input');
  assert.equal(ui('false'), undefined);
  assert.deepEqual(ui('bare')?.attrs, {});
  assert.deepEqual(ui('thresholds')?.attrs, { 'idle-threshold': '600' });
  assert.deepEqual(ui('full')?.attrs, { 'idle-threshold': '600', 'last-input': '2024-05-01T11:00:00Z' });
  for (const level of ['bare', 'thresholds', 'full'] as const) assert.equal(textOf(ui(level) as XmlElement), 'idle');
});

test('unknown attributes: only with provide-unknown-attribute for that name, which cannot unlock RPID', () => {
  const p = allow({
    provideServices: 'all', providePersons: 'all',
    provideUnknownAttributes: [{ ns: FOO, name: 'foo' }, { ns: NS.RPID, name: 'mood' }, { ns: NS.CIPID, name: 'display-name' }],
  });
  const out = applyTransformations(DOC, p);
  assert.ok(kids(tuple(out, 't-sip')).includes('foo:foo'));
  assert.ok(!kids(tuple(out, 't-sip')).includes('caps:servcaps'));
  assert.deepEqual(kids(firstChild(tuple(out, 't-sip'), NS.PIDF, 'status')), ['pidf:basic']);
  assert.deepEqual(kids(out.persons[0]), ['c:display-name', 'foo:foo', 'dm:timestamp']); // no rpid:mood
  assert.equal(out.extensions.length, 0); // foo:top-level is not foo:foo
  const top = applyTransformations(DOC, allow({ provideUnknownAttributes: [{ ns: FOO, name: 'top-level' }] }));
  assert.deepEqual(top.extensions.map((e) => e.name), ['top-level']);
});

test('provide-all-attributes reveals every attribute of the components provided, and only of those', () => {
  const out = applyTransformations(DOC, allow({ provideServices: [{ type: 'occurrence-id', value: 't-sip' }], provideAllAttributes: true }));
  assert.deepEqual(tupleIds(out), ['t-sip']);
  assert.deepEqual(out.tuples[0]?.element, DOC.tuples[0]?.element);
  assert.equal(out.persons.length + out.devices.length, 0);
  assert.equal(out.notes.length, 1);
  assert.equal(out.extensions.length, 1);
});

test('a component selected by <class> keeps that class (and only that one) so the filter stays idempotent', () => {
  const p = allow({ provideServices: [{ type: 'class', value: 'biz' }], provideDevices: [{ type: 'class', value: 'home' }] });
  const once = applyTransformations(DOC, p);
  assert.deepEqual(tupleIds(once), ['t-sip']);
  assert.deepEqual(childElements(tuple(once, 't-sip'), NS.RPID, 'class').map(textOf), ['biz']);
  assert.deepEqual(once.devices.map((d) => d.attrs['id']), ['d-mobile']);
  const twice = applyTransformations(once, p);
  assert.deepEqual(twice, once);
  // selected another way, the class is not disclosed
  const byId = applyTransformations(DOC, allow({ provideServices: [{ type: 'occurrence-id', value: 't-sip' }, { type: 'class', value: 'home' }] }));
  assert.deepEqual(childElements(tuple(byId, 't-sip'), NS.RPID, 'class'), []);
  assert.deepEqual(childElements(tuple(byId, 't-tel'), NS.RPID, 'class').map(textOf), ['home']);
});

test('polite-block shows one closed service and nothing else; block and confirm show nothing', () => {
  const full = { provideServices: 'all', providePersons: 'all', provideDevices: 'all', provideAllAttributes: true } as const;
  const polite = applyTransformations(DOC, { ...allow(full), subHandling: 'polite-block' });
  assert.equal(polite.entity, DOC.entity);
  assert.deepEqual(polite.tuples.map((t) => [t.basic, t.contact]), [['closed', undefined]]);
  assert.equal(polite.persons.length + polite.devices.length + polite.notes.length + polite.extensions.length, 0);
  for (const s of ['block', 'confirm'] as const) {
    assert.deepEqual(applyTransformations(DOC, { ...allow(full), subHandling: s }), {
      entity: DOC.entity, tuples: [], persons: [], devices: [], notes: [], extensions: [],
    });
  }
});

// Permission sets used for the property tests below: realistic ones and corner cases.
const VARIANTS: Permissions[] = [
  BLOCK_ALL,
  { ...BLOCK_ALL, subHandling: 'confirm' },
  { ...allow({ provideServices: 'all' }), subHandling: 'polite-block' },
  allow(),
  allow({ provideServices: 'all' }),
  allow({ provideServices: 'all', provideNote: true }),
  allow({ provideServices: 'all', providePersons: 'all', provideActivities: true, provideNote: true }),
  allow({ provideServices: [{ type: 'service-uri-scheme', value: 'sip' }, { type: 'service-uri-scheme', value: 'mailto' }], providePersons: 'all', provideActivities: true, provideUserInput: 'bare', provideUnknownAttributes: [{ ns: FOO, name: 'foo' }] }),
  allow({ provideServices: [{ type: 'class', value: 'biz' }], provideDevices: [{ type: 'class', value: 'biz' }], providePersons: [{ type: 'class', value: 'personal' }] }),
  allow({ provideServices: [{ type: 'class', value: 'biz' }], provideClass: true }),
  allow({ provideDevices: [{ type: 'deviceID', value: 'urn:uuid:D27459B7-8213-4395-AA77-ED859A3E5B3A' }], provideUserInput: 'thresholds' }),
  allow({ provideServices: 'all', providePersons: 'all', provideDevices: 'all', provideUserInput: 'full', provideDeviceID: true, provideStatusIcon: true }),
  allow({ provideServices: 'all', providePersons: 'all', provideDevices: 'all', provideAllAttributes: true }),
  allow({ provideServices: [{ type: 'occurrence-id', value: 't-tel' }], provideUnknownAttributes: [{ ns: FOO, name: 'top-level' }, { ns: FOO, name: 'status-ext' }] }),
];

test('idempotent: F(F(D)) = F(D) for every permission set, in memory and through the wire format', () => {
  for (const [i, p] of VARIANTS.entries()) {
    const once = applyTransformations(DOC, p);
    assert.deepEqual(applyTransformations(once, p), once, `variant ${i}`);
    const wire = serializePidf(once);
    assert.equal(serializePidf(applyTransformations(parsePidf(wire), p)), wire, `variant ${i} on the wire`);
    assert.equal(once.entity, DOC.entity);
  }
});

test('filtered tuples stay consistent: their facts are what a parser reads from their element', () => {
  for (const p of VARIANTS) {
    const out = applyTransformations(DOC, p);
    const reread = parsePidf(serializePidf(out));
    assert.deepEqual(
      reread.tuples.map(({ id, basic, contact, priority, timestamp }) => ({ id, basic, contact, priority, timestamp })),
      out.tuples.map(({ id, basic, contact, priority, timestamp }) => ({ id, basic, contact, priority, timestamp })),
    );
  }
  const t = applyTransformations(DOC, allow({ provideServices: 'all' })).tuples[0];
  assert.deepEqual({ id: t?.id, basic: t?.basic, contact: t?.contact, priority: t?.priority },
    { id: 't-sip', basic: 'open', contact: 'sip:alice@pc33.example.com', priority: 0.8 });
});

test('the input document is never modified', () => {
  const before = serializePidf(DOC);
  for (const p of VARIANTS) applyTransformations(DOC, p);
  assert.equal(serializePidf(DOC), before);
  assert.equal(serializePidf(parsePidf(PIDF)), before);
});

// ---------------------------------------------------------------------------------------------
// viewKey
// ---------------------------------------------------------------------------------------------

test('viewKey: equal for equal permissions however they were spelled or combined', () => {
  const a = allow({ provideServices: [{ type: 'class', value: 'biz' }, { type: 'service-uri', value: 'sip:alice@pc33.example.com' }], provideNote: true });
  const b = allow({ provideServices: [{ type: 'service-uri', value: 'SIP:alice@PC33.example.com' }, { type: 'class', value: 'biz' }, { type: 'class', value: 'biz' }], provideNote: true });
  assert.equal(viewKey(a), viewKey(b));
  // evaluated from two differently written rule sets
  const r1 = parsePresRules(ruleset(rule('x', { actions: sub('allow'), transformations: '<pr:provide-note>true</pr:provide-note><pr:provide-mood>true</pr:provide-mood>' })));
  const r2 = parsePresRules(ruleset(
    rule('y', { actions: sub('confirm'), transformations: '<pr:provide-mood>true</pr:provide-mood>' }),
    rule('z', { actions: sub('allow'), transformations: '<pr:provide-note>true</pr:provide-note><pr:provide-sphere>false</pr:provide-sphere>' }),
  ));
  assert.equal(viewKey(evaluate(r1, bob, NOW)), viewKey(evaluate(r2, carol, NOW)));
  // with provide-all-attributes the individual attribute permissions no longer matter
  assert.equal(viewKey(allow({ provideServices: 'all', provideAllAttributes: true })),
    viewKey(allow({ provideServices: 'all', provideAllAttributes: true, provideMood: true, provideUserInput: 'bare' })));
  assert.equal(viewKey(BLOCK_ALL), 'none');
  assert.equal(viewKey({ ...allow({ provideNote: true }), subHandling: 'confirm' }), 'none');
  assert.equal(viewKey({ ...allow({ provideServices: 'all' }), subHandling: 'polite-block' }), 'polite-block');
});

test('viewKey: short, printable, and different whenever a permission that shows something differs', () => {
  const k = viewKey(VARIANTS[7] as Permissions);
  assert.ok(k.length <= 40 && /^[!-~]+$/.test(k), k);
  assert.equal(viewKey(VARIANTS[7] as Permissions), k); // stable
  const base = allow({ provideServices: 'all' });
  const changes: Partial<Permissions>[] = [
    { provideNote: true }, { provideActivities: true }, { provideUserInput: 'bare' }, { provideAllAttributes: true },
    { provideServices: [{ type: 'class', value: 'biz' }] }, { providePersons: 'all' }, { provideDevices: [{ type: 'class', value: 'biz' }] },
    { provideUnknownAttributes: [{ ns: FOO, name: 'foo' }] }, { provideDeviceID: true },
  ];
  const keys = new Set([viewKey(base), ...changes.map((c) => viewKey({ ...base, ...c }))]);
  assert.equal(keys.size, changes.length + 1);
});

test('viewKey: equal keys give equal bodies; different bodies never share a key', () => {
  const bodies = VARIANTS.map((p) => serializePidf(applyTransformations(DOC, p)));
  for (let i = 0; i < VARIANTS.length; i++) {
    for (let j = 0; j < VARIANTS.length; j++) {
      const same = viewKey(VARIANTS[i] as Permissions) === viewKey(VARIANTS[j] as Permissions);
      if (same) assert.equal(bodies[i], bodies[j], `variants ${i} and ${j} share a key`);
      if (bodies[i] !== bodies[j]) assert.ok(!same, `variants ${i} and ${j} differ but share a key`);
    }
  }
});
