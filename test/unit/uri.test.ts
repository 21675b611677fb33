// One URI equality for every caller (src/formats/uri.ts): RFC 3261 §19.1.4 with its own examples,
// the address of record, the common-policy identity and the canonical form of RFC 4826.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  aorOf, canonicalOrSelf, canonicalSipUri, canonicalUri, identityKey, normalizeEscapes, sipUriEquivalent, uriEquivalent,
} from '../../src/formats/uri.js';
import { ResourceListsError, parseResourceLists } from '../../src/formats/resource-lists.js';

describe('RFC 3261 §19.1.4 examples', () => {
  it('equivalent URIs', () => {
    const equal: [string, string][] = [
      ['sip:%61lice@atlanta.com;transport=TCP', 'sip:alice@AtLanTa.CoM;Transport=tcp'],
      ['sip:carol@chicago.com', 'sip:carol@chicago.com;newparam=5'],
      ['sip:carol@chicago.com', 'sip:carol@chicago.com;security=on'],
      ['sip:carol@chicago.com;newparam=5', 'sip:carol@chicago.com;security=on'],
      ['sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com', 'sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com'],
      ['sip:alice@atlanta.com?subject=project%20x&priority=urgent', 'sip:alice@atlanta.com?priority=urgent&subject=project%20x'],
    ];
    for (const [a, b] of equal) {
      assert.ok(sipUriEquivalent(a, b), `${a} = ${b}`);
      assert.ok(sipUriEquivalent(b, a), `${b} = ${a}`);
      assert.ok(uriEquivalent(a, b), `${a} = ${b}`);
    }
  });
  it('URIs that are not equivalent', () => {
    const different: [string, string][] = [
      ['SIP:ALICE@AtLanTa.CoM;Transport=udp', 'sip:alice@AtLanTa.CoM;Transport=UDP'], // different usernames
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:5060'], // can resolve to different ports
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com;transport=udp'], // can resolve to different transports
      ['sip:bob@biloxi.com', 'sip:bob@biloxi.com:6000;transport=tcp'], // different port and transport
      ['sip:carol@chicago.com', 'sip:carol@chicago.com?Subject=next%20meeting'], // different header component
      ['sip:bob@phone21.boxesbybob.com', 'sip:bob@192.0.2.4'], // even though that's what phone21 resolves to
      ['sip:carol@chicago.com;security=on', 'sip:carol@chicago.com;security=off'], // equality is not transitive
      ['sip:alice@atlanta.com', 'sips:alice@atlanta.com'],
      ['sip:a%3Bb@atlanta.com', 'sip:a;b@atlanta.com'], // ';' is reserved: not equal to its escape
    ];
    for (const [a, b] of different) {
      assert.ok(!sipUriEquivalent(a, b), `${a} ≠ ${b}`);
      assert.ok(!sipUriEquivalent(b, a), `${b} ≠ ${a}`);
    }
  });
});

describe('one escape set', () => {
  it('decodes the escapes of unreserved characters (alphanum and mark), keeps the others upper case', () => {
    assert.equal(normalizeEscapes('a%21b%7e%2A%27%28%29%2d%5F%2e'), "a!b~*'()-_.");
    assert.equal(normalizeEscapes('a%3bb%20c%40'), 'a%3Bb%20c%40');
  });
  it('every form agrees that sip:a%21b@x is sip:a!b@x', () => {
    const a = 'sip:a%21b@example.test';
    const b = 'sip:a!b@example.test';
    assert.equal(aorOf(a), aorOf(b));
    assert.equal(identityKey(a).key, identityKey(b).key);
    assert.equal(canonicalUri(a), canonicalUri(b));
    assert.equal(canonicalSipUri(a), canonicalSipUri(b));
    assert.equal(canonicalOrSelf(a), canonicalOrSelf(b));
    assert.ok(uriEquivalent(a, b));
  });
  it('a resource list may not hold both spellings (RFC 4826 §3.4.5)', () => {
    assert.throws(() => parseResourceLists('<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list name="l">'
      + '<entry uri="sip:a%21b@example.test"/><entry uri="sip:a!b@example.test"/></list></resource-lists>'),
    (e: unknown) => e instanceof ResourceListsError && e.kind === 'uniqueness');
  });
});

describe('aorOf', () => {
  it('scheme sip, user and host, no port, parameters or headers (RFC 3261 §10.3)', () => {
    assert.equal(aorOf('sip:alice@Example.TEST:5060;transport=tcp?subject=x'), 'sip:alice@example.test');
    assert.equal(aorOf('sips:alice@example.test'), 'sip:alice@example.test');
    assert.equal(aorOf('sip:%61lice@example.test'), 'sip:alice@example.test');
    assert.equal(aorOf('sip:alice:secret@example.test'), 'sip:alice@example.test');
    assert.equal(aorOf('sip:example.test'), undefined);
    assert.equal(aorOf('tel:+1555'), undefined);
    assert.equal(aorOf('not a uri'), undefined);
  });
});

describe('identityKey', () => {
  it('keeps scheme and port, drops parameters, headers and password', () => {
    assert.deepEqual(identityKey('SIP:bob:pw@EXAMPLE.com:5070;transport=tcp?x=y'), { key: 'sip:bob@example.com:5070', domain: 'example.com' });
    assert.deepEqual(identityKey('tel:+1-212-555-1234;ext=1'), { key: 'tel:+12125551234', domain: undefined });
    assert.deepEqual(identityKey('nonsense'), { key: undefined, domain: undefined });
  });
});
