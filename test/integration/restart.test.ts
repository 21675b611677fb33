// Nothing lost on restart: SIGKILL Herald, start it again on the same store, and a later PUBLISH
// reaches the earlier watcher in its existing dialog with a higher CSeq (CSeqs are reserved in blocks,
// RFC 3261 §12.2.1.1 asks only for a higher one: it may jump after a crash, it never repeats).
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { HeraldProcess, freePort } from '../support/process.js';
import { tempDir } from '../support/herald.js';

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
});
