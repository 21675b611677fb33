// The SIP gateway (presence B2BUA) and the RFC 6665 subscriber over real loopback sockets, against a
// scripted upstream of our own (a small UAS on node:dgram) that answers each SUBSCRIBE as a test
// says: the rare codes (423, 401, 403, 404, 489, 481, 503, silence) and NOTIFY terminated reasons.
import { watchHub } from '../support/hub-watch.js';
import { after, afterEach, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import sip from 'sip';
import { Hub } from '../../src/hub/hub.js';
import type { PresenceSnapshot } from '../../src/hub/types.js';
import { silentLogger, type Logger } from '../../src/log.js';
import { SipStack } from '../../src/sip/stack.js';
import { Store } from '../../src/store/store.js';
import type { SubscriptionLease } from '../../src/events/subscriber.js';
import { createSipGateway, SipGatewayConfigSchema, type SipGateway } from '../../gateways/sip/index.js';
import { tempDir } from '../support/herald.js';
import { BOB, ScriptedUpstream, pidf } from '../support/upstream.js';
import { haveDnsmasq, TestDns } from '../support/dns.js';
import { freePort } from '../support/process.js';
import { capturedLog } from '../support/log-lines.js';

const rnd = (): string => randomBytes(6).toString('hex');
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Rig {
  up: ScriptedUpstream;
  stack: SipStack;
  store: Store;
  gw: SipGateway;
  hub: Hub;
  stop(opts?: { keepUpstream?: boolean; keepStore?: boolean }): Promise<void>;
}

const rigs: Rig[] = [];

async function rig(opts: { up?: ScriptedUpstream; store?: string; trusts?: boolean; policy?: 'any' | 'peers'; username?: string; restore?: boolean; extra?: Record<string, unknown>; dns?: string; lease?: SubscriptionLease; log?: Logger } = {}): Promise<Rig> {
  const up = opts.up ?? (await ScriptedUpstream.start());
  // With a DNS server the next hop is found by RFC 3263 (no outbound proxy).
  const stack = new SipStack({ listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }], maxMessageBytes: 65535, log: silentLogger, ...(opts.dns ? { dns: { servers: [opts.dns] } } : {}) });
  const store = Store.open(opts.store ?? 'memory://', silentLogger);
  const config = SipGatewayConfigSchema.parse({
    enabled: true,
    policy: opts.policy ?? 'peers',
    peers: [{ domain: 'remote.test', trusts_us: opts.trusts ?? false, ...(opts.dns ? {} : { outbound_proxy: `sip:127.0.0.1:${up.port}` }), username: opts.username ?? '', password: 'secret' }],
    identity: 'sip:gateway@example.test',
    min_retry: 0.1,
    max_retry: 0.8,
    ...(opts.extra ?? {}),
  });
  const gw = createSipGateway({ stack, store, log: opts.log ?? silentLogger, localDomains: ['example.test'], config, ...(opts.lease ? { lease: opts.lease } : {}) });
  stack.onRequest = (tx) => {
    if (!gw.handleNotify(tx)) tx.respond({ status: 405, reason: 'Method Not Allowed' });
  };
  const hub = new Hub();
  hub.register(gw.provider);
  if (opts.restore) await gw.restore();
  await stack.start();
  const r: Rig = {
    up,
    stack,
    store,
    gw,
    hub,
    async stop(o = {}) {
      await gw.stop();
      await stack.stop();
      await store.close();
      if (!o.keepUpstream) up.close();
      rigs.splice(rigs.indexOf(r), 1);
    },
  };
  rigs.push(r);
  return r;
}

/** The delays the subscriber scheduled (its debug log): what it decided, not when the timers fired. */
function scheduled(lines: Record<string, unknown>[], msg: typeof REFRESH | typeof RESUBSCRIBE): Record<string, number>[] {
  return lines.filter((l) => l['msg'] === msg) as Record<string, number>[];
}
const REFRESH = 'upstream subscription refresh scheduled';
const RESUBSCRIBE = 'new upstream subscription scheduled';

