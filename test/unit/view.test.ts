// The watcher view (src/policy/view.ts): what one watcher sees, and what watcher info says of it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parsePidf, serializePidf } from '../../src/formats/pidf.js';
import type { SubHandling } from '../../src/formats/pres-rules.js';
import type { WatcherEvent, WatcherStatus } from '../../src/formats/watcherinfo.js';
import { PresenceSnapshot } from '../../src/hub/types.js';
import type { Authorizer } from '../../src/policy/authorizer.js';
import { WatcherViews, renderView, type WatcherReport, type WatcherStanding } from '../../src/policy/view.js';
import { pidf } from '../support/ua.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const REMOTE = 'sip:carol@remote.test';

function setup(): { views: WatcherViews; set: (h: SubHandling) => void; log: [WatcherStatus, WatcherEvent][] } {
  let handling: SubHandling = 'allow';
  const authorizer: Authorizer = { decide: () => ({ subHandling: handling, view: `v-${handling}`, transform: (d) => d }) };
  const entries = new Map<string, WatcherStanding>();
  const log: [WatcherStatus, WatcherEvent][] = [];
  const registry: WatcherReport = {
    get: (r, id) => entries.get(`${r}|${id}`),
    report: (w, status, event) => {
      w.stand(status, event, 0, 0);
      entries.set(`${w.resource}|${w.id}`, { resource: w.resource, package: w.package, id: w.id, uri: w.uri, status, event, since: 0, updatedAt: 0 });
      log.push([status, event]);
    },
  };
  return { views: new WatcherViews(authorizer, registry, (u) => u.endsWith('@example.test')), set: (h) => { handling = h; }, log };
}

const snap = (resource: string, upstream?: { state: 'active' | 'pending' | 'terminated'; reason?: string }) =>
  new PresenceSnapshot(resource, parsePidf(pidf(resource, { note: 'hi' })), 1, true, upstream);

describe('watcher view', () => {
  it('follows the rules: pending, active (approved), terminated (rejected), and winfo hears each change once', () => {
    const { views, set, log } = setup();
    set('confirm');
    const v = views.open(ALICE, BOB, 'id1');
    v.arrive();
    assert.deepEqual(v.see(snap(ALICE)), { state: 'pending' });
    set('allow');
    const seen = v.see(snap(ALICE));
    assert.equal(seen.state, 'active');
    set('block');
    assert.deepEqual(v.see(snap(ALICE)), { state: 'terminated', by: 'rules', reason: 'rejected' });
    assert.deepEqual(log, [['pending', 'subscribe'], ['active', 'approved'], ['terminated', 'rejected']]);
  });

  it('polite-block shows the closed document of a presentity that never published, under its own key', () => {
    const { views, set } = setup();
    set('polite-block');
    const v = views.open(ALICE, BOB, 'id2');
    v.arrive();
    const s = snap(ALICE);
    const seen = v.see(s);
    assert.ok(seen.state === 'active' && seen.polite && seen.key === 'polite-block');
    const body = renderView(s, seen, 'application/pidf+xml', serializePidf).body;
    assert.match(body, /<basic>closed<\/basic>/);
    assert.doesNotMatch(body, /hi/);
  });

  it('a remote presentity is decided upstream: its pending and terminated are the watcher\'s', () => {
    const { views, set } = setup();
    set('block'); // the local rules do not apply to a remote user
    const v = views.open(REMOTE, BOB, 'id3');
    v.arrive();
    assert.deepEqual(v.see(snap(REMOTE, { state: 'pending' })), { state: 'pending' });
    assert.deepEqual(v.see(snap(REMOTE, { state: 'terminated', reason: 'probation' })), { state: 'terminated', by: 'upstream', reason: 'probation' });
    assert.equal(v.see(snap(REMOTE)).state, 'active');
  });

  it('leaving: a pending watcher that times out is "waiting" (RFC 3857 §4.7); one coming back arrives anew', () => {
    const { views, set, log } = setup();
    set('confirm');
    const v = views.open(ALICE, BOB, 'id4');
    v.arrive();
    v.leave('timeout');
    set('allow');
    const again = views.open(ALICE, BOB, 'id4');
    again.arrive();
    assert.deepEqual(log, [['pending', 'subscribe'], ['waiting', 'timeout'], ['active', 'subscribe']]);
    // restored after a restart: the registry already holds it, nothing is reported
    views.open(ALICE, BOB, 'id4').arrive();
    assert.equal(log.length, 3);
  });

  it('one rendering per snapshot and view key, whoever asks', () => {
    const { views } = setup();
    const s = snap(ALICE);
    let renders = 0;
    const render = (d: Parameters<typeof serializePidf>[0]) => { renders++; return serializePidf(d); };
    for (const id of ['a', 'b', 'c']) {
      const v = views.open(ALICE, `sip:${id}@example.test`, id);
      const seen = v.see(s);
      assert.ok(seen.state === 'active');
      renderView(s, seen, 'application/pidf+xml', render);
    }
    assert.equal(renders, 1);
  });
});
