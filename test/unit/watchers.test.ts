// The watcher list behind presence.winfo: history survives a restart, old terminated rows age out.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { WatcherRegistry, watcherId, type WatcherRecord } from '../../src/presence/watchers.js';
import { Store } from '../../src/store/store.js';
import { silentLogger } from '../../src/log.js';
import { WatcherViews } from '../../src/policy/view.js';
import type { SubHandling } from '../../src/formats/pres-rules.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const EVE = 'sip:eve@example.test';

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

test('a live watcher view is its own watcher info entry; an ended or detached one leaves a row of its own', async () => {
  const store = Store.open('memory://', silentLogger);
  const col = store.collection<WatcherRecord>('watcher');
  const reg = new WatcherRegistry(col, 60_000);
  let handling: SubHandling = 'confirm';
  const views = new WatcherViews({ decide: () => ({ subHandling: handling, view: handling, transform: (d) => d }) }, reg, () => true);
  const heard: [string, string, string][] = [];
  reg.follow(ALICE, (recs) => heard.push(...recs.map((r): [string, string, string] => [r.uri, r.status, r.event])));

  const bob = views.open(ALICE, BOB, watcherId('k1'));
  bob.arrive();
  const [entry] = reg.list(ALICE);
  assert.equal(entry, bob, 'the view itself is the entry while it lives');
  assert.deepEqual([entry!.uri, entry!.status, entry!.event, entry!.package, entry!.id], [BOB, 'pending', 'subscribe', 'presence', watcherId('k1')]);
  const since = entry!.since;

  handling = 'allow';
  bob.see(undefined);
  assert.deepEqual([reg.list(ALICE)[0]!.status, reg.list(ALICE)[0]!.event], ['active', 'approved']);
  assert.equal(reg.list(ALICE)[0]!.since, since, 'since is kept through status changes');
  bob.see(undefined); // unchanged: nothing heard, nothing written
  assert.deepEqual(heard, [
    [BOB, 'pending', 'subscribe'],
    [BOB, 'active', 'approved'],
  ]);

  // A second watcher ends: its entry is a row of its own (the view and its subscription can go).
  const eve = views.open(ALICE, EVE, watcherId('k2'));
  eve.arrive();
  eve.leave('timeout');
  const eveRow = reg.get(ALICE, watcherId('k2'))!;
  assert.notEqual(eveRow, eve);
  assert.deepEqual([eveRow.uri, eveRow.status, eveRow.event], [EVE, 'terminated', 'timeout']);

  // Shutdown (or another node holds it now): bob's entry stays as it stands, as a row.
  bob.detach();
  const bobRow = reg.get(ALICE, watcherId('k1'))!;
  assert.notEqual(bobRow, bob);
  assert.deepEqual([bobRow.status, bobRow.event, bobRow.since], ['active', 'approved', since]);
  await col.flush();

  // The store has the plain records; a restart restores them, and the restored subscription's view
  // goes on from its entry (no new report: it was active).
  const again = new WatcherRegistry(col, 60_000);
  assert.equal(await again.restore(), 2);
  const views2 = new WatcherViews({ decide: () => ({ subHandling: 'allow', view: 'allow', transform: (d) => d }) }, again, () => true);
  const heard2: string[] = [];
  again.follow(ALICE, (recs) => heard2.push(...recs.map((r) => r.status)));
  const bob2 = views2.open(ALICE, BOB, watcherId('k1'));
  bob2.arrive();
  assert.deepEqual(heard2, []);
  assert.deepEqual([bob2.status, bob2.event, bob2.since], ['active', 'approved', since]);
  assert.deepEqual(
    again.list(ALICE).map((r) => [r.uri, r.status, r.event]).sort(),
    [
      [BOB, 'active', 'approved'],
      [EVE, 'terminated', 'timeout'],
    ],
  );
});
