// IM rules (im-rules usage): parsing, RFC 4745 §10 combining of <im-handling>, the identity, sphere
// and validity conditions, and the authorizer's default, fail-closed and change behaviour.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseImRules } from '../../src/formats/im-rules.js';
import { PolicyError } from '../../src/formats/pres-rules.js';
import { evaluateImRules } from '../../src/policy/im-rules.js';
import { ImRulesAuthorizer } from '../../src/im/rules-authorizer.js';
import { imRulesUsage } from '../../src/xcap/usage-im-rules.js';
import { xcapCapsDocument } from '../../src/xcap/usages.js';
import { parseXml } from '../../src/formats/xml.js';
import { silentLogger } from '../../src/log.js';

const doc = (rules: string): string =>
  `<?xml version="1.0"?><cp:ruleset xmlns="urn:herald:params:xml:ns:im-rules" xmlns:cp="urn:ietf:params:xml:ns:common-policy">${rules}</cp:ruleset>`;
const rule = (id: string, conditions: string, handling?: string): string =>
  `<cp:rule id="${id}"><cp:conditions>${conditions}</cp:conditions><cp:actions>${handling ? `<im-handling>${handling}</im-handling>` : ''}</cp:actions></cp:rule>`;
const one = (id: string): string => `<cp:identity><cp:one id="${id}"/></cp:identity>`;
const NOW = new Date('2026-12-02T01:00:00Z');
const ALICE = { uri: 'sip:alice@example.test' };
const decide = (xml: string, who: { uri: string; anonymous?: boolean } = ALICE, sphere?: string, now = NOW) => evaluateImRules(parseImRules(doc(xml)), who, now, sphere);

describe('im-rules combining (RFC 4745 §10)', () => {
  it('one matching rule: its handling', () => {
    for (const h of ['allow', 'polite-block', 'block'] as const) assert.equal(decide(rule('r', one(ALICE.uri), h)), h);
  });
  it('no rule matches: block (no permission at all)', () => {
    assert.equal(decide(rule('r', one('sip:carol@example.test'), 'allow')), 'block');
    assert.equal(decide(''), 'block', 'an empty ruleset');
  });
  it('a matching rule that grants nothing blocks', () => assert.equal(decide(rule('r', one(ALICE.uri))), 'block'));
  it('several match: the most permissive wins (allow > polite-block > block), whatever the order', () => {
    const a = rule('a', one(ALICE.uri), 'allow');
    const p = rule('p', '<cp:identity><cp:many/></cp:identity>', 'polite-block');
    const b = rule('b', '', 'block');
    for (const order of [[a, p, b], [b, p, a], [p, b, a]]) assert.equal(decide(order.join('')), 'allow');
    assert.equal(decide(p + b), 'polite-block');
    assert.equal(decide(b + rule('n', one(ALICE.uri))), 'block', 'a rule without action adds nothing');
    assert.equal(decide(rule('n', one(ALICE.uri)) + p), 'polite-block', 'a rule without action lowers nothing');
  });
  it('two <im-handling> in one rule: the larger', () =>
    assert.equal(decide(`<cp:rule id="r"><cp:actions><im-handling>block</im-handling><im-handling>allow</im-handling></cp:actions></cp:rule>`), 'allow'));
  it('a rule without conditions applies to everyone, anonymous senders too', () => {
    assert.equal(decide(`<cp:rule id="r"><cp:actions><im-handling>polite-block</im-handling></cp:actions></cp:rule>`, { uri: '', anonymous: true }), 'polite-block');
  });
});

describe('im-rules conditions', () => {
  it('identity: one (equivalent spellings match), many, many domain, except id, except domain', () => {
    assert.equal(decide(rule('r', one('sip:alice@EXAMPLE.test'), 'allow')), 'allow');
    assert.equal(decide(rule('r', '<cp:identity><cp:many/></cp:identity>', 'allow')), 'allow');
    assert.equal(decide(rule('r', '<cp:identity><cp:many domain="example.test"/></cp:identity>', 'allow')), 'allow');
    assert.equal(decide(rule('r', '<cp:identity><cp:many domain="other.test"/></cp:identity>', 'allow')), 'block');
    assert.equal(decide(rule('r', `<cp:identity><cp:many domain="example.test"><cp:except id="${ALICE.uri}"/></cp:many></cp:identity>`, 'allow')), 'block');
    assert.equal(decide(rule('r', '<cp:identity><cp:many><cp:except domain="example.test"/></cp:many></cp:identity>', 'allow')), 'block');
    assert.equal(decide(rule('r', '<cp:identity><cp:many><cp:except domain="xmpp.test"/></cp:many></cp:identity>', 'allow')), 'allow');
  });
  it('a Jabber sender is known by its RFC 7247 mapping (sip:juliet@xmpp.test)', () => {
    assert.equal(decide(rule('r', '<cp:identity><cp:many domain="xmpp.test"/></cp:identity>', 'allow'), { uri: 'sip:juliet@xmpp.test' }), 'allow');
  });
  it('an anonymous sender matches only an empty <identity/>', () => {
    const anon = { uri: '', anonymous: true };
    assert.equal(decide(rule('r', '<cp:identity><cp:many/></cp:identity>', 'allow'), anon), 'block');
    assert.equal(decide(rule('r', '<cp:identity/>', 'polite-block'), anon), 'polite-block');
    assert.equal(decide(rule('r', '<cp:identity/>', 'allow')), 'block', 'an authenticated sender does not');
  });
  it("sphere: the recipient's current sphere, tokens OR-ed, case-insensitive; unknown sphere matches nothing", () => {
    const r = rule('r', '<cp:sphere value="work meeting"/>', 'allow');
    assert.equal(decide(r, ALICE, 'work'), 'allow');
    assert.equal(decide(r, ALICE, 'Meeting'), 'allow');
    assert.equal(decide(r, ALICE, 'home'), 'block');
    assert.equal(decide(r, ALICE, undefined), 'block');
  });
  it('validity: from inclusive, until exclusive, any interval', () => {
    const r = rule('r', '<cp:validity><cp:from>2026-12-02T00:00:00Z</cp:from><cp:until>2026-12-02T01:00:00Z</cp:until><cp:from>2026-12-03T00:00:00+01:00</cp:from><cp:until>2026-12-03T02:00:00+01:00</cp:until></cp:validity>', 'allow');
    assert.equal(decide(r, ALICE, undefined, new Date('2026-12-02T00:00:00Z')), 'allow');
    assert.equal(decide(r, ALICE, undefined, new Date('2026-12-02T00:59:59Z')), 'allow');
    assert.equal(decide(r, ALICE, undefined, new Date('2026-12-02T01:00:00Z')), 'block');
    assert.equal(decide(r, ALICE, undefined, new Date('2026-12-02T23:30:00Z')), 'allow', 'second interval, in UTC');
  });
  it('all conditions of a rule must hold', () => {
    const r = rule('r', `${one(ALICE.uri)}<cp:sphere value="work"/>`, 'allow');
    assert.equal(decide(r, ALICE, 'work'), 'allow');
    assert.equal(decide(r, ALICE, 'home'), 'block');
    assert.equal(decide(r, { uri: 'sip:bob@example.test' }, 'work'), 'block');
  });
  it('a condition not understood is FALSE', () => {
    assert.equal(decide(rule('r', '<x:whatever xmlns:x="urn:example:x"/>', 'allow')), 'block');
  });
});

