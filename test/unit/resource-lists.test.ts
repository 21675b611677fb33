import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  ResourceListsError, flattenList, parseResourceLists, parseRlsServices,
  type ListResolver, type ResourceList, type ResourceListsErrorKind,
} from '../../src/formats/resource-lists.js';
import { canonicalSipUri } from '../../src/formats/uri.js';

// RFC 4826 §3.3: a resource-lists document with a nested list, an entry-ref and an external.
const RFC4826_LISTS = `<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"
 xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <list name="friends">
  <entry uri="sip:bill@example.com">
   <display-name>Bill Doe</display-name>
  </entry>
  <entry-ref ref="resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d"/>
  <list name="close-friends">
   <display-name>Close Friends</display-name>
   <entry uri="sip:joe@example.com">
    <display-name>Joe Smith</display-name>
   </entry>
   <entry uri="sip:nancy@example.com">
    <display-name>Nancy Gross</display-name>
   </entry>
   <external anchor="http://xcap.example.org/resource-lists/users/sip:a@example.org/index/~~/resource-lists/list%5b@name=%22mkting%22%5d">
     <display-name>Marketing</display-name>
    </external>
  </list>
 </list>
</resource-lists>`;

// RFC 4826 §4.3: an rls-services document, one service by reference, one with an inline list.
const RFC4826_SERVICES = `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"
   xmlns:rl="urn:ietf:params:xml:ns:resource-lists"
   xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <service uri="sip:mybuddies@example.com">
  <resource-list>http://xcap.example.com/resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d</resource-list>
  <packages>
   <package>presence</package>
  </packages>
 </service>
 <service uri="sip:marketing@example.com">
   <list name="marketing">
     <rl:entry uri="sip:joe@example.com"/>
     <rl:entry uri="sip:sudhir@example.com"/>
   </list>
   <packages>
     <package>presence</package>
   </packages>
 </service>
</rls-services>`;

const RL = (body: string): string => `<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists">${body}</resource-lists>`;
const RLS = (body: string): string =>
  `<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">${body}</rls-services>`;

function refused(parse: () => unknown, kind: ResourceListsErrorKind, re: RegExp): void {
  assert.throws(parse, (e: unknown) => e instanceof ResourceListsError && e.kind === kind && re.test(e.message));
}

test('RFC 4826 §3.3 resource-lists example parses', () => {
  const lists = parseResourceLists(RFC4826_LISTS);
  assert.deepEqual(lists, [{
    name: 'friends',
    items: [
      { kind: 'entry', uri: 'sip:bill@example.com', displayName: 'Bill Doe' },
      { kind: 'entry-ref', ref: 'resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22list1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d' },
      {
        name: 'close-friends',
        displayName: 'Close Friends',
        items: [
          { kind: 'entry', uri: 'sip:joe@example.com', displayName: 'Joe Smith' },
          { kind: 'entry', uri: 'sip:nancy@example.com', displayName: 'Nancy Gross' },
          {
            kind: 'external',
            anchor: 'http://xcap.example.org/resource-lists/users/sip:a@example.org/index/~~/resource-lists/list%5b@name=%22mkting%22%5d',
            displayName: 'Marketing',
          },
        ],
      },
    ],
  }]);
});

test('RFC 4826 §4.3 rls-services example parses', () => {
  const services = parseRlsServices(RFC4826_SERVICES);
  assert.deepEqual(services, [
    {
      uri: 'sip:mybuddies@example.com',
      resourceListRef: 'http://xcap.example.com/resource-lists/users/sip:joe@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d',
      packages: ['presence'],
    },
    {
      uri: 'sip:marketing@example.com',
      list: {
        name: 'marketing',
        items: [{ kind: 'entry', uri: 'sip:joe@example.com' }, { kind: 'entry', uri: 'sip:sudhir@example.com' }],
      },
      packages: ['presence'],
    },
  ]);
});

test('rls-services: packages optional, entries in either namespace, several top-level lists', () => {
  const s = parseRlsServices(RLS(`
    <service uri="sip:any@example.com"><list><entry uri="sip:a@example.com"/><rl:entry uri="sip:b@example.com"/>
      <rl:list name="sub"><rl:entry uri="sip:c@example.com"/></rl:list></list></service>
    <service uri="sip:none@example.com"><resource-list>https://xcap.example.com/x</resource-list><packages/></service>`));
  assert.equal(s[0]?.packages, undefined); // absent: any event package (RFC 4826 §4.2)
  assert.deepEqual(s[0]?.list?.items.map((i) => ('kind' in i ? i.kind : `list ${i.name ?? ''}`)), ['entry', 'entry', 'list sub']);
  assert.deepEqual(s[1]?.packages, []);
  const multi = parseResourceLists(RL('<list name="a"/><list name="b"><display-name xml:lang="en">B</display-name></list><list/>'));
  assert.deepEqual(multi, [{ name: 'a', items: [] }, { name: 'b', displayName: 'B', items: [] }, { items: [] }]);
});

