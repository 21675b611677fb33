// RFC 5262/5263/5264 partial presence over real sockets: a PUBLISH of pidf-full and then of patches
// against the publication's version; watchers that accept pidf-diff get pidf-full first, then
// patches, full again after a refresh; a PIDF watcher of the same presentity gets whole documents.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { parsePidfDiff } from '../../src/formats/pidf-diff.js';

const DIFF = 'application/pidf-diff+xml';
const NSS = 'xmlns="urn:ietf:params:xml:ns:pidf" xmlns:p="urn:ietf:params:xml:ns:pidf-diff"';
const tuples = (n: number, closed = -1) => Array.from({ length: n }, (_, i) => `<tuple id="d${i}"><status><basic>${i === closed ? 'closed' : 'open'}</basic></status><contact>sip:dev${i}@192.0.2.${i + 1}</contact></tuple>`).join('');
const full = (who: string, version: number, body: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<p:pidf-full ${NSS} entity="${who}" version="${version}">${body}</p:pidf-full>`;
const patch = (version: number, ops: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<p:patch ${NSS} version="${version}">${ops}</p:patch>`;

describe('partial presence (RFC 5262, RFC 5263, RFC 5264)', () => {
  let h: TestHerald;
  let pub: TestUA;
  let w: TestUA;
  before(async () => {
    h = await startTestHerald({});
    pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    pub.close();
    w.close();
    await h.stop();
  });

  const publish = (who: string, body: string, headers: Record<string, string> = {}) =>
    pub.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '600', ...headers }, body, contentType: DIFF });

  test('PUBLISH pidf-full then patches; pidf-diff watchers get pidf-full, then patches; PIDF watchers whole documents', async () => {
    const alice = `sip:a${rnd()}@example.test`;
    const r1 = await publish(alice, full(alice, 7, tuples(10)));
    assert.equal(r1.status, 200);

    const sub = async (accept: string) => {
      const callId = rnd();
      const fromTag = rnd();
      const res = await w.request('SUBSCRIBE', alice, { from: 'sip:bob@example.test', fromTag, callId, headers: { Event: 'presence', Expires: '600', Accept: accept } });
      assert.equal(res.status, 200);
      return { callId, fromTag, toTag: res.toTag! };
    };
    const seen = new Set<Msg>();
    const next = async (callId: string, pred: (m: Msg) => boolean = () => true) => {
      const m = await w.nextRequest((x) => x.method === 'NOTIFY' && x.callId === callId && pred(x), 5000, seen);
      seen.add(m);
      return m;
    };
    const d = await sub('application/pidf+xml, application/pidf-diff+xml');
    const plain = await sub('application/pidf+xml');
    const n0 = await next(d.callId);
    assert.equal(n0.h('content-type'), DIFF);
    const f0 = parsePidfDiff(n0.body);
    assert.equal(f0.kind, 'full');
    assert.equal(f0.version, 0, 'versions are the subscription\'s own, from 0');
    if (f0.kind === 'full') assert.equal(f0.document.tuples.length, 10);
    const p0 = await next(plain.callId);
    assert.equal(p0.h('content-type'), 'application/pidf+xml');

    // One device of ten changes, by a patch against the publication's version 7.
    const r2 = await publish(alice, patch(8, `<p:replace sel="*/tuple[@id='d3']/status/basic/text()">closed</p:replace>`), { 'SIP-If-Match': r1.h('sip-etag')! });
    assert.equal(r2.status, 200);
    const n1 = await next(d.callId);
    const f1 = parsePidfDiff(n1.body);
    assert.equal(f1.kind, 'patch');
    assert.equal(f1.version, 1);
    if (f1.kind === 'patch') assert.deepEqual(f1.ops.map((o) => [o.op, o.sel]), [['replace', "*/tuple[@id='d3']"]]);
    const p1 = await next(plain.callId);
    assert.ok(Buffer.byteLength(n1.body) * 2 < Buffer.byteLength(p1.body), `patch ${n1.body.length} B, whole PIDF ${p1.body.length} B`);
    assert.match(p1.body, /<tuple id="d3"><status><basic>closed/);
    assert.ok(n1.h('sip-etag') && n1.h('sip-etag') !== n0.h('sip-etag'), 'the entity-tag names the full state');

    // A patch out of sequence (the publication is at 8) and one that does not apply are refused.
    const e2 = r2.h('sip-etag')!;
    assert.equal((await publish(alice, patch(10, `<p:remove sel="*/tuple[@id='d1']"/>`), { 'SIP-If-Match': e2 })).status, 412);
    assert.equal((await publish(alice, patch(9, `<p:remove sel="*/tuple[@id='nope']"/>`), { 'SIP-If-Match': e2 })).status, 400);
    assert.equal((await publish(`sip:z${rnd()}@example.test`, patch(1, `<p:remove sel="*/tuple[@id='d1']"/>`))).status, 400, 'an initial PUBLISH must be full state');

    // A refresh brings full state again, with the next version.
    const rf = await w.request('SUBSCRIBE', alice, { from: 'sip:bob@example.test', fromTag: d.fromTag, toTag: d.toTag, callId: d.callId, cseq: 2, headers: { Event: 'presence', Expires: '600', Accept: 'application/pidf+xml, application/pidf-diff+xml' } });
    assert.equal(rf.status, 200);
    const n2 = await next(d.callId);
    const f2 = parsePidfDiff(n2.body);
    assert.equal(f2.kind, 'full');
    assert.equal(f2.version, 2);
  });
});
