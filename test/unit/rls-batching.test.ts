// The RLS batching window (RFC 4662 §4.2, RFC 6446): ResourceListServer/ListBinding of src/rls/rls.ts
// against an in-process Hub with a fake provider, a fake list source, allowAll, and an AdmitContext that
// counts changed() calls and hands out versions from 0, as the notifier does. Timers and Date are mocked,
// so every interval is exact.
import { afterEach, beforeEach, describe, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMultipart, rootPart } from '../../src/formats/multipart.js';
import { parsePidf } from '../../src/formats/pidf.js';
import { parseRlmi, type RlmiList } from '../../src/formats/rlmi.js';
import type { FlatMember } from '../../src/formats/resource-lists.js';
import type { AdmitContext, Binding } from '../../src/events/subscription.js';
import { Hub } from '../../src/hub/hub.js';
import type { Provider, ProviderState, ProviderWatch } from '../../src/hub/types.js';
import { allowAll } from '../../src/policy/authorizer.js';
import { WatcherViews, type WatcherReport } from '../../src/policy/view.js';
import type { ListSource, ResolvedList } from '../../src/rls/list-source.js';
import { ResourceListServer, requestedIntervalMs, requestedMaxIntervalMs } from '../../src/rls/rls.js';
import { silentLogger } from '../../src/log.js';
import { pidf } from '../support/ua.js';

const D = 'example.test';
const NO_WINFO: WatcherReport = { get: () => undefined, report: () => undefined };
const LIST = `sip:friends@${D}`;
const uri = (u: string): string => `sip:${u}@${D}`;

/** A provider whose resources change when the test says so. */
class FakeProvider implements Provider {
  readonly name = 'fake';
  readonly updates = new Map<string, (s: ProviderState) => void>();
  watches = 0;

  handles(resource: string): boolean {
    return resource.endsWith(`@${D}`) && resource !== LIST;
  }

  watch(resource: string, update: (state: ProviderState) => void): ProviderWatch {
    this.watches++;
    this.updates.set(resource, update);
    update({ document: parsePidf(pidf(resource, { note: `${resource} initial` })) });
    return { stop: () => this.updates.delete(resource) };
  }

  set(resource: string, note: string): void {
    const u = this.updates.get(resource);
    assert.ok(u, `${resource} is not watched`);
    u({ document: parsePidf(pidf(resource, { note })) });
  }
}

/** One list, members held in memory; change() tells the RLS it changed. */
class FakeLists implements ListSource {
  private readonly listeners: (() => void)[] = [];
  constructor(public members: string[]) {}
  has(u: string): boolean {
    return u === LIST;
  }
  resolve(u: string): Promise<ResolvedList | undefined> {
    if (u !== LIST) return Promise.resolve(undefined);
    const members: FlatMember[] = this.members.map((m) => ({ uri: m, path: [] }));
    return Promise.resolve({ service: { uri: LIST }, members, errors: [], loop: false });
  }
  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }
  change(members: string[]): void {
    this.members = members;
    for (const l of this.listeners) l();
  }
}

interface Decoded {
  rlmi: RlmiList;
  /** Resource URI → its PIDF body part (active instances only). */
  bodies: Map<string, string>;
}

function decode(binding: Binding): Decoded {
  const c = binding.content();
  assert.equal(c.state, 'active');
  assert.ok(c.body !== undefined && c.contentType !== undefined);
  const mp = parseMultipart(c.contentType, c.body);
  const root = rootPart(mp);
  assert.ok(root);
  const rlmi = parseRlmi(root.body);
  const bodies = new Map<string, string>();
  for (const r of rlmi.resources) {
    const cid = r.instances[0]?.cid;
    if (cid === undefined) continue;
    const part = mp.parts.find((p) => p.contentId === cid);
    assert.ok(part, `no body part for cid ${cid}`);
    bodies.set(r.uri, part.body);
  }
  return { rlmi, bodies };
}

const noteOf = (body: string | undefined): string | undefined => /<note[^>]*>([^<]*)</.exec(body ?? '')?.[1];

