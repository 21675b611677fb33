// The cluster's Redis link and bus against a real redis-server (own port and dir, started and stopped
// by pid): messages reach the nodes listening on a topic and not the sender; malformed ones are
// dropped; Redis away is one log line, StoreUnavailable for commands, and one line when it is back,
// with the subscriptions working again.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { RedisLink } from '../../src/cluster/redis.js';
import { RedisBus, type BusMessage } from '../../src/cluster/bus.js';
import { xmppClusterLink } from '../../src/cluster/xmpp.js';
import { el, type XNode } from '../../gateways/xmpp/wire.js';
import { isStoreUnavailable } from '../../src/store/unavailable.js';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { capturedLog } from '../support/log-lines.js';
import { startTestHerald } from '../support/herald.js';
import { SKIP_WITHOUT_REDIS, redisForSuite } from '../support/redis.js';

async function until(what: string, ok: () => boolean, ms = 10000): Promise<void> {
  for (let waited = 0; !ok(); waited += 20) {
    if (waited > ms) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

describe('cluster bus on a real redis-server', { skip: SKIP_WITHOUT_REDIS }, () => {
  const redisServer = redisForSuite();

  test('a message reaches the nodes listening on its topic, not the sender; malformed ones are dropped', async () => {
    const la = await RedisLink.open(redisServer().url, silentLogger);
    const lb = await RedisLink.open(redisServer().url, silentLogger);
    try {
      const a = new RedisBus('node-a', la, silentLogger);
      const b = new RedisBus('node-b', lb, silentLogger);
      const atA: [BusMessage, string][] = [];
      const atB: [BusMessage, string][] = [];
      a.listen('res:sip:alice@example.test', (m, from) => atA.push([m, from]));
      const unB = b.listen('res:sip:alice@example.test', (m, from) => atB.push([m, from]));
      await a.subscribed('res:sip:alice@example.test');
      await b.subscribed('res:sip:alice@example.test');
      const before = lb.roundTrips;
      await b.publish('res:sip:alice@example.test', { kind: 'publication', presentity: 'sip:alice@example.test' });
      assert.equal(lb.roundTrips - before, 1, 'one PUBLISH is one round trip');
      await until('the message at node a', () => atA.length === 1);
      assert.deepEqual(atA[0], [{ kind: 'publication', presentity: 'sip:alice@example.test' }, 'node-b']);
      // Garbage on the channel (another program, another version): dropped, counted, no crash.
      await la.run((c) => c.publish('herald:res:sip:alice@example.test', 'not json'));
      await la.run((c) => c.publish('herald:res:sip:alice@example.test', JSON.stringify({ from: 'x', message: { nokind: 1 } })));
      await a.publish('res:sip:alice@example.test', { kind: 'ping' });
      await until('the second message at node b', () => atB.length === 1);
      await until('the drops counted', () => a.dropped === 2 && b.dropped === 2);
      assert.equal(atA.length, 1, 'node a does not hear its own message');
      assert.deepEqual(atB[0], [{ kind: 'ping' }, 'node-a']);
      // Unlistened: node b hears nothing more on the topic.
      unB();
      await sleep(50);
      await a.publish('res:sip:alice@example.test', { kind: 'ping' });
      await b.publish('res:sip:alice@example.test', { kind: 'marker' });
      await until('the marker at node a', () => atA.length === 2);
      assert.equal(atB.length, 1);
      assert.deepEqual(b.listening(), []);
    } finally {
      await la.close();
      await lb.close();
    }
  });

  test('Redis stopped: one line, commands fail as StoreUnavailable; Redis back: one line, subscriptions work again', async () => {
    const { log, lines } = capturedLog();
    const la = await RedisLink.open(redisServer().url, log);
    const lb = await RedisLink.open(redisServer().url, silentLogger);
    try {
      const a = new RedisBus('node-a', la, log);
      const b = new RedisBus('node-b', lb, silentLogger);
      const got: BusMessage[] = [];
      a.listen('res:sip:bob@example.test', (m) => got.push(m));
      await a.subscribed('res:sip:bob@example.test');
      const events: string[] = [];
      la.on('down', () => events.push('down'));
      la.on('up', () => events.push('up'));
      await redisServer().stop();
      await until('the link down', () => !la.up);
      await assert.rejects(la.run((c) => c.ping()), (e: unknown) => isStoreUnavailable(e));
      await assert.rejects(a.publish('res:x', { kind: 'x' }), (e: unknown) => isStoreUnavailable(e));
      // A topic listened to while Redis is away is subscribed when it is back.
      a.listen('res:sip:carol@example.test', (m) => got.push(m));
      await sleep(600);
      await redisServer().restart();
      await until('the link up', () => la.up && lb.up);
      await a.subscribed('res:sip:carol@example.test');
      for (let i = 0; i < 100 && got.length < 2; i++) {
        await b.publish('res:sip:bob@example.test', { kind: 'after', n: i });
        await b.publish('res:sip:carol@example.test', { kind: 'after', n: i });
        await sleep(50);
      }
      assert.ok(got.some((m) => m.kind === 'after'), 'messages arrive again after the outage');
      assert.deepEqual(events, ['down', 'up']);
      const outage = lines.filter((l) => /Redis unreachable|Redis reachable again/.test(String(l['msg'])));
      assert.equal(outage.length, 2, `one line down, one line back: ${JSON.stringify(outage)}`);
    } finally {
      await la.close();
      await lb.close();
    }
  });

  test('XMPP across nodes: stanzas forwarded to the node holding the component, contacts\' presence shared with watching nodes', async () => {
    const la = await RedisLink.open(redisServer().url, silentLogger);
    const lb = await RedisLink.open(redisServer().url, silentLogger);
    try {
      const a = xmppClusterLink(new RedisBus('holder', la, silentLogger), la, silentLogger);
      const busB = new RedisBus('watcher', lb, silentLogger);
      const b = xmppClusterLink(busB, lb, silentLogger);
      const sent: [XNode, boolean][] = [];
      let resends = 0;
      a.onForwarded((s, q) => sent.push([s, q]), () => resends++);
      b.onForwarded(() => assert.fail('the watcher node sent nothing'), () => resends++);
      const heard: XNode[] = [];
      b.hold('sip:juliet@xmpp.example', (n) => heard.push(n));
      await busB.subscribed('res:sip:juliet@xmpp.example');
      await busB.subscribed('xmpp');
      await sleep(50);
      const probe = el('presence', { from: 'bob@sip.example', to: 'juliet@xmpp.example', type: 'probe' });
      b.forward(probe, false);
      await until('the stanza at the holder', () => sent.length === 1);
      assert.deepEqual(sent[0], [probe, false]);
      const available = el('presence', { from: 'juliet@xmpp.example/balcony', to: 'bob@sip.example' }, el('show', {}, 'away'));
      a.share('sip:juliet@xmpp.example', available);
      await until('the presence at the watching node', () => heard.length === 1);
      assert.deepEqual(heard[0], available);
      // A malformed stanza (not a tree of names, attributes and children) is dropped.
      await la.run((c) => c.publish('herald:res:sip:juliet@xmpp.example', JSON.stringify({ from: 'holder', message: { kind: 'xmpp-presence', stanza: { name: 'presence', attrs: { to: 1 } } } })));
      a.online();
      await until('the watcher probes again when a holder comes online', () => resends === 1);
      assert.equal(heard.length, 1);
    } finally {
      await la.close();
      await lb.close();
    }
  });

  test('a Herald node with cluster.redis set joins; without it nothing opens Redis', async () => {
    const h = await startTestHerald({ cluster: { redis: redisServer().url, node_id: 'n1' }, sip: { public_host: '127.0.0.1' } });
    const single = await startTestHerald();
    try {
      assert.equal(h.herald.cluster?.nodeId, 'n1');
      assert.equal(h.herald.cluster?.link.up, true);
      assert.equal(single.herald.cluster, undefined);
    } finally {
      await h.stop();
      await single.stop();
    }
  });
});

test('cluster config: cluster.redis needs sip.public_host (one line naming it); an unreachable Redis names cluster.redis', async () => {
  assert.throws(
    () => validateConfig({ cluster: { redis: 'redis://127.0.0.1:6379' } }, 'herald.toml'),
    (e: Error) => e instanceof ConfigError && e.message.split('\n').length === 1 && /^herald\.toml: sip\.public_host: must be set when cluster\.redis is set/.test(e.message),
  );
  assert.throws(() => validateConfig({ cluster: { redis: 'http://x' } }), (e: Error) => /cluster\.redis: expected redis:/.test(e.message));
  assert.equal(validateConfig({}).cluster.redis, '');
  // Nothing listens on port 1: the start fails with one line naming the key.
  await assert.rejects(
    startTestHerald({ cluster: { redis: 'redis://127.0.0.1:1' }, sip: { public_host: '127.0.0.1' } }),
    (e: Error) => e instanceof ConfigError && /^cluster\.redis: cannot reach redis:\/\/127\.0\.0\.1:1/.test(e.message),
  );
});
