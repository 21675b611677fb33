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

const pools = (): Pools => ({ strings: new StringPool(), flows: new Interner() });

describe('LiveSubscription', () => {
  it('writes the durable record as it was given', () => {
    const rec = record(['<sip:p1.example.test;lr>']);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
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

  it('keeps process-relative times exact', () => {
    const rec = record([]);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.equal(sub.expiresAt, rec.expiresAt);
    const at = Date.now() + 1234;
    sub.sentAt = at;
    assert.equal(sub.sentAt, at);
  });
});
