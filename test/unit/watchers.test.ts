// The watcher list behind presence.winfo: history survives a restart, old terminated rows age out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatcherRegistry, watcherId, type WatcherRecord } from '../../src/presence/watchers.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';

test('watcher history persists across a restart and terminated rows expire after the history window', async () => {
  const store = Store.open('memory://', silentLogger);
  const col = store.collection<WatcherRecord>('watcher');
  const a = new WatcherRegistry(col, 60_000);
  const t0 = Date.now();
  a.update('sip:alice@example.test', watcherId('k1'), 'sip:bob@example.test', 'pending', 'subscribe', 'presence', t0);
  a.update('sip:alice@example.test', watcherId('k1'), 'sip:bob@example.test', 'active', 'approved', 'presence', t0 + 1000);
  a.update('sip:alice@example.test', watcherId('k2'), 'sip:eve@example.test', 'terminated', 'rejected', 'presence', t0);
  await col.flush();

  const b = new WatcherRegistry(col, 60_000);
  assert.equal(await b.restore(t0 + 2000), 2);
  const rows = b.list('sip:alice@example.test');
  assert.deepEqual(rows.map((r) => [r.uri, r.status, r.event]).sort(), [
    ['sip:bob@example.test', 'active', 'approved'],
    ['sip:eve@example.test', 'terminated', 'rejected'],
  ]);
  assert.equal(rows.find((r) => r.uri === 'sip:bob@example.test')!.since, t0, 'since is kept through status changes');

  const c = new WatcherRegistry(col, 60_000);
  assert.equal(await c.restore(t0 + 120_000), 1, 'the rejected row is older than the history window');
  assert.deepEqual(c.list('sip:alice@example.test').map((r) => r.uri), ['sip:bob@example.test']);
});

test('watcher ids are stable and do not carry the Call-ID', () => {
  const key = 'a84bd1c2@host|f00dfeed';
  assert.equal(watcherId(key), watcherId(key));
  assert.ok(!watcherId(key).includes('a84bd1c2'));
  assert.notEqual(watcherId(key), watcherId(`${key}x`));
});