test('uniqueness constraints of RFC 4826 §3.4 and §4.4.5', () => {
  refused(() => parseResourceLists(RL('<list name="a"/><list name="a"/>')), 'uniqueness', /duplicate list name a/);
  refused(() => parseResourceLists(RL('<list name="top"><list name="x"/><list name="x"/></list>')), 'uniqueness', /duplicate list name x/);
  // Entry URIs compare after canonicalization: scheme/host case, needless escapes, param order.
  refused(() => parseResourceLists(RL('<list><entry uri="sip:bob@example.com"/><entry uri="SIP:bob@EXAMPLE.com"/></list>')),
    'uniqueness', /duplicate entry/);
  refused(() => parseResourceLists(RL('<list><entry uri="sip:bob@example.com"/><entry uri="sip:%62ob@example.com"/></list>')),
    'uniqueness', /duplicate entry/);
  refused(() => parseResourceLists(RL('<list><entry uri="sip:b@h;transport=tcp;lr"/><entry uri="sip:b@h;lr;transport=TCP"/></list>')),
    'uniqueness', /duplicate entry/);
  refused(() => parseResourceLists(RL('<list><entry uri="sip:b@h?subject=x"/><entry uri="sip:b@h"/></list>')), 'uniqueness', /duplicate entry/);
  refused(() => parseResourceLists(RL('<list><entry-ref ref="a/b"/><entry-ref ref="a/b"/></list>')), 'uniqueness', /duplicate entry-ref/);
  refused(() => parseResourceLists(RL('<list><external anchor="http://x.example/l"/><external anchor="http://x.example/l"/></list>')),
    'uniqueness', /duplicate external/);
  refused(() => parseRlsServices(RLS('<service uri="sip:s@example.com"><list/></service><service uri="sip:s@Example.com"><list/></service>')),
    'uniqueness', /duplicate service/);
  // Allowed: user parts differ in case (they are case-sensitive), same names or URIs under different parents,
  // an entry and an entry-ref side by side.
  const ok = parseResourceLists(RL(`
    <list name="a"><entry uri="sip:Bob@example.com"/><entry uri="sip:bob@example.com"/><list name="x"/></list>
    <list name="b"><entry uri="sip:bob@example.com"/><list name="x"/><list><entry uri="sip:bob@example.com"/></list></list>`));
  assert.equal(ok.length, 2);
});

test('schema constraints', () => {
  refused(() => parseResourceLists(RL('<list><entry/></list>')), 'schema', /entry without uri/);
  refused(() => parseResourceLists(RL('<list><entry uri=" "/></list>')), 'schema', /entry without uri/);
  refused(() => parseResourceLists(RL('<list><entry-ref/></list>')), 'schema', /entry-ref without ref/);
  refused(() => parseResourceLists(RL('<list><entry-ref ref="http://x.example/a"/></list>')), 'schema', /relative to the XCAP root/);
  refused(() => parseResourceLists(RL('<list><entry-ref ref="//x.example/a"/></list>')), 'schema', /relative to the XCAP root/);
  refused(() => parseResourceLists(RL('<list><external/></list>')), 'schema', /external without anchor/);
  refused(() => parseResourceLists(RL('<list><external anchor="resource-lists/users/x"/></list>')), 'schema', /absolute HTTP URI/);
  refused(() => parseResourceLists(RL('<list><external anchor="sip:list@example.com"/></list>')), 'schema', /absolute HTTP URI/);
  refused(() => parseResourceLists('<resource-lists/>'), 'schema', /root element/);
  refused(() => parseResourceLists(RLS('')), 'schema', /root element/);
  refused(() => parseRlsServices(RL('')), 'schema', /root element/);
  refused(() => parseRlsServices(RLS('<service><list/></service>')), 'schema', /service without uri/);
  refused(() => parseRlsServices(RLS('<service uri="sip:s@h"/>')), 'schema', /exactly one/);
  refused(() => parseRlsServices(RLS('<service uri="sip:s@h"><list/><resource-list>http://x.example/l</resource-list></service>')),
    'schema', /exactly one/);
  refused(() => parseRlsServices(RLS('<service uri="sip:s@h"><resource-list>not a uri</resource-list></service>')), 'schema', /absolute HTTP URI/);
  refused(() => parseResourceLists('<resource-lists'), 'xml', /malformed/);
  refused(() => parseResourceLists('<!DOCTYPE x [<!ENTITY e "x">]><resource-lists/>'), 'xml', /DOCTYPE/);
});