/** Watches a resource through the hub; `states` collects every snapshot. */
const watch = (r: Rig, resource: string, watcher = 'sip:alice@example.test') => watchHub(r.hub, resource, watcher);

const noteOf = (s: PresenceSnapshot): string | undefined => {
  const n = s.document?.tuples[0]?.element.children.find((c) => typeof c !== 'string' && c.name === 'note');
  return n && typeof n !== 'string' ? String(n.children[0]) : undefined;
};

afterEach(async () => {
  for (const r of [...rigs]) await r.stop();
});

describe('SIP gateway: upstream subscription dialogs (RFC 6665, RFC 3856)', () => {
  test('subscribes with the watcher as From, delivers the PIDF, refreshes in-dialog, unsubscribes when the last watcher leaves', async () => {
    const c = capturedLog('debug');
    const r = await rig({ log: c.log });
    r.up.script = (_q, n) => (n === 0 ? { status: 200, expires: 2 } : { status: 200, expires: 2, notify: false });
    const a = watch(r, BOB, 'sip:alice@example.test');
    const first = await r.up.next();
    assert.equal(first.from, 'sip:alice@example.test', 'per-watcher mode: From is the watcher');
    assert.equal(first.h('Event'), 'presence');
    assert.match(first.h('Accept') ?? '', /application\/pidf\+xml/);
    assert.match(first.h('Supported') ?? '', /eventlist/);
    assert.ok(first.fromTag, 'From carries a tag');
    assert.match(first.h('Contact') ?? '', /^<sip:127\.0\.0\.1:\d+>$/);
    const s = await a.until((x) => x.document !== undefined);
    assert.equal(noteOf(s), 'hello');
    assert.equal(s.upstream?.state, 'active');
    assert.equal(r.gw.stats().upstreamSubscriptions, 1);

    // Refresh at 0.8 of the granted 2 s: same dialog, next CSeq.
    const refresh = await r.up.next((q) => q.toTag !== undefined, 4000);
    assert.equal(refresh.callId, first.callId);
    assert.equal(refresh.fromTag, first.fromTag);
    assert.ok(refresh.cseq > first.cseq);
    const elapsed = refresh.at - first.at;
    assert.ok(elapsed >= 1300, `refresh after ${elapsed} ms: not before 0.8 of the granted 2 s`);
    // Each refresh is set for 0.8 of the granted time left (RFC 6665 §4.1.2.2: before it runs out).
    const plans = scheduled(c.lines, REFRESH);
    assert.ok(plans.length >= 1, 'a refresh was scheduled');
    for (const p of plans) {
      assert.ok(p['expiresInMs']! > 0 && p['expiresInMs']! <= 2000, `granted 2 s, ${p['expiresInMs']} ms left`);
      assert.equal(p['refreshInMs'], Math.floor(p['expiresInMs']! * 0.8));
    }

    // A change upstream reaches the watcher.
    const st = await r.up.notify(first.callId, 'active;expires=2', pidf(BOB, 'changed'));
    assert.equal(st, 200);
    await a.until((x) => noteOf(x) === 'changed');

    const before = r.up.subscribes.length;
    a.w.stop();
    const unsub = await r.up.next((q) => q.expires === 0, 3000, before);
    assert.equal(unsub.callId, first.callId, 'unsubscribe is in the dialog');
    await sleep(100);
    assert.equal(r.gw.stats().upstreamSubscriptions, 0);
  });

  test('a NOTIFY that arrives before the 200 creates the dialog (RFC 6665 §4.1.2.4)', async () => {
    const r = await rig();
    let sent: Promise<number | undefined> | undefined;
    r.up.script = (q) => {
      // Register the dialog and NOTIFY first; the 200 follows 300 ms later.
      const c = sip.parseUri(sip.stringifyUri((q.raw.headers.contact as { uri: string }[])[0]!.uri))!;
      const toTag = rnd();
      r.up.dialogs.set(q.callId, { callId: q.callId, fromTag: q.fromTag!, toTag, from: q.from, uri: BOB, target: { host: c.host, port: c.port! }, cseq: 0 });
      sent = r.up.notify(q.callId, 'active;expires=600', pidf(BOB, 'early'));
      setTimeout(() => {
        const head = q.text.split('\r\n\r\n')[0]!.split('\r\n');
        const lines = [
          'SIP/2.0 200 OK',
          ...head.filter((l) => /^(Via|From|Call-ID|CSeq)\s*:/i.test(l)),
          `${head.find((l) => /^To\s*:/i.test(l))!};tag=${toTag}`,
          'Expires: 600',
          `Contact: <sip:presence@127.0.0.1:${r.up.port}>`,
          'Content-Length: 0',
          '',
          '',
        ];
        const v = q.raw.headers.via![0]!;
        (r.up as unknown as { send(t: string, h: string, p: number): void }).send(lines.join('\r\n'), '127.0.0.1', Number(v.params['rport'] ?? v.port));
      }, 300);
      return 'drop';
    };
    const a = watch(r, BOB);
    await a.until((x) => noteOf(x) === 'early');
    assert.equal(await sent, 200, 'the early NOTIFY is answered 200');
    await sleep(500);
    assert.equal(r.gw.stats().established, 1);
    assert.equal(r.up.subscribes.length, 1, 'no second SUBSCRIBE');
  });

  test('423 Interval Too Brief: retried with the Min-Expires', async () => {
    const r = await rig();
    r.up.script = (_q, n) => (n === 0 ? { status: 423, reason: 'Interval Too Brief', headers: { 'Min-Expires': '7200' } } : { status: 200 });
    const a = watch(r, BOB);
    await a.until((x) => x.document !== undefined);
    assert.equal(r.up.subscribes[0]!.expires, 3600);
    assert.equal(r.up.subscribes[1]!.expires, 7200);
    assert.equal(r.up.subscribes[1]!.callId, r.up.subscribes[0]!.callId, 'same Call-ID, next CSeq');
    assert.equal(r.up.subscribes[1]!.cseq, r.up.subscribes[0]!.cseq + 1);
  });

  test('401: answered once with the peer credentials (digest, qop=auth)', async () => {
    const r = await rig({ username: 'herald' });
    r.up.script = (q) => (q.h('Authorization') ? { status: 200 } : { status: 401, reason: 'Unauthorized', headers: { 'WWW-Authenticate': 'Digest realm="remote.test", nonce="n0nce", qop="auth", algorithm=MD5' } });
    const a = watch(r, BOB);
    const second = await r.up.next((q) => q.h('Authorization') !== undefined, 2000);
    const auth = second.h('Authorization')!;
    const get = (k: string) => new RegExp(`${k}="?([^",]+)"?`).exec(auth)?.[1];
    const md5 = (s: string) => createHash('md5').update(s).digest('hex');
    const ha1 = md5('herald:remote.test:secret');
    const ha2 = md5(`SUBSCRIBE:${get('uri')}`);
    assert.equal(get('response'), md5(`${ha1}:n0nce:${get('nc')}:${get('cnonce')}:auth:${ha2}`));
    assert.equal(get('username'), 'herald');
    await a.until((x) => x.document !== undefined);
  });

  for (const [status, reason] of [
    [403, 'rejected'],
    [404, 'noresource'],
    [489, 'noresource'],
    [603, 'rejected'],
  ] as const) {
    test(`${status}: terminated to the watcher with reason ${reason}, no retry`, async () => {
      const r = await rig();
      r.up.script = () => ({ status });
      const a = watch(r, BOB);
      const s = await a.until((x) => x.upstream?.state === 'terminated');
      assert.equal(s.upstream?.reason, reason);
      await sleep(400);
      assert.equal(r.up.subscribes.length, 1, 'given up');
      assert.equal(r.gw.stats().upstreamSubscriptions, 0);
    });
  }

  test('401 without credentials for the peer: terminated (rejected)', async () => {
    const r = await rig();
    r.up.script = () => ({ status: 401, headers: { 'WWW-Authenticate': 'Digest realm="remote.test", nonce="x", algorithm=MD5' } });
    const a = watch(r, BOB);
    const s = await a.until((x) => x.upstream?.state === 'terminated');
    assert.equal(s.upstream?.reason, 'rejected');
  });

  test('cluster fence: while the lease is not known to run, no refresh goes out in the dialog; once it is, the refresh does', async () => {
    let mayAct = true;
    const r = await rig({ lease: { claim: () => Promise.resolve(true), release: () => undefined, mayAct: () => mayAct } });
    r.up.script = (_q, n) => (n === 0 ? { status: 200, expires: 4 } : { status: 200, expires: 4, notify: false });
    const a = watch(r, BOB, 'sip:alice@example.test');
    const first = await r.up.next();
    await a.until((x) => x.document !== undefined);
    // As after a pause past the lease: the refresh falls due (0.8 of 4 s) while the fence is closed.
    mayAct = false;
    await assert.rejects(r.up.next((q) => q.toTag !== undefined, 4500), /no matching SUBSCRIBE/);
    mayAct = true;
    const refresh = await r.up.next((q) => q.toTag !== undefined, 4000);
    assert.equal(refresh.callId, first.callId, 'the same dialog');
    assert.ok(refresh.cseq > first.cseq);
    a.w.stop();
  });

  test('481 to a refresh: a new subscription (new Call-ID) at once', async () => {
    const c = capturedLog('debug');
    const r = await rig({ log: c.log });
    r.up.script = (q, n) => (n === 0 ? { status: 200, expires: 1 } : q.toTag ? { status: 481, reason: 'Subscription Does Not Exist' } : { status: 200 });
    const a = watch(r, BOB);
    const first = await r.up.next();
    await a.until((x) => x.document !== undefined);
    await r.up.next((q) => q.toTag === undefined && q.callId !== first.callId, 4000);
    assert.deepEqual(
      scheduled(c.lines, RESUBSCRIBE).map((p) => p['subscribeInMs']),
      [0],
      'the 481 is followed by a new SUBSCRIBE straight away',
    );
    await sleep(200);
    assert.equal(r.gw.stats().established, 1);
  });

  test('503: new subscriptions with exponential backoff (bounded by max_retry)', async () => {
    const c = capturedLog('debug');
    const r = await rig({ log: c.log });
    r.up.script = (_q, n) => (n < 5 ? { status: 503, reason: 'Service Unavailable' } : { status: 200 });
    const a = watch(r, BOB);
    await a.until((x) => x.document !== undefined, 8000);
    // min 100 ms doubling, capped at 800, each with up to 10% jitter: 100, 200, 400, 800, 800.
    const delays = scheduled(c.lines, RESUBSCRIBE).map((p) => p['subscribeInMs']!);
    const bases = [100, 200, 400, 800, 800];
    assert.equal(delays.length, bases.length, `one backoff per 503: ${delays.join(', ')}`);
    delays.forEach((d, i) => assert.ok(d >= bases[i]! && d <= Math.round(bases[i]! * 1.1), `backoff ${i + 1}: ${d} ms (base ${bases[i]})`));
    const gaps = r.up.subscribes.slice(1, 6).map((q, i) => q.at - r.up.subscribes[i]!.at);
    gaps.forEach((g, i) => assert.ok(g >= bases[i]! - 5, `no SUBSCRIBE before its backoff: ${gaps.join(', ')}`));
    assert.ok(new Set(r.up.subscribes.slice(0, 6).map((q) => q.callId)).size === 6, 'each retry is a new subscription');
  });

  test('NOTIFY terminated;reason=deactivated: re-subscribes; probation honours retry-after; rejected gives up', async () => {
    const c = capturedLog('debug');
    const r = await rig({ log: c.log });
    const a = watch(r, BOB);
    const first = await r.up.next();
    await a.until((x) => x.document !== undefined);
    assert.equal(await r.up.notify(first.callId, 'terminated;reason=deactivated'), 200);
    const second = await r.up.next((q) => q.callId !== first.callId, 2000);
    assert.deepEqual(scheduled(c.lines, RESUBSCRIBE).map((p) => p['subscribeInMs']), [0], 'deactivated: re-subscribed at once (RFC 6665 §4.1.3)');
    await sleep(150);
    const t0 = Date.now();
    assert.equal(await r.up.notify(second.callId, 'terminated;reason=probation;retry-after=1'), 200);
    const third = await r.up.next((q) => q.callId !== first.callId && q.callId !== second.callId, 3000);
    assert.ok(third.at - t0 >= 950, `probation waited ${third.at - t0} ms (retry-after=1)`);
    assert.equal(scheduled(c.lines, RESUBSCRIBE)[1]?.['subscribeInMs'], 1000, 'probation: after its retry-after');
    await sleep(150);
    assert.equal(await r.up.notify(third.callId, 'terminated;reason=rejected'), 200);
    const s = await a.until((x) => x.upstream?.state === 'terminated');
    assert.equal(s.upstream?.reason, 'rejected');
    await sleep(400);
    assert.equal(r.up.subscribes.length, 3, 'no SUBSCRIBE after rejected');
  });

  test('NOTIFY for an unknown dialog: 481; NOTIFY with an old CSeq: 500', async () => {
    const r = await rig();
    const port = r.stack.listening[0]!.port;
    assert.equal(await r.up.strayNotify({ host: '127.0.0.1', port }), 481);
    const a = watch(r, BOB);
    const first = await r.up.next();
    await a.until((x) => x.document !== undefined);
    assert.equal(await r.up.notify(first.callId, 'active;expires=60', pidf(BOB, 'x'), { cseq: 1 }), 500);
    assert.equal(await r.up.notify(first.callId, 'active;expires=60', pidf(BOB, 'x'), { toTag: 'other' }), 481, 'a forked dialog is refused');
  });

  test('federation policy: a domain that is not a peer is refused (403 / rejected instance)', async () => {
    const r = await rig();
    assert.deepEqual(r.gw.provider.refuse!('sip:carol@elsewhere.test', 'sip:alice@example.test'), { status: 403, reason: 'Forbidden', rlmiReason: 'rejected' });
    assert.equal(r.gw.provider.refuse!(BOB, 'sip:alice@example.test'), undefined);
    assert.equal(r.gw.provider.handles('sip:alice@example.test'), false, 'local domains are not routed here');
    const a = watch(r, 'sip:carol@elsewhere.test');
    const s = await a.until((x) => x.upstream?.state === 'terminated');
    assert.equal(s.upstream?.reason, 'rejected');
    assert.equal(r.up.subscribes.length, 0);
    const any = await rig({ policy: 'any' });
    assert.equal(any.gw.provider.refuse!('sip:carol@elsewhere.test', 'sip:alice@example.test'), undefined);
  });

  test('shared (trusts_us) vs per-watcher: upstream subscriptions held', async () => {
    const per = await rig();
    const shared = await rig({ trusts: true });
    const watchers = ['sip:a@example.test', 'sip:b@example.test', 'sip:c@example.test'];
    const ws = watchers.flatMap((w) => [watch(per, BOB, w), watch(shared, BOB, w)]);
    await Promise.all(ws.map((x) => x.until((s) => s.document !== undefined)));
    assert.equal(per.gw.stats().upstreamSubscriptions, 3);
    assert.equal(shared.gw.stats().upstreamSubscriptions, 1);
    assert.deepEqual(new Set(per.up.subscribes.map((q) => q.from)), new Set(watchers));
    assert.deepEqual(shared.up.subscribes.map((q) => q.from), ['sip:gateway@example.test'], 'shared: From is the gateway identity');
    for (const x of ws) x.w.stop();
    await sleep(200);
    assert.equal(per.gw.stats().upstreamSubscriptions, 0);
    assert.equal(shared.gw.stats().upstreamSubscriptions, 0);
    assert.equal(shared.up.subscribes.filter((q) => q.expires === 0).length, 1);
  });

  test('restart: the upstream dialog is kept (in-dialog refresh), an expired one re-created', async () => {
    const dir = tempDir();
    const url = `sqlite://${join(dir, 'gw.sqlite')}`;
    const up = await ScriptedUpstream.start();
    const r1 = await rig({ up, store: url });
    up.script = (q) => ({ status: 200, expires: q.from.startsWith('sip:short') ? 1 : 600 });
    const a = watch(r1, BOB, 'sip:alice@example.test');
    const b = watch(r1, 'sip:dave@remote.test', 'sip:short@example.test');
    await a.until((x) => x.document !== undefined);
    await b.until((x) => x.document !== undefined);
    const first = up.subscribes.find((q) => q.from === 'sip:alice@example.test')!;
    await r1.stop({ keepUpstream: true });
    await sleep(1300); // the short one (1 s) expires while Herald is down; its refresh was due at 0.8 s

    const n = up.subscribes.length;
    up.note = 'after restart';
    const r2 = await rig({ up, store: url, restore: true });
    const refresh = await up.next((q) => q.callId === first.callId, 3000, n);
    assert.equal(refresh.toTag !== undefined, true, 'an in-dialog refresh, not a new subscription');
    assert.ok(refresh.cseq > first.cseq);
    assert.match(refresh.h('Contact') ?? '', new RegExp(`:${r2.stack.listening[0]!.port}>`), 'the refresh updates the remote target');
    const recreated = await up.next((q) => q.from === 'sip:short@example.test', 3000, n);
    assert.equal(recreated.toTag, undefined, 'the expired one is a new subscription');
    // The local watcher comes back (the notifier's restore) and gets the state the refresh triggered.
    const a2 = watch(r2, BOB, 'sip:alice@example.test');
    await a2.until((x) => noteOf(x) === 'after restart');
    assert.equal(up.subscribes.slice(n).filter((q) => q.from === 'sip:alice@example.test' && q.toTag === undefined).length, 0);
    await r2.stop();
  });
});