describe('im-rules documents', () => {
  it('refused: bad handling, duplicate ids, not a ruleset, entities', () => {
    assert.throws(() => parseImRules(doc(rule('r', '', 'maybe'))), PolicyError);
    assert.throws(() => parseImRules(doc(rule('r', '', 'allow') + rule('r', '', 'block'))), PolicyError);
    assert.throws(() => parseImRules('<x/>'), PolicyError);
    assert.throws(() => parseImRules('<!DOCTYPE x [<!ENTITY a "b">]><x/>'), PolicyError);
  });
  it('pres-rules actions in an im-rules document grant nothing here', () => {
    assert.equal(decide('<cp:rule id="r"><cp:actions><sub-handling xmlns="urn:ietf:params:xml:ns:pres-rules">allow</sub-handling></cp:actions></cp:rule>'), 'block');
  });
  it('the XCAP usage validates the schema (409 for a bad im-handling) and accepts the README sample', () => {
    assert.doesNotThrow(() => imRulesUsage.validate(parseXml(doc(rule('r', one(ALICE.uri), 'allow')))));
    assert.throws(() => imRulesUsage.validate(parseXml(doc(rule('r', one(ALICE.uri), 'perhaps')))));
    assert.equal(imRulesUsage.auid, 'im-rules');
    assert.equal(imRulesUsage.mime, 'application/auth-policy+xml');
  });
  it('xcap-caps lists the AUID and its namespace (RFC 4825 §12)', () => {
    assert.match(xcapCapsDocument(), /<auid>im-rules<\/auid>/);
    assert.match(xcapCapsDocument(), /<namespace>urn:herald:params:xml:ns:im-rules<\/namespace>/);
  });
});

describe('ImRulesAuthorizer', () => {
  const source = (docs: Map<string, string[] | Error>) => {
    const listeners: ((o: string) => void)[] = [];
    return {
      load: (o: string) => {
        const d = docs.get(o);
        return d instanceof Error ? Promise.reject(d) : Promise.resolve(d ?? []);
      },
      onChange: (l: (o: string) => void) => void listeners.push(l),
      change: (o: string) => listeners.forEach((l) => l(o)),
    };
  };
  const BOB = 'sip:bob@example.test';
  it('no document: the default; unreadable: block; a change is read again', async () => {
    const docs = new Map<string, string[] | Error>([['sip:broken@example.test', new Error('down')], ['sip:garbled@example.test', ['<nope']]]);
    const src = source(docs);
    const a = new ImRulesAuthorizer(src, { default: 'polite-block', sphere: () => undefined }, silentLogger);
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'polite-block');
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, 'sip:broken@example.test'), 'block');
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, 'sip:garbled@example.test'), 'block');
    docs.set(BOB, [doc(rule('r', one(ALICE.uri), 'allow'))]);
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'polite-block', 'kept until the source says it changed');
    src.change(BOB);
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'allow');
  });
  it('a user writing to their own address is not stopped by their own rules', async () => {
    const a = new ImRulesAuthorizer(source(new Map([[BOB, [doc('')]]])), { default: 'allow', sphere: () => undefined }, silentLogger);
    assert.equal(await a.decide({ uri: BOB, anonymous: false }, BOB), 'allow');
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'block');
  });
  it("the recipient's sphere and the clock come from outside", async () => {
    const src = source(new Map([[BOB, [doc(rule('r', '<cp:sphere value="work"/><cp:validity><cp:from>2026-01-01T00:00:00Z</cp:from><cp:until>2027-01-01T00:00:00Z</cp:until></cp:validity>', 'allow'))]]]));
    let sphere: string | undefined = 'work';
    let now = NOW;
    const a = new ImRulesAuthorizer(src, { default: 'allow', sphere: () => sphere, now: () => now }, silentLogger);
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'allow');
    sphere = 'home';
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'block');
    sphere = 'work';
    now = new Date('2027-02-01T00:00:00Z');
    assert.equal(await a.decide({ ...ALICE, anonymous: false }, BOB), 'block');
  });
});