test('canonicalSipUri', () => {
  const table: [string, string][] = [
    ['sip:alice@example.com', 'sip:alice@example.com'],
    ['  SIP:alice@EXAMPLE.COM  ', 'sip:alice@example.com'],
    ['sips:Alice@Example.com', 'sips:Alice@example.com'], // the user part stays case-sensitive
    ['sip:%61lice@example.com', 'sip:alice@example.com'], // needless escape
    ['sip:al%2dice@example.com', 'sip:al-ice@example.com'],
    ['sip:a%3bb@example.com', 'sip:a%3Bb@example.com'], // ';' is reserved: stays escaped, hex uppercased
    ['sip:a%20b@example.com', 'sip:a%20b@example.com'],
    ['sip:alice:SeCreT%41@example.com', 'sip:alice:SeCreTA@example.com'],
    ['sip:alice@example.com;transport=TCP;Lr', 'sip:alice@example.com;lr;transport=tcp'],
    ['sip:alice@example.com;user=phone;maddr=239.255.255.1;ttl=15', 'sip:alice@example.com;maddr=239.255.255.1;ttl=15;user=phone'],
    ['sip:alice@example.com;foo=%41b', 'sip:alice@example.com;foo=ab'],
    ['sip:alice@example.com;Foo=%3b%7e', 'sip:alice@example.com;foo=%3B~'],
    ['sip:alice@example.com?subject=hi&priority=urgent', 'sip:alice@example.com'], // headers dropped
    ['sip:alice@example.com;transport=udp?x=y', 'sip:alice@example.com;transport=udp'],
    ['sip:alice@example.com:5060', 'sip:alice@example.com:5060'], // an explicit default port is significant
    ['sip:alice@example.com:05060', 'sip:alice@example.com:5060'],
    ['sip:Example.COM', 'sip:example.com'],
    ['sip:[2001:DB8::1]:5061;transport=TLS', 'sip:[2001:db8::1]:5061;transport=tls'],
    ['sip:+1-212-555-1212:1234@gateway.com;user=phone', 'sip:+1-212-555-1212:1234@gateway.com;user=phone'],
    ['sip:a;b?c@example.com', 'sip:a;b?c@example.com'], // ';' and '?' are legal in the user part
    ['sip:alice@example.com;;lr;', 'sip:alice@example.com;lr'],
    ['tel:+1-201-555-0123', 'tel:+1-201-555-0123'], // not SIP: trimmed only
    ['  TEL:+1555 ', 'TEL:+1555'],
    ['pres:alice@EXAMPLE.com', 'pres:alice@EXAMPLE.com'],
    ['sip:', 'sip:'], // malformed: returned trimmed
    ['sip:alice@host:port', 'sip:alice@host:port'],
    ['sip:alice@[::1', 'sip:alice@[::1'],
  ];
  for (const [input, expected] of table) assert.equal(canonicalSipUri(input), expected, input);
  // Equivalent URIs agree.
  assert.equal(canonicalSipUri('sip:%41lice@Atlanta.com;Transport=UDP;lr'), canonicalSipUri('SIP:Alice@atlanta.COM;lr;transport=udp'));
  assert.notEqual(canonicalSipUri('sip:alice@atlanta.com'), canonicalSipUri('sips:alice@atlanta.com'));
  assert.notEqual(canonicalSipUri('sip:alice@atlanta.com'), canonicalSipUri('sip:ALICE@atlanta.com'));
});

// ---------------------------------------------------------------------------------------------
// flattenList
// ---------------------------------------------------------------------------------------------

const entry = (uri: string, displayName?: string): ResourceList['items'][number] =>
  (displayName === undefined ? { kind: 'entry', uri } : { kind: 'entry', uri, displayName });
const external = (anchor: string): ResourceList['items'][number] => ({ kind: 'external', anchor });
const ref = (r: string, displayName?: string): ResourceList['items'][number] =>
  (displayName === undefined ? { kind: 'entry-ref', ref: r } : { kind: 'entry-ref', ref: r, displayName });

/** A resolver over a fixed map, recording each call. */
function resolver(docs: Record<string, ResourceList>): { resolve: ListResolver; calls: string[] } {
  const calls: string[] = [];
  const resolve: ListResolver = async ({ kind, target }) => {
    calls.push(`${kind} ${target}`);
    await Promise.resolve();
    return Object.prototype.hasOwnProperty.call(docs, target) ? docs[target] : undefined;
  };
  return { resolve, calls };
}

