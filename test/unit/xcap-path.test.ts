// XCAP URIs (RFC 4825 §6): document selectors, node selectors, namespace bindings, and the
// path-traversal and encoding tricks a hostile client tries.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { NS } from '../../src/formats/xml.js';
import { XcapPathError, parseNamespaceBindings, parseNodeSelector, parseXcapPath } from '../../src/xcap/path.js';

const RL = NS.RESOURCE_LISTS;

function rejects(fn: () => unknown, status: 400 | 404): void {
  assert.throws(fn, (e: unknown) => e instanceof XcapPathError && e.status === status, `expected ${status}`);
}

describe('document selector', () => {
  test('users tree: AUID, decoded XUI, document', () => {
    const p = parseXcapPath('/resource-lists/users/sip:joe@example.com/index');
    assert.equal(p.auid, 'resource-lists');
    assert.equal(p.scope, 'users');
    assert.equal(p.xui, 'sip:joe@example.com');
    assert.equal(p.owner, 'sip:joe@example.com');
    assert.equal(p.document, 'index');
    assert.equal(p.nodeSelector, undefined);
    assert.equal(parseXcapPath('/resource-lists/users/sip%3Ajoe%40example.com/index').xui, 'sip:joe@example.com');
  });

  test('global tree', () => {
    const p = parseXcapPath('/xcap-caps/global/index');
    assert.equal(p.scope, 'global');
    assert.equal(p.owner, 'global');
    assert.equal(p.xui, undefined);
    assert.equal(p.document, 'index');
  });

  test('node selector after ~~ (also written %7E%7E), decoded', () => {
    const p = parseXcapPath('/resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d');
    assert.equal(p.nodeSelector, 'resource-lists/list[@name="l1"]');
    assert.equal(p.rawNodeSelector, 'resource-lists/list%5b@name=%22l1%22%5d');
    assert.equal(p.rawDocumentSelector, 'resource-lists/users/sip:joe@example.com/index');
    assert.equal(parseXcapPath('/a/users/x@y/d/%7E%7E/r').nodeSelector, 'r');
  });

  test('path traversal and smuggled separators are refused', () => {
    rejects(() => parseXcapPath('/resource-lists/users/../../etc/passwd'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/%2e%2e/index'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/..'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/./index'), 404);
    rejects(() => parseXcapPath('/resource-lists/users//index'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/index/'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b%2F..%2Fsip:c@d/index'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/in%5Cdex'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/index%00.xml'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/ind%0aex'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/%zzindex'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/%ff'), 400);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/index/~~/a%00'), 400);
  });

  test('structure: scope, depth, AUID syntax', () => {
    rejects(() => parseXcapPath('/resource-lists/people/sip:a@b/index'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b'), 404);
    rejects(() => parseXcapPath('/resource-lists/users/sip:a@b/dir/index'), 404);
    rejects(() => parseXcapPath('/resource-lists/global/dir/index'), 404);
    rejects(() => parseXcapPath('/resource-lists'), 404);
    rejects(() => parseXcapPath('/.hidden/global/index'), 404);
    rejects(() => parseXcapPath('relative/users/a/b'), 404);
    rejects(() => parseXcapPath('/a/users/x@y/d/~~'), 400);
  });
});

describe('namespace bindings (xmlns() in the query)', () => {
  test('several bindings, ^-escapes, percent-encoding', () => {
    const m = parseNamespaceBindings('xmlns(p=urn:x)xmlns(q=urn:a^(b^)c)%20xmlns(r%3Durn%3Ay)');
    assert.deepEqual([...m], [['p', 'urn:x'], ['q', 'urn:a(b)c'], ['r', 'urn:y']]);
  });
  test('malformed queries are 400', () => {
    for (const q of ['foo=bar', 'xmlns(p=urn:x', 'xmlns(=urn:x)', 'xmlns(p=)', 'xmlns(xml=urn:x)', 'xmlns(p=a(b))', 'xmlns(p=urn:x^z)']) {
      rejects(() => parseNamespaceBindings(q), 400);
    }
  });
});

describe('node selector (RFC 4825 §6.3)', () => {
  const ns = new Map([['rl', RL], ['x', 'urn:example:x']]);

  test('steps by name, position, attribute, position and attribute, wildcard', () => {
    const s = parseNodeSelector('resource-lists/list[2]/entry[@uri="sip:a@b"]/*[1][@id=\'z\']', RL);
    assert.equal(s.terminal, undefined);
    assert.equal(s.steps.length, 4);
    assert.deepEqual(s.steps[0]?.name, { any: false, ns: RL, local: 'resource-lists' });
    assert.equal(s.steps[1]?.position, 2);
    assert.equal(s.steps[1]?.attr, undefined);
    assert.deepEqual(s.steps[2]?.attr, { key: 'uri', value: 'sip:a@b' });
    assert.equal(s.steps[2]?.position, undefined);
    assert.deepEqual(s.steps[3]?.name, { any: true });
    assert.equal(s.steps[3]?.position, 1);
    assert.deepEqual(s.steps[3]?.attr, { key: 'id', value: 'z' });
  });

  test('prefixes come from the bindings; unprefixed attributes have no namespace', () => {
    const s = parseNodeSelector('rl:resource-lists/x:foo[@x:bar="1"]/@x:baz', 'urn:default', ns);
    assert.deepEqual(s.steps[0]?.name, { any: false, ns: RL, local: 'resource-lists' });
    assert.deepEqual(s.steps[1]?.attr, { key: '{urn:example:x}bar', value: '1' });
    assert.deepEqual(s.terminal, { kind: 'attribute', key: '{urn:example:x}baz', text: '@x:baz' });
    rejects(() => parseNodeSelector('nope:resource-lists', RL, ns), 400);
  });

  test('terminal selectors: attribute and namespace', () => {
    assert.deepEqual(parseNodeSelector('resource-lists/list[1]/@name', RL).terminal, { kind: 'attribute', key: 'name', text: '@name' });
    assert.deepEqual(parseNodeSelector('resource-lists/namespace::*', RL).terminal, { kind: 'namespace' });
  });

  test('attribute values may hold "/", "]" and references', () => {
    const s = parseNodeSelector('a/external[@anchor="http://x/y]z?q=1&amp;r=&quot;2&quot;"]', RL);
    assert.equal(s.steps.length, 2);
    assert.deepEqual(s.steps[1]?.attr, { key: 'anchor', value: 'http://x/y]z?q=1&r="2"' });
  });

  test('malformed selectors are 400', () => {
    for (const bad of [
      '', 'a//b', '/a', 'a/', 'a[0]', 'a[-1]', 'a[@b=c]', 'a[@b="c"][1]', 'a[1][2]', 'a[@b="c"', 'a[b]', 'a["x"]',
      'a[@b="<"]', 'a[@b="&bogus;"]', 'a[@b="&"]', '1a', 'a/@b/c', 'a/b[[1]]', 'a/ext::foo',
    ]) {
      rejects(() => parseNodeSelector(bad, RL), 400);
    }
    rejects(() => parseNodeSelector('a/'.repeat(40) + 'a', RL), 400);
  });
});
