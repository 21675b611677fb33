// The XCAP document store: whole documents, elements and attributes through node selectors,
// re-validation with rollback, uniqueness constraints (RFC 4826), ETags and change events.
import { beforeEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { CT } from '../../src/formats/content-types.js';
import { silentLogger } from '../../src/log.js';
import { Store, type Collection } from '../../src/store/store.js';
import { XcapDocuments, type StoredXcapDoc } from '../../src/xcap/documents.js';
import { XcapError, xcapErrorBody, type XcapCondition } from '../../src/xcap/errors.js';
import { parseXcapPath } from '../../src/xcap/path.js';
import { embeddedRulesSource } from '../../src/xcap/rules-source.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const RL_NS = 'urn:ietf:params:xml:ns:resource-lists';

const LISTS = `<?xml version="1.0" encoding="UTF-8"?>
<resource-lists xmlns="${RL_NS}">
  <list name="friends">
    <entry uri="sip:bob@example.test"><display-name>Bob</display-name></entry>
    <entry uri="sip:carol@example.test"/>
  </list>
  <list name="work"/>
</resource-lists>`;

const rls = (...uris: string[]): string =>
  `<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="${RL_NS}">` +
  uris.map((u) => `<service uri="${u}"><list name="l"><rl:entry uri="sip:x@example.test"/></list><packages><package>presence</package></packages></service>`).join('') +
  '</rls-services>';

const RULES = `<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy" xmlns:pr="urn:ietf:params:xml:ns:pres-rules">
  <cp:rule id="a"><cp:conditions><cp:identity><cp:one id="${BOB}"/></cp:identity></cp:conditions>
    <cp:actions><pr:sub-handling>allow</pr:sub-handling></cp:actions>
    <cp:transformations><pr:provide-services><pr:all-services/></pr:provide-services><pr:provide-note>true</pr:provide-note></cp:transformations></cp:rule>
</cp:ruleset>`;

/** A path below the XCAP root, selectors written readably and encoded here. */
function at(auid: string, owner: string, doc: string, selector?: string, query?: string): ReturnType<typeof parseXcapPath> {
  const base = owner === 'global' ? `/${auid}/global/${doc}` : `/${auid}/users/${owner}/${doc}`;
  return parseXcapPath(selector === undefined ? base : `${base}/~~/${encodeURI(selector).replace(/\?/g, '%3F')}`, query);
}

async function rejectsWith(p: Promise<unknown>, status: number, kind?: XcapCondition['kind']): Promise<XcapError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof XcapError, `expected XcapError, got ${String(e)}`);
    assert.equal(e.status, status, e.message);
    if (kind !== undefined) assert.equal(e.condition?.kind, kind, e.message);
    return e;
  }
  assert.fail(`expected ${status}`);
}

