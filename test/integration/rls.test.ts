// The resource list server (RFC 4662) over real sockets: lists from rls-services on the embedded XCAP
// server, RLMI multipart/related NOTIFYs, full state then partial, batching, live list changes, shared
// back-end watches, and a 500-member list.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, requestWithAuth, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { xcap } from '../support/xcap.js';
import { decodeList, rlsServices, type ListNotify } from '../support/rls.js';

const D = 'example.test';
const uri = (u: string) => `sip:${u}@${D}`;
const OWNER = { username: 'owner', password: 'owner-pw' };

const services = (lists: Record<string, string[]>): string => rlsServices(Object.fromEntries(Object.entries(lists).map(([name, m]) => [uri(name), m])));
const decode = decodeList;

describe('resource list server', () => {
  let h: TestHerald;
  let pub: TestUA;
  let w: TestUA;
  const putLists = async (lists: Record<string, string[]>) => {
    const r = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, OWNER, services(lists), 'application/rls-services+xml');
    assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.body}`);
  };
  const publish = (who: string, note: string) =>
    pub.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '600' }, body: pidf(who, { note }) }).then((r) => assert.equal(r.status, 200));

  before(async () => {
    h = await startTestHerald({ rls: { min_notify_interval: 0 } });
    await h.herald.users.add(uri('owner'), OWNER.password);
    pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    w = await TestUA.open('tcp', '127.0.0.1', h.port('tcp'));
    await putLists({
      buddies: [uri('bob'), uri('carol'), uri('dave')],
      work: [uri('bob'), uri('erin')],
      big: Array.from({ length: 500 }, (_, i) => uri(`m${i}`)),
    });
    await publish(uri('bob'), 'bob-1');
    await publish(uri('carol'), 'carol-1');
  });
  after(async () => {
    pub.close();
    w.close();
    await h.stop();
  });

  async function subscribeList(list: string, headers: Record<string, string> = {}) {
    const callId = rnd();
    const fromTag = rnd();
    const res = await w.request('SUBSCRIBE', uri(list), {
      from: uri('watcher'),
      fromTag,
      callId,
      headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: 'application/pidf+xml, application/rlmi+xml, multipart/related', ...headers },
    });
    const seen = new Set<Msg>();
    const next = async (pred: (d: ListNotify) => boolean = () => true): Promise<ListNotify> => {
      const m = await w.nextRequest((x) => x.method === 'NOTIFY' && x.callId === callId && pred(decode(x)), 5000, seen);
      seen.add(m);
      return decode(m);
    };
    return { res, callId, fromTag, next, seen };
  }

  test('3 members: full state version 0, then a partial NOTIFY with only the member that changed', async () => {
    const s = await subscribeList('buddies');
    assert.equal(s.res.status, 200);
    assert.equal(s.res.h('require'), 'eventlist');
    const n0 = await s.next();
    assert.equal(n0.msg.h('require'), 'eventlist');
    assert.match(n0.msg.h('content-type')!, /^multipart\/related;.*type="application\/rlmi\+xml"/);
    assert.equal(n0.rlmi.version, 0);
    assert.equal(n0.rlmi.fullState, true);
    assert.equal(n0.rlmi.uri, uri('buddies'));
    assert.deepEqual(n0.rlmi.resources.map((r) => r.uri).sort(), [uri('bob'), uri('carol'), uri('dave')]);
    for (const r of n0.rlmi.resources) {
      const inst = r.instances[0]!;
      assert.equal(inst.state, 'active');
      const part = n0.parts.get(inst.cid!);
      assert.ok(part, `a body part for ${r.uri}`);
      assert.match(part, new RegExp(`entity="${r.uri}"`));
    }
    assert.match(n0.parts.get(n0.rlmi.resources.find((r) => r.uri === uri('dave'))!.instances[0]!.cid!)!, /closed/, 'never published: closed');

    await publish(uri('bob'), 'bob-2');
    const n1 = await s.next((d) => d.rlmi.version === 1);
    assert.equal(n1.rlmi.fullState, false);
    assert.deepEqual(n1.rlmi.resources.map((r) => r.uri), [uri('bob')]);
    assert.match(n1.parts.get(n1.rlmi.resources[0]!.instances[0]!.cid!)!, /bob-2/);
    assert.equal(n1.rlmi.resources[0]!.instances[0]!.id, n0.rlmi.resources.find((r) => r.uri === uri('bob'))!.instances[0]!.id, 'instance ids are stable');

    // A refresh brings full state again, with the next version.
    const r = await w.request('SUBSCRIBE', uri('buddies'), { from: uri('watcher'), fromTag: s.fromTag, toTag: s.res.toTag!, callId: s.callId, cseq: 2, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist' } });
    assert.equal(r.status, 200);
    const n2 = await s.next((d) => d.rlmi.version === 2);
    assert.equal(n2.rlmi.fullState, true);
    assert.equal(n2.rlmi.resources.length, 3);
  });

  test('a list URI without Supported: eventlist: 421 with Require', async () => {
    const r = await w.request('SUBSCRIBE', uri('buddies'), { from: uri('watcher'), headers: { Event: 'presence', Expires: '600' } });
    assert.equal(r.status, 421);
    assert.equal(r.h('require'), 'eventlist');
  });

  test("a list watcher appears in each member's watcher info (RFC 3857), and leaves it when the list subscription ends", async () => {
    const winfoCall = rnd();
    const seen = new Set<Msg>();
    const winfo = async (pred: (m: Msg) => boolean) => {
      const m = await pub.nextRequest((x) => x.method === 'NOTIFY' && x.callId === winfoCall && pred(x), 5000, seen);
      seen.add(m);
      return m;
    };
    const erin = uri('erin');
    const wi = await pub.request('SUBSCRIBE', erin, { from: erin, callId: winfoCall, headers: { Event: 'presence.winfo', Expires: '600' } });
    assert.equal(wi.status, 200);
    await winfo(() => true);
    const s = await subscribeList('work');
    assert.equal(s.res.status, 200);
    await s.next();
    const joined = await winfo((m) => m.body.includes(uri('watcher')));
    assert.match(joined.body, /status="active"/);
    assert.match(joined.body, /event="subscribe"/);
    await w.request('SUBSCRIBE', uri('work'), {
      from: uri('watcher'), fromTag: s.fromTag, toTag: s.res.toTag!, callId: s.callId, cseq: 2,
      headers: { Event: 'presence', Expires: '0', Supported: 'eventlist' },
    });
    const left = await winfo((m) => m.body.includes(uri('watcher')) && m.body.includes('terminated'));
    assert.match(left.body, /event="timeout"/);
  });

  test('a list is routed to the RLS before content negotiation: Accept naming only RLMI and multipart/related gets 200 and RLMI', async () => {
    const s = await subscribeList('buddies', { Accept: 'application/rlmi+xml, multipart/related' });
    assert.equal(s.res.status, 200);
    const n0 = await s.next();
    assert.match(n0.msg.h('content-type')!, /^multipart\/related;.*type="application\/rlmi\+xml"/);
    assert.equal(n0.rlmi.fullState, true);
    await w.request('SUBSCRIBE', uri('buddies'), {
      from: uri('watcher'), fromTag: s.fromTag, toTag: s.res.toTag!, callId: s.callId, cseq: 2,
      headers: { Event: 'presence', Expires: '0', Supported: 'eventlist' },
    });
  });

  test('the RLS checks Accept itself: a list subscriber that accepts no RLMI gets 406', async () => {
    const r = await w.request('SUBSCRIBE', uri('buddies'), { from: uri('watcher'), headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: 'application/pidf+xml' } });
    assert.equal(r.status, 406);
    assert.match(r.h('accept') ?? '', /application\/rlmi\+xml/);
  });

  test('the same buddy in two lists costs one back-end watch', async () => {
    const before = h.herald.hub.stats();
    const a = await subscribeList('buddies');
    await a.next();
    const b = await subscribeList('work');
    await b.next();
    const after = h.herald.hub.stats();
    const bobWatches = after.resources;
    // bob, carol, dave, erin: four resources whatever the number of lists and subscriptions.
    assert.ok(bobWatches <= before.resources + 4, `${JSON.stringify(before)} → ${JSON.stringify(after)}`);
    assert.equal(new Set([uri('bob'), uri('carol'), uri('dave'), uri('erin')]).size, 4);
    assert.ok(h.herald.hub.peek(uri('bob')) !== undefined);
    // The same figure as operators see it.
    const metrics = await (await fetch(h.xcapUrl().replace(/\/xcap-root$/, '/metrics'))).text();
    assert.match(metrics, new RegExp(`herald_hub_resources ${after.resources}\\b`));
  });

  test('list changes on XCAP change the subscription live: added members appear, removed ones end terminated', async () => {
    const s = await subscribeList('work');
    await s.next();
    await putLists({
      buddies: [uri('bob'), uri('carol'), uri('dave')],
      work: [uri('erin'), uri('frank')],
      big: Array.from({ length: 500 }, (_, i) => uri(`m${i}`)),
    });
    const n = await s.next((d) => d.rlmi.resources.some((r) => r.uri === uri('frank')) && d.rlmi.resources.some((r) => r.uri === uri('bob')));
    assert.equal(n.rlmi.fullState, false);
    const bob = n.rlmi.resources.find((r) => r.uri === uri('bob'))!;
    assert.equal(bob.instances[0]!.state, 'terminated');
    assert.ok(bob.instances[0]!.reason);
    assert.equal(n.rlmi.resources.find((r) => r.uri === uri('frank'))!.instances[0]!.state, 'active');
  });

  test('500 members: full state complete (split by size, RFC 4662 §5.2), then one change in one small NOTIFY', async () => {
    const s = await subscribeList('big');
    assert.equal(s.res.status, 200);
    const first = await s.next();
    assert.equal(first.rlmi.fullState, true);
    assert.equal(first.rlmi.resources.length, 500, 'full state lists every resource');
    const known = new Set(first.rlmi.resources.filter((r) => r.instances.length > 0).map((r) => r.uri));
    let version = 0;
    while (known.size < 500) {
      const more = await s.next((d) => d.rlmi.version === version + 1);
      version = more.rlmi.version;
      assert.equal(more.rlmi.fullState, false);
      for (const r of more.rlmi.resources) if (r.instances.length > 0) known.add(r.uri);
      assert.ok(version < 50, 'bounded');
    }
    await publish(uri('m250'), 'changed-250');
    const change = await s.next((d) => d.rlmi.resources.some((r) => r.uri === uri('m250')) && d.rlmi.version > version);
    assert.equal(change.rlmi.resources.length, 1);
    assert.ok(Buffer.byteLength(change.msg.body) < 3000, `one change is small: ${Buffer.byteLength(change.msg.body)} bytes`);
  });
});

describe('resource list server: each member decided by its own rules', () => {
  test("allow, confirm (no rules: the operator's default) and block show as active, pending and terminated", async () => {
    const h = await startTestHerald({ policy: { default: 'confirm' } });
    const pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      await h.herald.users.add(uri('owner'), OWNER.password);
      for (const u of ['open', 'blocker']) await h.herald.users.add(uri(u), `${u}-pw`);
      const r = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, OWNER, services({ mixed: [uri('open'), uri('shy'), uri('blocker')] }), 'application/rls-services+xml');
      assert.equal(r.status, 201, r.body);
      const allowWatcher = (id: string, who: string) =>
        `<cr:ruleset xmlns="urn:ietf:params:xml:ns:pres-rules" xmlns:cr="urn:ietf:params:xml:ns:common-policy"><cr:rule id="${id}"><cr:conditions><cr:identity><cr:one id="${who}"/></cr:identity></cr:conditions><cr:actions><sub-handling>allow</sub-handling></cr:actions><cr:transformations><provide-services><all-services/></provide-services></cr:transformations></cr:rule></cr:ruleset>`;
      assert.equal((await xcap('PUT', h.xcapUrl(), `pres-rules/users/${uri('open')}/index`, { username: 'open', password: 'open-pw' }, allowWatcher('w', uri('watcher')), 'application/auth-policy+xml')).status, 201);
      // blocker's rules name someone else only: no rule matches the watcher ⇒ block (RFC 5025 §3.2.1).
      assert.equal((await xcap('PUT', h.xcapUrl(), `pres-rules/users/${uri('blocker')}/index`, { username: 'blocker', password: 'blocker-pw' }, allowWatcher('x', uri('someone-else')), 'application/auth-policy+xml')).status, 201);
      for (const u of ['open', 'shy', 'blocker']) {
        await pub.request('PUBLISH', uri(u), { from: uri(u), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri(u), { note: `secret-${u}` }) });
      }
      const callId = rnd();
      const s = await w.request('SUBSCRIBE', uri('mixed'), { from: uri('watcher'), callId, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist' } });
      assert.equal(s.status, 200);
      const n = decode(await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId));
      const state = (u: string) => n.rlmi.resources.find((x) => x.uri === uri(u))!.instances[0]!;
      assert.equal(state('open').state, 'active');
      assert.equal(state('shy').state, 'pending');
      assert.equal(state('blocker').state, 'terminated');
      assert.equal(state('blocker').reason, 'rejected');
      assert.ok(!n.msg.body.includes('secret-shy') && !n.msg.body.includes('secret-blocker'), 'nothing of the pending or blocked members leaks');
      assert.doesNotMatch(n.msg.body, /secret-open/, 'open allows services but not notes');
    } finally {
      pub.close();
      w.close();
      await h.stop();
    }
  });
});

describe('resource list server: batching and authentication', () => {
  test('changes within the interval are batched into one partial NOTIFY, in order, none lost', async () => {
    const h = await startTestHerald({ rls: { min_notify_interval: 400 } });
    const pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      await h.herald.users.add(uri('owner'), OWNER.password);
      const r = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, OWNER, services({ friends: [uri('a'), uri('b'), uri('c')] }), 'application/rls-services+xml');
      assert.equal(r.status, 201, r.body);
      const callId = rnd();
      const s = await w.request('SUBSCRIBE', uri('friends'), { from: uri('watcher'), callId, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist' } });
      assert.equal(s.status, 200);
      await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
      await new Promise((res) => setTimeout(res, 450));
      for (const who of ['a', 'b', 'c']) {
        await pub.request('PUBLISH', uri(who), { from: uri(who), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri(who), { note: `${who}-x` }) });
      }
      await pub.request('PUBLISH', uri('a'), { from: uri('a'), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri('a'), { note: 'a-last' }) });
      const got = (await w.quiet(1200)).filter((m) => m.method === 'NOTIFY' && m.callId === callId).map(decode);
      assert.ok(got.length >= 1 && got.length <= 2, `batched: ${got.length} NOTIFYs`);
      const versions = got.map((d) => d.rlmi.version);
      assert.deepEqual(versions, [...versions].sort((x, y) => x - y), 'in order');
      const last = new Map<string, string>();
      for (const d of got) for (const res of d.rlmi.resources) last.set(res.uri, d.parts.get(res.instances[0]!.cid!)!);
      assert.match(last.get(uri('a'))!, /a-last/, 'the newest state of a');
      assert.match(last.get(uri('b'))!, /b-x/);
      assert.match(last.get(uri('c'))!, /c-x/);
    } finally {
      pub.close();
      w.close();
      await h.stop();
    }
  });

  test('RFC 6446 rates: max-interval (min-rate) brings a NOTIFY without a change; the applied rates are echoed', async () => {
    const h = await startTestHerald({ rls: { min_notify_interval: 0 } });
    const w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      await h.herald.users.add(uri('owner'), OWNER.password);
      await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, OWNER, services({ quiet: [uri('q1')] }), 'application/rls-services+xml');
      const callId = rnd();
      const s = await w.request('SUBSCRIBE', uri('quiet'), { from: uri('watcher'), callId, headers: { Event: 'presence;min-interval=0.5;max-interval=1', Expires: '600', Supported: 'eventlist' } });
      assert.equal(s.status, 200);
      const first = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
      assert.match(first.h('subscription-state')!, /;max-rate=2;min-rate=1/);
      const second = decode(await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m !== first, 3000, new Set([first])));
      assert.equal(second.rlmi.version, 1);
      assert.equal(second.rlmi.fullState, false);
    } finally {
      w.close();
      await h.stop();
    }
  });

  test('with authentication on, a URI that is neither a user nor a list: 404', async () => {
    const h = await startTestHerald({ auth: { enabled: true } });
    await h.herald.users.add(uri('watcher'), 'w-pw');
    const u = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      const r = await requestWithAuth(u, 'SUBSCRIBE', uri('nobody-here'), { from: uri('watcher'), headers: { Event: 'presence', Expires: '600', Supported: 'eventlist' } }, 'watcher', 'w-pw');
      assert.equal(r.status, 404);
    } finally {
      u.close();
      await h.stop();
    }
  });
});
