// Nothing lost on restart: SIGKILL Herald, start it again on the same store, and a later PUBLISH
// reaches the earlier watcher in its existing dialog with a higher CSeq (CSeqs are reserved in blocks,
// RFC 3261 §12.2.1.1 asks only for a higher one: it may jump after a crash, it never repeats).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { HeraldProcess, freePort } from '../support/process.js';
import { tempDir } from '../support/herald.js';
import { BulkWatchers } from '../support/bulk-ua.js';

const ALICE = 'sip:alice@example.test';

describe('restart', () => {
  const procs: HeraldProcess[] = [];
  after(async () => {
    for (const p of procs) await p.stop('SIGKILL');
  });

  test('SIGKILL and start again: publications and subscription dialogs survive; expired ones are cleaned up', async () => {
    const dir = tempDir();
    const port = await freePort();
    const p = new HeraldProcess(HeraldProcess.writeConfig(dir, port));
    procs.push(p);
    await p.start();
    const pub = await TestUA.open('udp', '127.0.0.1', port);
    const w = await TestUA.open('udp', '127.0.0.1', port);
    const short = await TestUA.open('udp', '127.0.0.1', port);
    try {
      const r1 = await pub.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'before' }) });
      assert.equal(r1.status, 200);
      const callId = rnd();
      const s = await w.request('SUBSCRIBE', ALICE, { from: 'sip:bob@example.test', callId, headers: { Event: 'presence', Expires: '600' } });
      assert.equal(s.status, 200);
      const n1 = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.body.includes('before'));
      // A second watcher whose subscription runs out while Herald is down.
      const s2 = await short.request('SUBSCRIBE', ALICE, { from: 'sip:carol@example.test', headers: { Event: 'presence', Expires: '1' } });
      assert.equal(s2.status, 200);

      assert.equal(await p.stop('SIGKILL'), 'SIGKILL');
      await new Promise((r) => setTimeout(r, 1500));
      const startLine = await p.start();
      assert.deepEqual(startLine['subscriptions'], { restored: 1, expired: 1 });
      assert.deepEqual(startLine['publications'], { restored: 1, expired: 0 });
      // Nothing changed while down, so the restart itself sends the watcher nothing.
      assert.deepEqual(
        (await w.quiet(300)).filter((m) => m.callId === callId),
        [],
      );

      // The stored publication is still there: its entity-tag is accepted.
      const r2 = await pub.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600', 'SIP-If-Match': r1.h('sip-etag')! }, body: pidf(ALICE, { note: 'after' }) });
      assert.equal(r2.status, 200);
      const n2 = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.body.includes('after'));
      assert.ok(n2.cseq > n1.cseq, `a higher CSeq in the same dialog (${n1.cseq} → ${n2.cseq})`);
      assert.equal(n2.toTag, n1.toTag);
      assert.equal(n2.fromTag, n1.fromTag);

      assert.equal(await p.stop('SIGTERM'), 0, 'SIGTERM shuts down cleanly');
    } finally {
      pub.close();
      w.close();
      short.close();
    }
  });

  test('10,000 held subscriptions survive SIGKILL: the next PUBLISH reaches every watcher in its old dialog with a higher CSeq', { timeout: 150_000 }, async () => {
    const presentities = 100;
    const watchersPer = 100;
    const dir = tempDir();
    const port = await freePort();
    const p = new HeraldProcess(HeraldProcess.writeConfig(dir, port));
    procs.push(p);
    await p.start(30_000);
    const ws = await BulkWatchers.open(port);
    try {
      const { callIds, failed } = await ws.subscribe('r', presentities, watchersPer);
      assert.equal(failed, 0, 'every SUBSCRIBE answered 2xx');
      assert.equal(callIds.length, presentities * watchersPer);
      assert.ok(await ws.until(() => callIds.every((c) => ws.notifies.has(c)), 60_000), 'every subscription got its first NOTIFY');
      // Everything each dialog was sent before the crash (the first NOTIFY, and any other).
      const before = new Map(callIds.map((c) => [c, { ...ws.notifies.get(c)!.at(-1)!, cseq: Math.max(...ws.notifies.get(c)!.map((n) => n.cseq)) }]));

      assert.equal(await p.stop('SIGKILL'), 'SIGKILL');
      const startLine = await p.start(60_000);
      assert.deepEqual(startLine['subscriptions'], { restored: presentities * watchersPer, expired: 0 });

      const statuses = await ws.publishEach('r', presentities, 'after-restart');
      assert.ok(statuses.every((s) => s === 200), 'every PUBLISH answered 200');
      const changed = (c: string) => ws.notifies.get(c)!.find((n) => n.body.includes('after-restart'));
      assert.ok(await ws.until(() => callIds.every((c) => changed(c) !== undefined), 60_000), `every watcher notified of the change (${callIds.filter((c) => changed(c)).length} of ${callIds.length})`);
      for (const c of callIds) {
        const old = before.get(c)!;
        const now = changed(c)!;
        assert.equal(now.fromTag, old.fromTag, `${c}: the same dialog (Herald's tag)`);
        assert.equal(now.toTag, old.toTag, `${c}: the same dialog (the watcher's tag)`);
        assert.ok(now.cseq > old.cseq, `${c}: a higher CSeq (${old.cseq} → ${now.cseq})`);
      }
    } finally {
      ws.close();
    }
  });
});