test('flatten: nested lists, entry-ref and external, depth-first in document order', async () => {
  const { resolve, calls } = resolver({
    'resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d':
      { items: [entry('sip:petri@example.com', 'Petri')] },
    'http://xcap.example.org/mkting': { name: 'mkting', items: [entry('sip:m1@example.org', 'M1'), { name: 'deep', items: [entry('sip:m2@example.org')] }] },
  });
  const list: ResourceList = {
    name: 'friends',
    items: [
      entry('sip:bill@example.com', 'Bill Doe'),
      ref('resource-lists/users/sip:bill@example.com/index/~~/resource-lists/list%5b@name=%22l1%22%5d/entry%5b@uri=%22sip:petri@example.com%22%5d'),
      { name: 'close-friends', items: [entry('sip:joe@example.com', 'Joe Smith'), external('http://xcap.example.org/mkting')] },
      { items: [entry('sip:anon@example.com')] },
    ],
  };
  const r = await flattenList(list, resolve);
  assert.deepEqual(r, {
    members: [
      { uri: 'sip:bill@example.com', displayName: 'Bill Doe', path: [] },
      { uri: 'sip:petri@example.com', displayName: 'Petri', path: [] },
      { uri: 'sip:joe@example.com', displayName: 'Joe Smith', path: ['close-friends'] },
      { uri: 'sip:m1@example.org', displayName: 'M1', path: ['close-friends', 'http://xcap.example.org/mkting'] },
      { uri: 'sip:m2@example.org', path: ['close-friends', 'http://xcap.example.org/mkting', 'deep'] },
      { uri: 'sip:anon@example.com', path: ['#4'] },
    ],
    errors: [],
    loop: false,
    truncated: false,
  });
  assert.equal(calls.length, 2);
});

test('flatten: a loop a -> b -> a stops that branch and is reported', async () => {
  const { resolve, calls } = resolver({
    'http://x.example/a': { name: 'a', items: [entry('sip:a1@example.com'), external('http://x.example/b')] },
    'http://x.example/b': { name: 'b', items: [entry('sip:b1@example.com'), external('http://x.example/a'), entry('sip:b2@example.com')] },
  });
  const r = await flattenList({ items: [external('http://x.example/a'), entry('sip:after@example.com')] }, resolve);
  assert.equal(r.loop, true);
  assert.deepEqual(r.members.map((m) => m.uri), ['sip:a1@example.com', 'sip:b1@example.com', 'sip:b2@example.com', 'sip:after@example.com']);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0] ?? '', /^loop: external http:\/\/x.example\/a/);
  assert.deepEqual(calls, ['external http://x.example/a', 'external http://x.example/b']); // a is not fetched twice
});

test('flatten: anchors are compared as URLs, and rootAnchor catches a list that includes itself', async () => {
  const { resolve } = resolver({ 'HTTP://X.EXAMPLE:80/a': { items: [entry('sip:x@example.com')] } });
  const self: ResourceList = { items: [entry('sip:top@example.com'), external('HTTP://X.EXAMPLE:80/a')] };
  const r = await flattenList(self, resolve, { rootAnchor: 'http://x.example/a' });
  assert.equal(r.loop, true);
  assert.deepEqual(r.members.map((m) => m.uri), ['sip:top@example.com']);
});

test('flatten: the same external list under two parents is not a loop and is fetched once', async () => {
  const { resolve, calls } = resolver({ 'http://x.example/shared': { items: [entry('sip:s@example.com')] } });
  const r = await flattenList({
    items: [
      { name: 'one', items: [external('http://x.example/shared')] },
      { name: 'two', items: [external('http://x.example/shared'), entry('sip:t@example.com')] },
    ],
  }, resolve);
  assert.equal(r.loop, false);
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.members, [
    { uri: 'sip:s@example.com', path: ['one', 'http://x.example/shared'] },
    { uri: 'sip:t@example.com', path: ['two'] },
  ]);
  assert.equal(calls.length, 1);
});

test('flatten: unresolvable references are skipped and reported, rejections included', async () => {
  const resolve: ListResolver = async ({ target }) => {
    if (target === 'http://x.example/boom') throw new Error('HTTP 503');
    return undefined;
  };
  const r = await flattenList({
    items: [entry('sip:a@example.com'), ref('missing/ref'), external('http://x.example/boom'), entry('sip:b@example.com')],
  }, resolve);
  assert.deepEqual(r.members.map((m) => m.uri), ['sip:a@example.com', 'sip:b@example.com']);
  assert.equal(r.loop, false);
  assert.deepEqual(r.errors, ['unresolvable entry-ref missing/ref', 'unresolvable external http://x.example/boom: HTTP 503']);
});

