// RFC 3903 PUBLISH over real sockets: every row of the §4.1 table and every error of §6.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const ALICE = 'sip:alice@example.test';

describe('PUBLISH (RFC 3903)', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald({ presence: { publish_min_expires: 30, max_document_bytes: 4096 } });
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  const publish = (headers: Record<string, string>, body?: string, contentType?: string) =>
    ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', ...headers }, ...(body ? { body } : {}), ...(contentType ? { contentType } : {}) });

  test('initial, refresh, modify, remove, then 412 for the removed entity-tag', async () => {
    const r1 = await publish({ Expires: '3600' }, pidf(ALICE));
    assert.equal(r1.status, 200);
    const etag1 = r1.h('sip-etag');
    assert.ok(etag1);
    assert.equal(r1.h('expires'), '3600');
    assert.equal(h.herald.pa.hasPublications(ALICE), true);

    const r2 = await publish({ Expires: '600', 'SIP-If-Match': etag1 });
    assert.equal(r2.status, 200);
    const etag2 = r2.h('sip-etag');
    assert.ok(etag2);
    assert.notEqual(etag2, etag1, 'RFC 3903 §6: a refresh gets a new entity-tag');
    assert.equal(r2.h('expires'), '600');

    const old = await publish({ Expires: '600', 'SIP-If-Match': etag1 });
    assert.equal(old.status, 412, 'the replaced entity-tag is no longer valid');

    const r3 = await publish({ Expires: '600', 'SIP-If-Match': etag2 }, pidf(ALICE, { note: 'lunch' }));
    assert.equal(r3.status, 200);
    const etag3 = r3.h('sip-etag')!;
    assert.match(JSON.stringify(h.herald.pa.document(ALICE)), /lunch/);

    const r4 = await publish({ Expires: '0', 'SIP-If-Match': etag3 });
    assert.equal(r4.status, 200);
    assert.equal(h.herald.pa.hasPublications(ALICE), false);

    const r5 = await publish({ Expires: '600', 'SIP-If-Match': etag3 });
    assert.equal(r5.status, 412);
    assert.equal(r5.reason, 'Conditional Request Failed');
  });

  test('unknown entity-tag: 412', async () => {
    const r = await publish({ 'SIP-If-Match': 'no-such-tag' });
    assert.equal(r.status, 412);
  });

  test('too brief: 423 with Min-Expires', async () => {
    const r = await publish({ Expires: '5' }, pidf(ALICE));
    assert.equal(r.status, 423);
    assert.equal(r.h('min-expires'), '30');
  });

  test('too long: lowered to the maximum', async () => {
    const r = await publish({ Expires: '999999' }, pidf(ALICE));
    assert.equal(r.status, 200);
    assert.equal(r.h('expires'), '86400');
    await publish({ Expires: '0', 'SIP-If-Match': r.h('sip-etag')! });
  });

  test('unknown event package: 489 with Allow-Events', async () => {
    const r = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'dialog' }, body: pidf(ALICE) });
    assert.equal(r.status, 489);
    assert.match(r.h('allow-events') ?? '', /presence/);
    const none = await ua.request('PUBLISH', ALICE, { from: ALICE, body: pidf(ALICE) });
    assert.equal(none.status, 489, 'RFC 3903 §6 step 2: no Event header is 489 too');
  });

  test('other body types: 415 with Accept', async () => {
    const r = await publish({}, 'hello', 'text/plain');
    assert.equal(r.status, 415);
    assert.equal(r.h('accept'), 'application/pidf+xml, application/pidf-diff+xml', 'RFC 5264: partial publication too');
  });

  test('malformed PIDF: 400 with a reason that says what is wrong', async () => {
    const r1 = await publish({}, '<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="a"></presence>');
    assert.equal(r1.status, 400);
    assert.ok(r1.reason.length > 5, r1.reason);
    const r2 = await publish({}, '<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="a"><status><basic>open</basic></status></tuple></presence>');
    assert.equal(r2.status, 400);
    assert.match(r2.reason, /entity/i);
    const r3 = await publish({}, pidf(ALICE, { basic: 'maybe' as 'open' }));
    assert.equal(r3.status, 400);
  });

  test('oversized document: 413', async () => {
    const r = await publish({}, pidf(ALICE, { note: 'x'.repeat(5000) }));
    assert.equal(r.status, 413);
  });

  test('initial PUBLISH without a body: 400', async () => {
    const r = await publish({ Expires: '60' });
    assert.equal(r.status, 400);
  });

  test('publication for a domain Herald does not serve: 404', async () => {
    const r = await ua.request('PUBLISH', 'sip:bob@elsewhere.test', { from: 'sip:bob@elsewhere.test', headers: { Event: 'presence' }, body: pidf('sip:bob@elsewhere.test') });
    assert.equal(r.status, 404);
  });

  test('a publication expires on time', async () => {
    const short = await startTestHerald({ presence: { publish_min_expires: 1 } });
    const u = await TestUA.open('udp', '127.0.0.1', short.port('udp'));
    try {
      const who = `sip:exp-${rnd()}@example.test`;
      const r = await u.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '1' }, body: pidf(who) });
      assert.equal(r.status, 200);
      assert.equal(short.herald.pa.hasPublications(who), true);
      await new Promise((res) => setTimeout(res, 2600));
      assert.equal(short.herald.pa.hasPublications(who), false);
      const late = await u.request('PUBLISH', who, { from: who, headers: { Event: 'presence', 'SIP-If-Match': r.h('sip-etag')! } });
      assert.equal(late.status, 412);
    } finally {
      u.close();
      await short.stop();
    }
  });
});