describe('SIP gateway: transaction timeout', () => {
  after(async () => {
    for (const r of [...rigs]) await r.stop();
  });
  test('no answer (Timer F, 32 s): a new subscription after the backoff', { timeout: 60_000 }, async () => {
    const r = await rig();
    r.up.script = (_q, n) => (n === 0 ? 'drop' : { status: 200 });
    const a = watch(r, BOB);
    await a.until((x) => x.document !== undefined, 45_000);
    assert.ok(r.up.subscribes.length >= 2);
    assert.notEqual(r.up.subscribes[1]!.callId, r.up.subscribes[0]!.callId);
  });
});

describe('SIP gateway: RFC 3263 next hops through a real DNS server (dnsmasq)', { skip: !haveDnsmasq && 'dnsmasq not installed (scripts/install-peers.sh)' }, () => {
  let dns: TestDns | undefined;
  let spare: ScriptedUpstream | undefined;
  afterEach(async () => {
    for (const r of [...rigs]) await r.stop();
    spare?.close();
    spare = undefined;
    await dns?.stop();
    dns = undefined;
  });

  /** remote.test: NAPTR prefers TCP (a closed port), then UDP with two SRV targets, first `first`. */
  async function zone(first: ScriptedUpstream, second: ScriptedUpstream): Promise<TestDns> {
    const closed = await freePort();
    return TestDns.start(['remote.test'], {
      naptr: [
        ['remote.test', 10, 10, 's', 'SIP+D2T', '', '_sip._tcp.remote.test'],
        ['remote.test', 20, 10, 's', 'SIP+D2U', '', '_sip._udp.remote.test'],
      ],
      srv: [
        ['_sip._tcp.remote.test', 'tcp.remote.test', closed, 10, 0],
        ['_sip._udp.remote.test', 'one.remote.test', first.port, 10, 0],
        ['_sip._udp.remote.test', 'two.remote.test', second.port, 20, 0],
      ],
      a: [
        ['tcp.remote.test', '127.0.0.1'],
        ['one.remote.test', '127.0.0.1'],
        ['two.remote.test', '127.0.0.1'],
      ],
    });
  }

  test('NAPTR → SRV → A: a refused TCP target and a 503 target are passed over for the next SRV target (§4.3)', async () => {
    const first = await ScriptedUpstream.start();
    spare = first;
    first.script = () => ({ status: 503, reason: 'Service Unavailable' });
    const second = await ScriptedUpstream.start();
    dns = await zone(first, second);
    const r = await rig({ up: second, dns: dns.server });
    const a = watch(r, BOB);
    const s = await a.until((x) => x.document !== undefined, 10_000);
    assert.equal(noteOf(s), 'hello');
    assert.equal(first.subscribes.length, 1, 'the priority-10 UDP target was tried first and answered 503');
    assert.equal(second.subscribes.length, 1, 'then the priority-20 target, in the same attempt');
    assert.equal(second.subscribes[0]!.callId, first.subscribes[0]!.callId, 'the same request, a new transaction');
    assert.match(second.subscribes[0]!.h('Contact') ?? '', /^<sip:127\.0\.0\.1:\d+>$/, 'Contact of the UDP transport it left on');
  });

  test('a target that does not answer (Timer F) is passed over for the next', { timeout: 60_000 }, async () => {
    const first = await ScriptedUpstream.start();
    spare = first;
    first.script = () => 'drop';
    const second = await ScriptedUpstream.start();
    dns = await zone(first, second);
    const r = await rig({ up: second, dns: dns.server });
    const a = watch(r, BOB);
    await a.until((x) => x.document !== undefined, 45_000);
    assert.equal(first.subscribes.length, 1);
    assert.equal(second.subscribes[0]!.callId, first.subscribes[0]!.callId);
  });
});

describe('Figures: upstream subscriptions for 1,000 local watchers of 100 remote users', () => {
  for (const mode of ['shared', 'per-watcher'] as const) {
    test(mode, { timeout: 60_000 }, async () => {
      const r = await rig({ trusts: mode === 'shared' });
      const users = Array.from({ length: 100 }, (_, i) => `sip:user${i}@remote.test`);
      const t0 = Date.now();
      const ws = Array.from({ length: 1000 }, (_, i) => watch(r, users[i % 100]!, `sip:w${i}@example.test`));
      await Promise.all(ws.map((x) => x.until((s) => s.document !== undefined, 30_000)));
      const st = r.gw.stats();
      const hub = r.hub.stats();
      console.log(`# figures ${mode}: watchers=${hub.watchers} hub-entries=${hub.resources} upstream-subscriptions=${st.upstreamSubscriptions} established=${st.established} SUBSCRIBEs-seen-upstream=${r.up.subscribes.length} all-delivered-in=${Date.now() - t0}ms`);
      assert.equal(st.upstreamSubscriptions, mode === 'shared' ? 100 : 1000);
      for (const x of ws) x.w.stop();
      await sleep(500);
      assert.equal(r.gw.stats().upstreamSubscriptions, 0);
    });
  }
});