test('flatten: duplicate URIs appear once, the first occurrence with its display name', async () => {
  const { resolve } = resolver({ 'http://x.example/l': { items: [entry('sip:bob@EXAMPLE.com', 'Robert (remote)'), entry('sip:new@example.com')] } });
  const r = await flattenList({
    items: [
      entry('sip:bob@example.com', 'Bob'),
      { name: 'sub', items: [entry('SIP:bob@example.com;transport=tcp'), entry('SIP:%62ob@Example.com', 'Bobby')] },
      external('http://x.example/l'),
      entry('tel:+15551234'),
      entry(' tel:+15551234 ', 'again'),
    ],
  }, resolve);
  assert.deepEqual(r.members, [
    { uri: 'sip:bob@example.com', displayName: 'Bob', path: [] },
    { uri: 'SIP:bob@example.com;transport=tcp', path: ['sub'] }, // a parameter makes it a different URI
    { uri: 'sip:new@example.com', path: ['http://x.example/l'] },
    { uri: 'tel:+15551234', path: [] },
  ]);
});

test('flatten: an entry-ref display name replaces the referenced entry\'s', async () => {
  const { resolve } = resolver({ 'r/1': { items: [entry('sip:p@example.com', 'Original')] }, 'r/2': { items: [entry('sip:q@example.com', 'Kept')] } });
  const r = await flattenList({ items: [ref('r/1', 'My label'), ref('r/2')] }, resolve);
  assert.deepEqual(r.members, [
    { uri: 'sip:p@example.com', displayName: 'My label', path: [] },
    { uri: 'sip:q@example.com', displayName: 'Kept', path: [] },
  ]);
});

test('flatten: maxMembers bounds the result and stops fetching', async () => {
  const { resolve, calls } = resolver({ 'http://x.example/more': { items: [entry('sip:z@example.com')] } });
  const items = Array.from({ length: 10 }, (_, i) => entry(`sip:u${i}@example.com`));
  const list: ResourceList = { items: [...items, entry('sip:u0@example.com'), external('http://x.example/more')] };
  const r = await flattenList(list, resolve, { maxMembers: 4, maxDepth: 16 });
  assert.equal(r.members.length, 4);
  assert.deepEqual(r.members.map((m) => m.uri), ['sip:u0@example.com', 'sip:u1@example.com', 'sip:u2@example.com', 'sip:u3@example.com']);
  assert.equal(r.truncated, true);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0] ?? '', /member limit 4/);
  assert.deepEqual(calls, []);
  // Exactly at the limit is not truncation.
  const exact = await flattenList({ items: items.slice(0, 4) }, resolve, { maxMembers: 4, maxDepth: 16 });
  assert.equal(exact.truncated, false);
  assert.deepEqual(exact.errors, []);
  // The default is 10000.
  const big = await flattenList({ items: Array.from({ length: 10005 }, (_, i) => entry(`sip:n${i}@example.com`)) }, resolve);
  assert.equal(big.members.length, 10000);
  assert.equal(big.truncated, true);
});

test('flatten: maxDepth bounds nesting, local and by reference', async () => {
  // Ten levels of local nesting.
  let deep: ResourceList = { name: 'l10', items: [entry('sip:bottom@example.com')] };
  for (let i = 9; i >= 1; i--) deep = { name: `l${i}`, items: [entry(`sip:at${i}@example.com`), deep] };
  const none = resolver({}).resolve;
  const r = await flattenList({ items: [deep] }, none, { maxMembers: 100, maxDepth: 3 });
  assert.deepEqual(r.members.map((m) => m.uri), ['sip:at1@example.com', 'sip:at2@example.com', 'sip:at3@example.com']);
  assert.equal(r.errors.length, 1);
  assert.match(r.errors[0] ?? '', /list l4 nested deeper than 3/);
  assert.equal((await flattenList({ items: [deep] }, none)).members.length, 10); // default 16

  // An endless chain of distinct external lists (each names the next) stops at maxDepth.
  let fetched = 0;
  const chain: ListResolver = async ({ target }) => {
    fetched++;
    const n = Number(target.split('/').pop());
    return { items: [entry(`sip:c${n}@example.com`), external(`http://x.example/${n + 1}`)] };
  };
  const c = await flattenList({ items: [external('http://x.example/1')] }, chain, { maxMembers: 1000, maxDepth: 5 });
  assert.equal(fetched, 5);
  assert.equal(c.members.length, 5);
  assert.match(c.errors[0] ?? '', /nested deeper than 5/);
});