interface Setup {
  provider: FakeProvider;
  lists: FakeLists;
  binding: Binding;
  /** How many times the binding called ctx.changed(). */
  changed(): number;
  /** How many versions were handed out. */
  versions(): number;
}

async function setup(intervalMs: number, members: string[], maxNotifyBytes = 1_000_000): Promise<Setup> {
  const provider = new FakeProvider();
  const hub = new Hub();
  hub.register(provider);
  const lists = new FakeLists(members);
  const rls = new ResourceListServer(lists, hub, new WatcherViews(allowAll, NO_WINFO, () => true), { minIntervalMs: intervalMs, maxNotifyBytes, domain: D }, silentLogger);
  let changed = 0;
  let version = 0;
  const ctx: AdmitContext = {
    key: 'call-1|tag-1',
    resource: LIST,
    watcher: uri('watcher'),
    request: undefined,
    contentType: undefined,
    userAgent: undefined,
    changed: () => {
      changed++;
    },
    nextVersion: () => version++,
  };
  const a = await rls.admit(ctx);
  assert.ok(a.ok, 'admitted');
  return { provider, lists, binding: a.binding, changed: () => changed, versions: () => version };
}

describe('RLS batching window', () => {
  beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_000_000 }));
  afterEach(() => mock.timers.reset());

  test('the first content is full state, version 0, every member with its body', async () => {
    const s = await setup(1000, [uri('a'), uri('b'), uri('c')]);
    const d = decode(s.binding);
    assert.equal(d.rlmi.version, 0);
    assert.equal(d.rlmi.fullState, true);
    assert.deepEqual(d.rlmi.resources.map((r) => r.uri).sort(), [uri('a'), uri('b'), uri('c')]);
    for (const m of ['a', 'b', 'c']) assert.equal(noteOf(d.bodies.get(uri(m))), `${uri(m)} initial`);
    s.binding.close();
  });

  test('many changes within the interval: one changed() when it ends, then every changed member once with its latest state', async () => {
    const members = Array.from({ length: 10 }, (_, i) => uri(`m${i}`));
    const s = await setup(1000, members);
    decode(s.binding); // version 0, the NOTIFY the notifier sends at once
    const base = s.changed();

    // 3 members change, one of them 5 times, within the interval that began with version 0.
    for (let i = 0; i < 5; i++) {
      s.provider.set(uri('m1'), `m1 change ${i}`);
      mock.timers.tick(50);
    }
    s.provider.set(uri('m4'), 'm4 changed');
    s.provider.set(uri('m7'), 'm7 changed');
    mock.timers.tick(100); // 350 ms since version 0
    assert.equal(s.changed(), base, 'nothing before the interval is over');
    mock.timers.tick(649); // 999 ms
    assert.equal(s.changed(), base, 'nothing before the interval is over (1 ms left)');
    mock.timers.tick(1); // 1000 ms
    assert.equal(s.changed(), base + 1, 'exactly one changed() when the interval ends');
    mock.timers.tick(5000);
    assert.equal(s.changed(), base + 1, 'and no more');

    const d = decode(s.binding);
    assert.equal(d.rlmi.version, 1);
    assert.equal(d.rlmi.fullState, false);
    const uris = d.rlmi.resources.map((r) => r.uri);
    assert.equal(uris.length, new Set(uris).size, 'each member once');
    assert.deepEqual([...uris].sort(), [uri('m1'), uri('m4'), uri('m7')]);
    assert.equal(noteOf(d.bodies.get(uri('m1'))), 'm1 change 4', 'the latest state of m1');
    assert.equal(noteOf(d.bodies.get(uri('m4'))), 'm4 changed');
    assert.equal(noteOf(d.bodies.get(uri('m7'))), 'm7 changed');
    s.binding.close();
  });

  test('a change after a quiet interval goes at once; the next one inside the new interval waits', async () => {
    const s = await setup(1000, [uri('a'), uri('b')]);
    decode(s.binding);
    mock.timers.tick(1000);
    const base = s.changed();
    s.provider.set(uri('a'), 'a-1');
    assert.equal(s.changed(), base + 1, 'at once, no timer');
    const d1 = decode(s.binding);
    assert.equal(d1.rlmi.version, 1);
    assert.deepEqual(d1.rlmi.resources.map((r) => r.uri), [uri('a')]);
    assert.equal(noteOf(d1.bodies.get(uri('a'))), 'a-1');

    mock.timers.tick(10);
    s.provider.set(uri('b'), 'b-1');
    assert.equal(s.changed(), base + 1, 'inside the interval: waits');
    mock.timers.tick(989);
    assert.equal(s.changed(), base + 1);
    mock.timers.tick(1);
    assert.equal(s.changed(), base + 2);
    const d2 = decode(s.binding);
    assert.equal(d2.rlmi.version, 2);
    assert.deepEqual(d2.rlmi.resources.map((r) => r.uri), [uri('b')]);

    // Long after: again at once.
    mock.timers.tick(60_000);
    s.provider.set(uri('a'), 'a-2');
    assert.equal(s.changed(), base + 3);
    const d3 = decode(s.binding);
    assert.equal(d3.rlmi.version, 3);
    assert.equal(noteOf(d3.bodies.get(uri('a'))), 'a-2');
    s.binding.close();
  });

  test('nothing lost: changes between changed() and content(), and right after content(), all arrive in order', async () => {
    const members = [uri('a'), uri('b'), uri('c'), uri('d')];
    const s = await setup(500, members);
    const seen: Decoded[] = [decode(s.binding)];
    const sent = new Map<string, string>(); // member → last note the subscriber saw
    const want = new Map<string, string>(); // member → last note the provider reported
    const change = (m: string, note: string) => {
      want.set(uri(m), note);
      s.provider.set(uri(m), note);
    };
    const notify = () => {
      const d = decode(s.binding);
      seen.push(d);
      for (const [u, b] of d.bodies) sent.set(u, noteOf(b)!);
    };

    change('a', 'a1');
    mock.timers.tick(500);
    change('b', 'b1'); // the notifier has been told but has not asked for content yet
    notify(); // holds a1 and b1
    change('c', 'c1'); // right after a NOTIFY: waits for the next window
    change('a', 'a2');
    mock.timers.tick(499);
    const beforeWindow = s.changed();
    mock.timers.tick(1);
    assert.ok(s.changed() > beforeWindow, 'the next window reports the pending changes');
    notify(); // holds c1 and a2
    mock.timers.tick(10_000);
    change('d', 'd1');
    notify();

    assert.deepEqual(seen.map((d) => d.rlmi.version), [0, 1, 2, 3], 'one version per content(), by one');
    assert.deepEqual(seen.map((d) => d.rlmi.fullState), [true, false, false, false]);
    assert.deepEqual(seen[1]!.rlmi.resources.map((r) => r.uri).sort(), [uri('a'), uri('b')]);
    assert.deepEqual(seen[2]!.rlmi.resources.map((r) => r.uri).sort(), [uri('a'), uri('c')]);
    assert.deepEqual(seen[3]!.rlmi.resources.map((r) => r.uri), [uri('d')]);
    assert.deepEqual(new Map([...sent].sort()), new Map([...want].sort()), 'the subscriber ends with every latest state');
    assert.equal(s.versions(), 4);
    s.binding.close();
  });

  test('a stream of changes: at most one changed() per interval, versions by one, every member converges', async () => {
    const members = Array.from({ length: 20 }, (_, i) => uri(`s${i}`));
    const s = await setup(200, members);
    decode(s.binding);
    const latest = new Map<string, string>();
    const got = new Map<string, string>();
    const versions: number[] = [];
    let calls = s.changed();
    let notifies = 0;
    // 3 s of changes every 10 ms, a content() each time changed() was called (as the notifier would).
    for (let t = 0; t < 3000; t += 10) {
      const m = members[(t / 10) % members.length]!;
      const note = `${m}@${t}`;
      latest.set(m, note);
      s.provider.set(m, note);
      mock.timers.tick(10);
      if (s.changed() > calls) {
        calls = s.changed();
        const d = decode(s.binding);
        notifies++;
        versions.push(d.rlmi.version);
        assert.equal(d.rlmi.fullState, false);
        for (const [u, b] of d.bodies) got.set(u, noteOf(b)!);
      }
    }
    mock.timers.tick(1000);
    if (s.changed() > calls) {
      const d = decode(s.binding);
      notifies++;
      versions.push(d.rlmi.version);
      for (const [u, b] of d.bodies) got.set(u, noteOf(b)!);
    }
    assert.ok(notifies <= 3000 / 200 + 2, `rate bounded: ${notifies} NOTIFYs in 3 s at 200 ms`);
    assert.ok(notifies >= 3000 / 200 - 1, `but not starved: ${notifies}`);
    assert.deepEqual(versions, versions.map((_, i) => i + 1));
    assert.deepEqual(new Map([...got].sort()), new Map([...latest].sort()), 'nothing lost');
    s.binding.close();
  });

  test('interval 0: every change calls changed() at once', async () => {
    const s = await setup(0, [uri('a'), uri('b')]);
    decode(s.binding);
    const base = s.changed();
    s.provider.set(uri('a'), 'a1');
    assert.equal(s.changed(), base + 1);
    s.provider.set(uri('b'), 'b1');
    assert.equal(s.changed(), base + 2);
    const d = decode(s.binding);
    assert.deepEqual(d.rlmi.resources.map((r) => r.uri).sort(), [uri('a'), uri('b')]);
    s.binding.close();
  });

  test('a list change inside the interval is batched like a member change', async () => {
    const s = await setup(1000, [uri('a'), uri('b')]);
    decode(s.binding);
    const base = s.changed();
    s.lists.change([uri('a'), uri('c')]);
    await new Promise((r) => setImmediate(r)); // reload() awaits the list source (setImmediate is not mocked)
    assert.equal(s.changed(), base);
    mock.timers.tick(1000);
    assert.equal(s.changed(), base + 1);
    const d = decode(s.binding);
    assert.equal(d.rlmi.version, 1);
    const byUri = new Map(d.rlmi.resources.map((r) => [r.uri, r]));
    assert.deepEqual([...byUri.keys()].sort(), [uri('b'), uri('c')]);
    assert.equal(byUri.get(uri('b'))!.instances[0]!.state, 'terminated');
    assert.equal(byUri.get(uri('c'))!.instances[0]!.state, 'active');
    s.binding.close();
  });

  test('after close(), a pending window and later changes call nothing', async () => {
    const s = await setup(1000, [uri('a')]);
    decode(s.binding);
    s.provider.set(uri('a'), 'a1');
    const base = s.changed();
    s.binding.close();
    mock.timers.tick(5000);
    assert.equal(s.changed(), base);
    assert.equal(s.provider.updates.size, 0, 'the back-end watch is stopped');
  });

  test('RFC 6446 max-rate from the Event header becomes the minimum interval', () => {
    assert.equal(requestedIntervalMs('presence;max-rate=2'), 500);
    assert.equal(requestedIntervalMs('presence; max-rate = 0.5'), 2000);
    assert.equal(requestedIntervalMs('presence'), undefined);
    assert.equal(requestedIntervalMs('presence;max-rate=0'), undefined);
    assert.equal(requestedIntervalMs('presence;min-interval=5'), 5000, 'min-interval (seconds) is the same request');
    assert.equal(requestedMaxIntervalMs('presence;min-rate=0.1'), 10_000);
    assert.equal(requestedMaxIntervalMs('presence;max-interval=30'), 30_000);
    assert.equal(requestedMaxIntervalMs('presence;max-interval=0.01'), 1000, 'never more often than once a second');
    assert.equal(requestedMaxIntervalMs('presence'), undefined);
  });
});
