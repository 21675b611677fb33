// The held subscription's dialog accessors (src/events/live.ts): the fixed lines a NOTIFY repeats are the
// bytes the codec writes for the same dialog, and the durable record round-trips unchanged.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LiveSubscription, type Pools } from '../../src/events/live.js';
import type { SubscriptionRecord } from '../../src/events/subscription.js';
import { inDialogTarget } from '../../src/sip/dialog.js';
import { requestFixedLines } from '../../src/sip/codec.js';
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

describe('LiveSubscription dialog lines', () => {
  for (const [name, routes] of [
    ['no route set', []],
    ['loose routers', ['<sip:p1.example.test;lr>', '<sip:p2.example.test;lr>']],
    ['a strict router first', ['<sip:p1.example.test>', '<sip:p2.example.test;lr>']],
  ] as const) {
    it(`are the codec's From/To/Call-ID/Route lines (${name})`, () => {
      const rec = record([...routes]);
      const sub = new LiveSubscription(rec, pools(), () => undefined);
      const { uri, route } = inDialogTarget(rec);
      const codec = requestFixedLines({
        maxForwards: 70,
        route,
        from: { display: undefined, uri: rec.localUri, params: { tag: rec.localTag } },
        to: { display: undefined, uri: rec.remoteUri, params: { tag: rec.remoteTag } },
        callId: rec.callId,
      });
      assert.equal(`Max-Forwards: 70\r\n${sub.dialogLines}`, codec);
      assert.equal(sub.requestUri, uri);
      assert.deepEqual([...sub.nextHopRoute], route);
    });
  }

  it('follow a target refresh', () => {
    const sub = new LiveSubscription(record(['<sip:p1.example.test>']), pools(), () => undefined);
    sub.remoteTarget = 'sip:bob@198.51.100.9:5070';
    assert.equal(sub.nextHopRoute.at(-1), '<sip:bob@198.51.100.9:5070>');
  });

  it('leave the durable record as it was', () => {
    const rec = record(['<sip:p1.example.test;lr>']);
    const sub = new LiveSubscription(rec, pools(), () => undefined);
    assert.deepEqual(JSON.parse(JSON.stringify(sub)), JSON.parse(JSON.stringify(rec)));
  });
});
