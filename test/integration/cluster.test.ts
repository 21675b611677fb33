// Several Herald nodes on one real redis-server (own port and dir, started and stopped by pid), over
// real SIP and HTTP sockets: a PUBLISH at one node reaches a watcher held by another, composition sees
// every node's publications, an entity-tag made at one node is refreshed at another, watcher info
// follows watchers wherever they subscribe, a pres-rules PUT at one node blocks a watcher held by the
// other at once, a digest challenge from one node is answered at the other (and not replayed at the
// first), and Redis away is 500 with Retry-After and one log line, with the catch-up when it is back.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import type { pino } from 'pino';
import { TestUA, digestAuthorization, pidf, requestWithAuth, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { SKIP_WITHOUT_REDIS, redisForSuite, type TestRedis } from '../support/redis.js';
import { presRules, rule, xcap, SHOW_ALL } from '../support/xcap.js';
import { RedisLink } from '../../src/cluster/redis.js';
import { RedisCollectionBackend } from '../../src/store/redis.js';
import { silentLogger } from '../../src/log.js';
import { capturedLog } from '../support/log-lines.js';

const D = 'example.test';
const uri = (u: string): string => `sip:${u}@${D}`;

const node = (redis: TestRedis, id: string, extra: Record<string, Record<string, unknown>> = {}, log?: pino.Logger): Promise<TestHerald> =>
  startTestHerald({ ...extra, cluster: { redis: redis.url, node_id: id }, sip: { public_host: '127.0.0.1' } }, log ? { log } : {});

describe('cluster: nodes on one redis-server', { skip: SKIP_WITHOUT_REDIS }, () => {
  const redisServer = redisForSuite();

  test('PUBLISH at node 1 → NOTIFY from node 2; composition of both nodes; refresh of node 1\'s entity-tag at node 2; winfo across nodes', async () => {
    const n1 = await node(redisServer(), 'n1');
    const n2 = await node(redisServer(), 'n2');
    const pub = await TestUA.open('udp', '127.0.0.1', n1.port('udp'));
    const w = await TestUA.open('udp', '127.0.0.1', n2.port('udp'));
    const owner = await TestUA.open('udp', '127.0.0.1', n1.port('udp'));
    try {
      const alice = uri('alice');
      // Alice's watcher info at node 1, her watcher at node 2.
      const winfoCall = rnd();
      assert.equal((await owner.request('SUBSCRIBE', alice, { from: alice, callId: winfoCall, headers: { Event: 'presence.winfo', Expires: '600' } })).status, 200);
      const winfoSeen = new Set<Msg>();
      await owner.nextRequest((m) => m.method === 'NOTIFY' && m.callId === winfoCall, 5000, winfoSeen).then((m) => winfoSeen.add(m));
      const callId = rnd();
      const seen = new Set<Msg>();
      const notify = async (pred: (m: Msg) => boolean): Promise<Msg> => {
        const m = await w.nextRequest((x) => x.method === 'NOTIFY' && x.callId === callId && pred(x), 5000, seen);
        seen.add(m);
        return m;
      };
      assert.equal((await w.request('SUBSCRIBE', alice, { from: uri('bob'), callId, headers: { Event: 'presence', Expires: '600' } })).status, 200);
      await notify(() => true);
      const winfo = await owner.nextRequest((m) => m.method === 'NOTIFY' && m.callId === winfoCall && m.body.includes(uri('bob')) && m.body.includes('active'), 5000, winfoSeen);
      assert.match(winfo.body, /status="active"/, 'the watcher that subscribed at node 2 is in the watcher info node 1 sends');

      const r1 = await pub.request('PUBLISH', alice, { from: alice, headers: { Event: 'presence', Expires: '600' }, body: pidf(alice, { tuple: 'phone', note: 'from-node-1' }) });
      assert.equal(r1.status, 200);
      await notify((m) => m.body.includes('from-node-1'));

      // A second device publishes at node 2: node 2's watcher sees both tuples composed.
      pub.setPeer(n2.port('udp'));
      const r2 = await pub.request('PUBLISH', alice, { from: alice, headers: { Event: 'presence', Expires: '600' }, body: pidf(alice, { tuple: 'desk', note: 'from-node-2' }) });
      assert.equal(r2.status, 200);
      const both = await notify((m) => m.body.includes('from-node-2'));
      assert.match(both.body, /from-node-1/, 'composition sees the publication made at node 1');

      // Node 1's entity-tag refreshed and then modified at node 2 (a load balancer chose another node).
      const etag1 = r1.h('sip-etag')!;
      const refreshed = await pub.request('PUBLISH', alice, { from: alice, headers: { Event: 'presence', Expires: '600', 'SIP-If-Match': etag1 } });
      assert.equal(refreshed.status, 200, 'an entity-tag made at node 1 is known at node 2');
      pub.setPeer(n1.port('udp'));
      const modified = await pub.request('PUBLISH', alice, { from: alice, headers: { Event: 'presence', Expires: '600', 'SIP-If-Match': refreshed.h('sip-etag')! }, body: pidf(alice, { tuple: 'phone', note: 'changed-at-1' }) });
      assert.equal(modified.status, 200);
      const changed = await notify((m) => m.body.includes('changed-at-1'));
      assert.doesNotMatch(changed.body, /from-node-1/);
      assert.match(changed.body, /from-node-2/);

      // Expiry: a short publication at node 1 leaves node 2's watcher's view when it runs out.
      const short = await pub.request('PUBLISH', alice, { from: alice, headers: { Event: 'presence', Expires: '1' }, body: pidf(alice, { tuple: 'brief', note: 'brief-one' }) });
      assert.equal(short.status, 200);
      await notify((m) => m.body.includes('brief-one'));
      await notify((m) => !m.body.includes('brief-one') && m.body.includes('from-node-2'));
      // Round trips are counted for the bench.
      assert.ok((n1.herald.cluster?.link.roundTrips ?? 0) > 0);
    } finally {
      pub.close();
      w.close();
      owner.close();
      await n1.stop();
      await n2.stop();
    }
  });

  test('a new watcher at node 2 gets node 1\'s publication in its first NOTIFY; the per-presentity publication limit counts every node\'s publications', async () => {
    const limit = { limits: { max_publications_per_presentity: 1 } };
    const n1 = await node(redisServer(), 'l1', limit);
    const n2 = await node(redisServer(), 'l2', limit);
    const ua = await TestUA.open('udp', '127.0.0.1', n1.port('udp'));
    try {
      const frank = uri('frank');
      const publish = () => ua.request('PUBLISH', frank, { from: frank, headers: { Event: 'presence', Expires: '600' }, body: pidf(frank) });
      assert.equal((await publish()).status, 200);
      ua.setPeer(n2.port('udp'));
      const callId = rnd();
      assert.equal((await ua.request('SUBSCRIBE', frank, { from: uri('gina'), callId, headers: { Event: 'presence', Expires: '600' } })).status, 200);
      const first = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
      assert.match(first.body, /<basic>open<\/basic>/, 'the first NOTIFY already shows what was published at node 1');
      const second = await publish();
      assert.equal(second.status, 403, 'node 2 counts the publication made at node 1');
      assert.equal(second.reason, 'Too Many Publications For Presentity');
    } finally {
      ua.close();
      await n1.stop();
      await n2.stop();
    }
  });

  test('pres-rules PUT at node 2 blocks a watcher held by node 1 at once; a digest challenge of node 1 is answered at node 2, not replayed at node 1', async () => {
    const auth = { auth: { enabled: true } };
    const n1 = await node(redisServer(), 'r1', auth);
    const n2 = await node(redisServer(), 'r2', auth);
    const carol = await TestUA.open('udp', '127.0.0.1', n1.port('udp'));
    try {
      // Users added at one node are every node's (the shared store).
      await n1.herald.users.add(uri('carol'), 'carol-pw');
      await n1.herald.users.add(uri('dave'), 'dave-pw');
      await n2.herald.users.add(uri('alice'), 'alice-pw');
      const callId = rnd();
      const fromTag = rnd();
      const o = { from: uri('dave'), callId, fromTag, headers: { Event: 'presence', Expires: '600' } };
      // Challenged by node 1, answered at node 2.
      const first = await carol.request('SUBSCRIBE', uri('carol'), { ...o, cseq: 1 });
      assert.equal(first.status, 401);
      const c = (first.raw.headers['www-authenticate'] as { nonce: string; realm: string; algorithm?: string }[])[0]!;
      const authz = digestAuthorization(`Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=${c.algorithm ?? 'MD5'}`, 'SUBSCRIBE', uri('carol'), 'dave', 'dave-pw');
      carol.setPeer(n2.port('udp'));
      const atTwo = await carol.request('SUBSCRIBE', uri('carol'), { ...o, cseq: 2, headers: { ...o.headers, Authorization: authz } });
      assert.equal(atTwo.status, 200, 'node 2 accepts the answer to node 1\'s challenge');
      // The same response (same nonce count) replayed at node 1: refused.
      carol.setPeer(n1.port('udp'));
      const replay = await carol.request('SUBSCRIBE', uri('carol'), { ...o, callId: rnd(), cseq: 3, headers: { ...o.headers, Authorization: authz } });
      assert.equal(replay.status, 401, 'a nonce count used at node 2 is a replay at node 1');
      assert.match(JSON.stringify(replay.raw.headers['www-authenticate']), /"stale":"?true/i);

      // Carol's watcher held by node 1, allowed by the default...
      const watch = rnd();
      const seen = new Set<Msg>();
      const s = await requestWithAuth(carol, 'SUBSCRIBE', uri('alice'), { from: uri('carol'), callId: watch, headers: { Event: 'presence', Expires: '600' } }, 'carol', 'carol-pw');
      assert.equal(s.status, 200);
      // (policy default in tests: allow)
      const n0 = await carol.nextRequest((m) => m.method === 'NOTIFY' && m.callId === watch, 5000, seen);
      seen.add(n0);
      assert.match(n0.h('subscription-state') ?? '', /^active/);
      // ...blocked by alice's rules PUT at node 2's XCAP server.
      const put = await xcap('PUT', n2.xcapUrl(), `pres-rules/users/${uri('alice')}/index`, { username: 'alice', password: 'alice-pw' }, presRules(rule('r-carol', [uri('carol')], 'block', SHOW_ALL)), 'application/auth-policy+xml');
      assert.equal(put.status, 201, put.body);
      const ended = await carol.nextRequest((m) => m.method === 'NOTIFY' && m.callId === watch && /terminated/.test(m.h('subscription-state') ?? ''), 5000, seen);
      assert.match(ended.h('subscription-state') ?? '', /reason=rejected/);
    } finally {
      carol.close();
      await n1.stop();
      await n2.stop();
    }
  });

  test('Redis stopped: PUBLISH answered 500 with Retry-After, one log line; Redis back: one line, and node 2 catches up on a change it was not told of', async () => {
    const { log, lines } = capturedLog();
    const n1 = await node(redisServer(), 'o1', {}, log);
    const n2 = await node(redisServer(), 'o2');
    const pub = await TestUA.open('udp', '127.0.0.1', n1.port('udp'));
    const w = await TestUA.open('udp', '127.0.0.1', n2.port('udp'));
    const other = await RedisLink.open(redisServer().url, silentLogger);
    try {
      const erin = uri('erin');
      const callId = rnd();
      const seen = new Set<Msg>();
      assert.equal((await w.request('SUBSCRIBE', erin, { from: uri('bob'), callId, headers: { Event: 'presence', Expires: '600' } })).status, 200);
      seen.add(await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId, 5000, seen));
      // A publication written to the shared store by "another node" whose change notice was lost.
      const now = Date.now();
      await new RedisCollectionBackend(other, 'publication', 'presentity').setMany([
        { key: 'lost-notice-etag', value: { etag: 'lost-notice-etag', presentity: erin, body: pidf(erin, { note: 'told-nobody' }), publishedAt: now, expiresAt: now + 600_000 } },
      ]);
      await other.close();
      assert.equal((await w.quiet(300)).filter((m) => m.body.includes('told-nobody')).length, 0, 'nobody was told');

      await redisServer().stop();
      for (let i = 0; i < 200 && (n1.herald.cluster?.link.up || n2.herald.cluster?.link.up); i++) await sleep(20);
      const r = await pub.request('PUBLISH', erin, { from: erin, headers: { Event: 'presence', Expires: '600' }, body: pidf(erin, { note: 'while-down' }) });
      assert.equal(r.status, 500);
      assert.equal(r.h('retry-after'), '5');
      const again = await pub.request('PUBLISH', erin, { from: erin, headers: { Event: 'presence', Expires: '600' }, body: pidf(erin, { note: 'while-down' }) });
      assert.equal(again.status, 500);

      await redisServer().restart();
      // The catch-up: node 2 reads what it holds again and its watcher sees the change it was never told of.
      const caught = await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.body.includes('told-nobody'), 10000, seen);
      assert.ok(caught);
      for (let i = 0; i < 200 && !n1.herald.cluster?.link.up; i++) await sleep(20);
      const after = await pub.request('PUBLISH', erin, { from: erin, headers: { Event: 'presence', Expires: '600' }, body: pidf(erin, { tuple: 't2', note: 'after-outage' }) });
      assert.equal(after.status, 200);
      await w.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId && m.body.includes('after-outage'), 5000, seen);
      const outage = lines.filter((l) => /Redis unreachable|Redis reachable again/.test(String(l['msg'])));
      assert.deepEqual(outage.map((l) => (String(l['msg']).includes('unreachable') ? 'down' : 'up')), ['down', 'up'], 'one line down, one line back');
      assert.equal(lines.filter((l) => /store write failed|handler failed/.test(String(l['msg']))).length, 0, 'no line per request');
    } finally {
      pub.close();
      w.close();
      await n1.stop();
      await n2.stop();
    }
  });
});
