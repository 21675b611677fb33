// The held subscription's flat record (src/events/live.ts): the durable record round-trips unchanged, the
// rarely set fields and the process-relative times included.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LiveSubscription, type Pools } from '../../src/events/live.js';
import type { SubscriptionRecord } from '../../src/events/subscription.js';
import { Interner, StringPool } from '../../src/util/intern.js';

function record(routeSet: string[]): SubscriptionRecord {
  return {
    key: 'a84b4c76e66710@pc33.example.com|h3r4ld-7f',
    event: 'presence',
    eventId: undefined,
    resource: 'sip:alice@example.test',
    watcher: 'sip:bob@example.test',
    callId: 'a84b4c76e66710@pc33.example.com',
    localTag: 'h3r4ld-7f',
    remoteTag: '1928301774',
    localUri: 'sip:alice@example.test',
    remoteUri: 'sip:bob@example.test',
    remoteTarget: 'sip:bob@192.0.2.4:5062;transport=udp',
    routeSet,
    localCseq: 3,
    cseqReserved: 1002,
    remoteCseq: 7,
    expiresAt: Date.now() + 3_600_000,
    contentType: 'application/pidf+xml',
    flow: { protocol: 'UDP', address: '192.0.2.4', port: 5062 },
    lastTag: 'abc',
    version: 0,
  };
}

const pools = (): Pools => ({ strings: new StringPool(), flows: new Interner(), kinds: new Interner() });

describe('LiveSubscription', () => {
  it('writes the durable record as it was given', () => {
    const rec = record(['<sip:p1.example.test;lr>']);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.deepEqual(JSON.parse(JSON.stringify(sub)), JSON.parse(JSON.stringify(rec)));
  });

  it('writes a local URI other than the resource and a watcher other than the From URI', () => {
    const rec = { ...record([]), localUri: 'sip:alice@example.test;user=phone', watcher: 'sip:bob@auth.example.test' };
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.deepEqual([sub.localUri, sub.watcher, sub.remoteUri], ['sip:alice@example.test;user=phone', 'sip:bob@auth.example.test', 'sip:bob@example.test']);
    assert.deepEqual(JSON.parse(JSON.stringify(sub)), JSON.parse(JSON.stringify(rec)));
  });

  it('keeps the fields most subscriptions never set, and writes them', () => {
    const rec = { ...record([]), eventSpelling: 'Presence', eventId: 'x1', version: 3, versions: { 'sip:l@example.test': 2 } };
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.equal(sub.nextVersion(), 3);
    assert.equal(sub.nextVersion('sip:l@example.test'), 2);
    assert.deepEqual(JSON.parse(JSON.stringify(sub)), JSON.parse(JSON.stringify({ ...rec, version: 4, versions: { 'sip:l@example.test': 3 } })));
    assert.equal(sub.terminating, undefined);
    sub.terminating = 'timeout';
    assert.equal(sub.terminating, 'timeout');
  });

  it('shares what subscriptions have in common, and a content type set later is written', () => {
    const p = pools();
    const changed: LiveSubscription[] = [];
    const a = new LiveSubscription({ ...record([]), userAgent: 'Phone/1.0' }, p, (s) => changed.push(s));
    const b = new LiveSubscription({ ...record([]), key: 'other@pc33.example.com|h3r4ld-80', userAgent: 'Phone/1.0' }, p, (s) => changed.push(s));
    assert.deepEqual([a.event, a.contentType, a.userAgent], ['presence', 'application/pidf+xml', 'Phone/1.0']);
    b.contentType = 'application/pidf-diff+xml';
    assert.equal(a.contentType, 'application/pidf+xml', 'one subscription\'s content type is its own');
    assert.equal(JSON.parse(JSON.stringify(b)).contentType, 'application/pidf-diff+xml');
    assert.equal(JSON.parse(JSON.stringify(b)).userAgent, 'Phone/1.0');
    const c = new LiveSubscription({ ...record([]), key: 'third@pc33.example.com|h3r4ld-81' }, p, (s) => changed.push(s));
    assert.equal(c.userAgent, undefined);
    assert.equal('userAgent' in JSON.parse(JSON.stringify(c)), false);
    b.changed();
    a.changed();
    assert.deepEqual(changed, [b, a]);
  });

  it('keeps the remote tag and target in one string, through a target refresh and the answer bits', () => {
    const rec = record([]);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.deepEqual([sub.remoteTag, sub.remoteTarget], ['1928301774', 'sip:bob@192.0.2.4:5062;transport=udp']);
    sub.lastAnswer = 200;
    sub.inFlight = true;
    sub.remoteTarget = 'sip:bob@198.51.100.7:5070';
    assert.deepEqual([sub.remoteTag, sub.remoteTarget, sub.lastAnswer, sub.inFlight], ['1928301774', 'sip:bob@198.51.100.7:5070', 200, true]);
    assert.deepEqual(JSON.parse(JSON.stringify(sub)), JSON.parse(JSON.stringify({ ...rec, remoteTarget: 'sip:bob@198.51.100.7:5070' })));
    // A tag longer than the bits hold its length (no real client sends one) is kept as it is too.
    const long = { ...record([]), remoteTag: 't'.repeat(40_000) };
    const odd = new LiveSubscription(long, pools(), () => undefined);
    odd.lastAnswer = 'timeout';
    assert.deepEqual([odd.remoteTag, odd.remoteTarget, odd.lastAnswer], [long.remoteTag, long.remoteTarget, 'timeout']);
    assert.deepEqual(JSON.parse(JSON.stringify(odd)), JSON.parse(JSON.stringify(long)));
  });

  it('keeps the last answer beside the flags', () => {
    const sub = new LiveSubscription(record([]), pools(), () => undefined);
    assert.equal(sub.lastAnswer, undefined);
    sub.inFlight = true;
    sub.gone = true;
    sub.lastAnswer = 'timeout';
    assert.equal(sub.lastAnswer, 'timeout');
    sub.lastAnswer = 699;
    assert.equal(sub.lastAnswer, 699);
    assert.deepEqual([sub.inFlight, sub.gone, sub.again, sub.forced, sub.versionUnwritten], [true, true, false, false, false]);
    sub.inFlight = false;
    sub.lastAnswer = 200;
    assert.deepEqual([sub.lastAnswer, sub.inFlight, sub.gone], [200, false, true]);
  });

  it('keeps process-relative times exact', () => {
    const rec = record([]);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.equal(sub.expiresAt, rec.expiresAt);
    const at = Date.now() + 1234;
    sub.sentAt = at;
    assert.equal(sub.sentAt, at);
  });
});