describe('XCAP documents', () => {
  let coll: Collection<StoredXcapDoc>;
  let docs: XcapDocuments;
  let changes: string[];

  beforeEach(async () => {
    const store = Store.open('memory://', silentLogger);
    coll = store.collection<StoredXcapDoc>('xcap');
    docs = await XcapDocuments.open({ collection: coll, log: silentLogger, maxDocumentBytes: 8192 });
    changes = [];
    docs.onChange((a, o, n) => changes.push(`${a}/${o}/${n}`));
  });

  test('whole documents: PUT creates, GET returns it with its MIME type, PUT replaces with a new ETag, DELETE removes', async () => {
    const w1 = await docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS);
    assert.equal(w1.created, true);
    const r = docs.get(at('resource-lists', ALICE, 'index'));
    assert.equal(r.body, LISTS);
    assert.equal(r.contentType, CT.RESOURCE_LISTS);
    assert.equal(r.etag, w1.etag);
    const w2 = await docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS);
    assert.equal(w2.created, false);
    assert.notEqual(w2.etag, w1.etag, 'a new ETag on every change (RFC 4825 §7.11)');
    assert.deepEqual(docs.names('resource-lists', ALICE), ['index']);
    await docs.delete(at('resource-lists', ALICE, 'index'));
    await rejectsWith(Promise.resolve().then(() => docs.get(at('resource-lists', ALICE, 'index'))), 404);
    assert.deepEqual(changes, Array(3).fill(`resource-lists/${ALICE}/index`));
  });

  test('whole-document errors: 415 wrong MIME type, 409 not well-formed, 409 wrong root, 404 unknown AUID', async () => {
    await rejectsWith(docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RLS_SERVICES), 415);
    await rejectsWith(docs.put(at('resource-lists', ALICE, 'index'), '<resource-lists', CT.RESOURCE_LISTS), 409, 'not-well-formed');
    await rejectsWith(docs.put(at('resource-lists', ALICE, 'index'), rls('sip:x@y'), CT.RESOURCE_LISTS), 409, 'schema-validation-error');
    await rejectsWith(docs.put(at('nope', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS), 404);
    await rejectsWith(docs.put(at('resource-lists', 'global', 'index'), LISTS, CT.RESOURCE_LISTS), 403);
    assert.deepEqual(changes, []);
  });

  describe('with a resource list', () => {
    let etag: string;
    beforeEach(async () => {
      etag = (await docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS)).etag;
      changes.length = 0;
    });

    test('element GET by position, by attribute, by both; attribute GET; namespace selector', () => {
      const byPos = docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[2]'));
      assert.equal(byPos.contentType, CT.XCAP_EL);
      assert.equal(byPos.body, `<entry xmlns="${RL_NS}" uri="sip:carol@example.test"/>`);
      assert.equal(byPos.etag, etag, 'element resources carry the document ETag');
      const byAttr = docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[@name="friends"]/entry[@uri="sip:bob@example.test"]/display-name'));
      assert.equal(byAttr.body, `<display-name xmlns="${RL_NS}">Bob</display-name>`);
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/*[2][@name="work"]')).body, `<list xmlns="${RL_NS}" name="work"/>`);
      const att = docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[2]/@name'));
      assert.equal(att.contentType, CT.XCAP_ATT);
      assert.equal(att.body, 'work');
      const nsb = docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/namespace::*'));
      assert.equal(nsb.contentType, CT.XCAP_NS);
      assert.equal(nsb.body, `<list xmlns="${RL_NS}"/>`);
      const prefixed = docs.get(at('resource-lists', ALICE, 'index', 'r:resource-lists/r:list[1]/@name', `xmlns(r=${RL_NS})`));
      assert.equal(prefixed.body, 'friends');
    });

    test('element GET misses are 404: no match, several matches, position 1 mismatch, missing attribute', async () => {
      for (const sel of ['resource-lists/list[3]', 'resource-lists/list/entry', 'resource-lists[2]', 'resource-lists/list[1]/@nope', 'other/list']) {
        await rejectsWith(Promise.resolve().then(() => docs.get(at('resource-lists', ALICE, 'index', sel))), 404);
      }
    });

    test('element PUT inserts (201-style created), replaces (created false), each with a new ETag', async () => {
      const ins = await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:dave@example.test"]'),
        '<entry uri="sip:dave@example.test"/>', CT.XCAP_EL);
      assert.equal(ins.created, true);
      assert.notEqual(ins.etag, etag);
      // Inserted after the last existing <entry> sibling (RFC 4825 §8.2.3).
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[3]/@uri')).body, 'sip:dave@example.test');
      const rep = await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[3]'),
        '<entry uri="sip:dave@example.test"><display-name>Dave</display-name></entry>', CT.XCAP_EL);
      assert.equal(rep.created, false);
      assert.notEqual(rep.etag, ins.etag);
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[3]/display-name')).body, `<display-name xmlns="${RL_NS}">Dave</display-name>`);
      // By position: becomes the first entry.
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1][@uri="sip:eve@example.test"]'), '<entry uri="sip:eve@example.test"/>', CT.XCAP_EL);
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1]/@uri')).body, 'sip:eve@example.test');
      // A new list in an empty document region, then an attribute.
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[@name="new"]'), '<list name="new"/>', CT.XCAP_EL);
      const att = await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[@name="new"]/@name'), 'newer &amp; better', CT.XCAP_ATT);
      assert.equal(att.created, false);
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[3]/@name')).body, 'newer &#38; better');
      assert.equal(changes.length, 5);
      // The stored document is a re-serialization that still parses and validates.
      assert.match(docs.document('resource-lists', ALICE, 'index')?.body ?? '', /^<\?xml/);
    });

    test('element PUT errors: 415, not-xml-frag, cannot-insert, no-parent with the closest ancestor', async () => {
      const p = at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:z@example.test"]');
      await rejectsWith(docs.put(p, '<entry uri="sip:z@example.test"/>', CT.RESOURCE_LISTS), 415);
      await rejectsWith(docs.put(p, '<entry uri="sip:z@example.test"/><entry uri="sip:y@example.test"/>', CT.XCAP_EL), 409, 'not-xml-frag');
      await rejectsWith(docs.put(p, 'text <entry uri="sip:z@example.test"/>', CT.XCAP_EL), 409, 'not-xml-frag');
      await rejectsWith(docs.put(p, '<entry uri="sip:z@example.test"></herald-fragment><x>', CT.XCAP_EL), 409, 'not-xml-frag');
      // The body does not match the selector: a GET would not return it (§8.2.3).
      await rejectsWith(docs.put(p, '<entry uri="sip:other@example.test"/>', CT.XCAP_EL), 409, 'cannot-insert');
      await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[9]'), '<entry uri="sip:q@example.test"/>', CT.XCAP_EL), 409, 'cannot-insert');
      const e = await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[@name="nope"]/entry'), '<entry uri="sip:q@example.test"/>', CT.XCAP_EL), 409, 'no-parent');
      assert.equal(e.condition?.kind === 'no-parent' ? e.condition.ancestor : undefined, `resource-lists/users/${ALICE}/index/~~/resource-lists`);
      assert.match(xcapErrorBody(e.condition as XcapCondition, (r) => `http://h/xcap-root/${r}`), /<ancestor>http:\/\/h\/xcap-root\/resource-lists\/users\/sip:alice@example.test\/index\/~~\/resource-lists<\/ancestor>/);
      await rejectsWith(docs.put(at('resource-lists', BOB, 'index', 'resource-lists/list'), '<list/>', CT.XCAP_EL), 409, 'no-parent');
      assert.equal(docs.get(at('resource-lists', ALICE, 'index')).etag, etag);
      assert.deepEqual(changes, []);
    });

    test('re-validation rolls back: an element the schema does not allow leaves the document unchanged', async () => {
      const before = docs.get(at('resource-lists', ALICE, 'index'));
      await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/bogus'), '<bogus/>', CT.XCAP_EL), 409, 'schema-validation-error');
      await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1]'), '<entry/>', CT.XCAP_EL), 409, 'schema-validation-error');
      await rejectsWith(docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1]/@uri')), 409, 'schema-validation-error');
      const after = docs.get(at('resource-lists', ALICE, 'index'));
      assert.deepEqual(after, before);
      assert.equal(docs.get(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1]/@uri')).body, 'sip:bob@example.test');
      assert.deepEqual(changes, []);
      // Elements of other namespaces are extensions the schema allows anywhere.
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/x:note', 'xmlns(x=urn:example:ext)'), '<x:note xmlns:x="urn:example:ext">hi</x:note>', CT.XCAP_EL);
    });

    test('uniqueness (RFC 4826 §3.4.5): list names among siblings, entry URIs per parent in canonical form', async () => {
      const e1 = await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[3]'), '<list name="friends"/>', CT.XCAP_EL), 409, 'uniqueness-failure');
      const c1 = e1.condition;
      assert.ok(c1?.kind === 'uniqueness-failure');
      assert.deepEqual(c1.exists, [{ field: 'resource-lists/list[3]/@name', altValues: ['friends-2'] }]);
      const e2 = await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[3]'),
        '<entry uri="sip:%62ob@EXAMPLE.test?subject=x"/>', CT.XCAP_EL), 409);
      assert.equal(e2.condition?.kind, 'uniqueness-failure', 'escaped unreserved character, case-insensitive host, headers dropped');
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:carol@example.test;transport=tcp"]'),
        '<entry uri="sip:carol@example.test;transport=tcp"/>', CT.XCAP_EL);
      await rejectsWith(docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[4]'),
        '<entry uri="sip:carol@example.test;Transport=TCP"/>', CT.XCAP_EL), 409, 'uniqueness-failure');
      // The same URI in another list is fine; a different user part (case-sensitive) is too.
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[2]/entry'), '<entry uri="sip:bob@example.test"/>', CT.XCAP_EL);
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:BOB@example.test"]'), '<entry uri="sip:BOB@example.test"/>', CT.XCAP_EL);
      const body = xcapErrorBody(c1);
      assert.match(body, /<xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error"><uniqueness-failure><exists field="resource-lists\/list\[3\]\/@name"><alt-value>friends-2<\/alt-value><\/exists><\/uniqueness-failure><\/xcap-error>/);
    });

    test('element and attribute DELETE; deleting entry[1] of two is not idempotent (cannot-delete)', async () => {
      await rejectsWith(docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[1]')), 409, 'cannot-delete');
      await rejectsWith(docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists')), 409, 'cannot-delete');
      const d1 = await docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:bob@example.test"]'));
      assert.ok(d1.etag !== undefined && d1.etag !== etag);
      await rejectsWith(docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/entry[@uri="sip:bob@example.test"]')), 404);
      await docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[2]/@name'));
      await rejectsWith(docs.delete(at('resource-lists', ALICE, 'index', 'resource-lists/list[2]/@name')), 404);
      assert.equal(changes.length, 2);
    });

    test('preconditions: If-Match mismatch and If-None-Match * on an existing document are 412; If-Match * on a missing one too', async () => {
      const p = at('resource-lists', ALICE, 'index');
      await rejectsWith(docs.put(p, LISTS, CT.RESOURCE_LISTS, { ifMatch: [{ tag: 'stale', weak: false }] }), 412);
      await rejectsWith(docs.put(p, LISTS, CT.RESOURCE_LISTS, { ifNoneMatch: '*' }), 412);
      await rejectsWith(docs.delete(p, { ifMatch: [{ tag: etag, weak: true }] }), 412, undefined);
      await rejectsWith(docs.put(at('resource-lists', ALICE, 'other'), LISTS, CT.RESOURCE_LISTS, { ifMatch: '*' }), 412);
      const ok = await docs.put(p, LISTS, CT.RESOURCE_LISTS, { ifMatch: [{ tag: 'x', weak: false }, { tag: etag, weak: false }] });
      await docs.put(at('resource-lists', ALICE, 'index', 'resource-lists/list[1]/@name'), 'pals', CT.XCAP_ATT, { ifMatch: [{ tag: ok.etag, weak: false }] });
      await docs.put(at('resource-lists', ALICE, 'other'), LISTS, CT.RESOURCE_LISTS, { ifNoneMatch: '*' });
    });

    test('documents survive a restart: a new store object loads them', async () => {
      await coll.flush();
      const again = await XcapDocuments.open({ collection: coll, log: silentLogger, maxDocumentBytes: 8192 });
      assert.deepEqual(again.get(at('resource-lists', ALICE, 'index')), docs.get(at('resource-lists', ALICE, 'index')));
    });
  });

  test('rls-services: service URIs unique across all users, with an alternative; the global index is the union of users\' index documents', async () => {
    await docs.put(at('rls-services', ALICE, 'index'), rls('sip:alice-buddies@example.test'), CT.RLS_SERVICES);
    const e = await rejectsWith(docs.put(at('rls-services', BOB, 'index'), rls('sip:alice-buddies@EXAMPLE.TEST'), CT.RLS_SERVICES), 409, 'uniqueness-failure');
    assert.deepEqual(e.condition?.kind === 'uniqueness-failure' ? e.condition.exists : [], [
      { field: 'rls-services/service[1]/@uri', altValues: ['sip:alice-buddies-2@EXAMPLE.TEST'] },
    ]);
    // Also within one document, and in documents other than index.
    await rejectsWith(docs.put(at('rls-services', BOB, 'index'), rls('sip:b@example.test', 'sip:b@example.test'), CT.RLS_SERVICES), 409, 'uniqueness-failure');
    await rejectsWith(docs.put(at('rls-services', BOB, 'extra'), rls('sip:alice-buddies@example.test'), CT.RLS_SERVICES), 409, 'uniqueness-failure');
    // Re-PUTting one's own document with the same URI is not a conflict.
    await docs.put(at('rls-services', ALICE, 'index'), rls('sip:alice-buddies@example.test', 'sip:alice-work@example.test'), CT.RLS_SERVICES);
    await docs.put(at('rls-services', BOB, 'index'), rls('sip:bob-buddies@example.test'), CT.RLS_SERVICES);
    await docs.put(at('rls-services', BOB, 'drafts'), rls('sip:bob-draft@example.test'), CT.RLS_SERVICES);
    const g = docs.get(at('rls-services', 'global', 'index'));
    assert.equal(g.contentType, CT.RLS_SERVICES);
    assert.deepEqual([...g.body.matchAll(/service uri="([^"]+)"/g)].map((m) => m[1]),
      ['sip:alice-buddies@example.test', 'sip:alice-work@example.test', 'sip:bob-buddies@example.test']);
    assert.equal(docs.get(at('rls-services', 'global', 'index', 'rls-services/service[@uri="sip:bob-buddies@example.test"]/@uri')).body, 'sip:bob-buddies@example.test');
    await rejectsWith(docs.put(at('rls-services', 'global', 'index'), rls('sip:z@example.test'), CT.RLS_SERVICES), 403);
    assert.ok(changes.includes('rls-services/global/index'), 'a user index change is a change of the global index');
    // Deleting frees the URI; the global index changes its ETag.
    await docs.delete(at('rls-services', ALICE, 'index'));
    assert.notEqual(docs.get(at('rls-services', 'global', 'index')).etag, g.etag);
    await docs.put(at('rls-services', BOB, 'extra'), rls('sip:alice-buddies@example.test'), CT.RLS_SERVICES);
  });

  test('rls-services: a service URI must not shadow an existing resource', async () => {
    const shadowing = await XcapDocuments.open({
      collection: Store.open('memory://', silentLogger).collection('x'), log: silentLogger, maxDocumentBytes: 8192,
      isExistingResource: (uri) => Promise.resolve(uri === BOB),
    });
    await rejectsWith(shadowing.put(at('rls-services', ALICE, 'index'), rls(BOB), CT.RLS_SERVICES), 409, 'uniqueness-failure');
  });

  test('rls-services: a service needs exactly one <resource-list> or <list>; an inherited rl: prefix works in a PUT element', async () => {
    const bad = '<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="sip:s@example.test"><packages/></service></rls-services>';
    await rejectsWith(docs.put(at('rls-services', ALICE, 'index'), bad, CT.RLS_SERVICES), 409, 'schema-validation-error');
    await docs.put(at('rls-services', ALICE, 'index'), rls('sip:s@example.test'), CT.RLS_SERVICES);
    await docs.put(at('rls-services', ALICE, 'index', 'rls-services/service[1]/list/rl:entry[@uri="sip:y@example.test"]', `xmlns(rl=${RL_NS})`),
      '<rl:entry uri="sip:y@example.test"/>', CT.XCAP_EL);
    assert.match(docs.document('rls-services', ALICE, 'index')?.body ?? '', /sip:y@example\.test/);
  });

  test('pres-rules: rule ids unique, sub-handling values, ordering of rule parts', async () => {
    const p = at('pres-rules', ALICE, 'index');
    await docs.put(p, RULES, CT.AUTH_POLICY);
    const cp = 'xmlns(cp=urn:ietf:params:xml:ns:common-policy)';
    const e = await rejectsWith(docs.put(at('pres-rules', ALICE, 'index', 'cp:ruleset/cp:rule[2]', cp),
      '<cp:rule id="a"/>', CT.XCAP_EL), 409, 'uniqueness-failure');
    assert.deepEqual(e.condition?.kind === 'uniqueness-failure' ? e.condition.exists : [], [{ field: 'cp:ruleset/cp:rule[2]/@id', altValues: ['a-2'] }]);
    await rejectsWith(docs.put(p, RULES.replace('>allow<', '>maybe<'), CT.AUTH_POLICY), 409, 'schema-validation-error');
    await rejectsWith(docs.put(p, RULES.replace('<pr:provide-note>true', '<pr:provide-note>yes'), CT.AUTH_POLICY), 409, 'schema-validation-error');
    const swapped = '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy"><cp:rule id="x"><cp:actions/><cp:conditions/></cp:rule></cp:ruleset>';
    await rejectsWith(docs.put(p, swapped, CT.AUTH_POLICY), 409, 'schema-validation-error');
    await docs.put(at('pres-rules', ALICE, 'index', 'cp:ruleset/cp:rule[@id="b"]', cp), '<cp:rule id="b"/>', CT.XCAP_EL);
    assert.equal(docs.get(at('pres-rules', ALICE, 'index', 'cp:ruleset/cp:rule[2]/@id', cp)).body, 'b');
    assert.equal(docs.get(at('pres-rules', ALICE, 'index', 'cp:ruleset/cp:rule[1]/cp:actions/sub-handling', cp)).body,
      '<sub-handling xmlns="urn:ietf:params:xml:ns:pres-rules">allow</sub-handling>');
  });

  test('xcap-caps lists the AUIDs and namespaces and is read-only', async () => {
    const r = docs.get(at('xcap-caps', 'global', 'index'));
    assert.equal(r.contentType, CT.XCAP_CAPS);
    for (const a of ['pres-rules', 'resource-lists', 'rls-services', 'xcap-caps']) assert.match(r.body, new RegExp(`<auid>${a}</auid>`));
    assert.match(r.body, /<namespace>urn:ietf:params:xml:ns:common-policy<\/namespace>/);
    await rejectsWith(docs.put(at('xcap-caps', 'global', 'index'), r.body, CT.XCAP_CAPS), 403);
    await rejectsWith(Promise.resolve().then(() => docs.get(at('xcap-caps', ALICE, 'index'))), 404);
  });

  test('bounded: the resulting document must stay within the size limit; documents per owner are capped', async () => {
    const small = await XcapDocuments.open({
      collection: Store.open('memory://', silentLogger).collection('x'), log: silentLogger, maxDocumentBytes: 400, maxDocumentsPerOwner: 2,
    });
    await small.put(at('resource-lists', ALICE, 'a'), '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"><list/></resource-lists>', CT.RESOURCE_LISTS);
    let i = 0;
    let err: XcapError | undefined;
    while (!err && i < 50) {
      try {
        await small.put(at('resource-lists', ALICE, 'a', `resource-lists/list/entry[@uri="sip:user${i}@example.test"]`), `<entry uri="sip:user${i}@example.test"/>`, CT.XCAP_EL);
      } catch (e) {
        err = e as XcapError;
      }
      i++;
    }
    assert.equal(err?.condition?.kind, 'constraint-failure');
    await small.put(at('resource-lists', ALICE, 'b'), '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>', CT.RESOURCE_LISTS);
    await rejectsWith(small.put(at('resource-lists', ALICE, 'c'), '<resource-lists xmlns="urn:ietf:params:xml:ns:resource-lists"/>', CT.RESOURCE_LISTS), 409, 'constraint-failure');
  });

  test('embeddedRulesSource: every pres-rules document of the presentity, and a change event per write', async () => {
    const src = embeddedRulesSource(docs);
    const heard: string[] = [];
    src.onChange((p) => heard.push(p));
    assert.deepEqual(await src.load(ALICE), []);
    await docs.put(at('pres-rules', ALICE, 'index'), RULES, CT.AUTH_POLICY);
    await docs.put(at('pres-rules', ALICE, 'work'), RULES, CT.AUTH_POLICY);
    await docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS);
    assert.deepEqual(await src.load(ALICE), [RULES, RULES]);
    assert.deepEqual(await src.load(BOB), []);
    assert.deepEqual(heard, [ALICE, ALICE]);
  });

  test('concurrent writes are serialized: both element inserts land', async () => {
    await docs.put(at('resource-lists', ALICE, 'index'), LISTS, CT.RESOURCE_LISTS);
    await Promise.all(['x', 'y', 'z'].map((u) =>
      docs.put(at('resource-lists', ALICE, 'index', `resource-lists/list[2]/entry[@uri="sip:${u}@example.test"]`), `<entry uri="sip:${u}@example.test"/>`, CT.XCAP_EL)));
    assert.equal([...(docs.document('resource-lists', ALICE, 'index')?.body ?? '').matchAll(/<entry/g)].length, 5);
  });
});
