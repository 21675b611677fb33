// Nodes, leases and takeover against a real redis-server (own port and dir): one owner per dialog,
// disjoint takeover by racing survivors, CSeq reservations fenced, and a paused node that finds its
// lease gone sends nothing for the dialogs it lost.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { createClient } from '@redis/client';
import { ClusterNodes, type LuaRedis } from '../../src/cluster/nodes.js';
import { DialogLeases } from '../../src/cluster/lease.js';
import { Takeover, type OwnedKind } from '../../src/cluster/takeover.js';
import type { Ownership } from '../../src/cluster/ownership.js';
import { holdSingleton } from '../../src/cluster/singleton.js';
import { silentLogger } from '../../src/log.js';
import { SKIP_WITHOUT_REDIS, TestRedis } from '../support/redis.js';

let redis: TestRedis;
/** What the tests do with a connection: Lua and closing it. */
type Client = LuaRedis & { close(): Promise<void> };
const clients: Client[] = [];
const started: ClusterNodes[] = [];
let prefixN = 0;

before(async () => {
  if (!SKIP_WITHOUT_REDIS) redis = await TestRedis.start();
});
after(async () => {
  for (const n of started) await n.stop();
  for (const c of clients) await c.close().catch(() => undefined);
  await redis?.dispose();
});

async function client(): Promise<Client> {
  const c = createClient({ url: redis.url });
  c.on('error', () => undefined);
  await c.connect();
  const wrapped: Client = { eval: (s, o) => c.eval(s, o), close: () => c.close() };
  clients.push(wrapped);
  return wrapped;
}

/** A node with its own connection; `leaseMs` long enough that nothing renews by itself in a test. */
async function node(prefix: string, id: string, leaseMs = 60_000): Promise<{ nodes: ClusterNodes; leases: DialogLeases; redis: LuaRedis }> {
  const c = await client();
  const nodes = new ClusterNodes(c, { nodeId: id, leaseMs, prefix, log: silentLogger });
  await nodes.start();
  started.push(nodes);
  return { nodes, leases: new DialogLeases(c, nodes), redis: c };
}

function recorder(): OwnedKind & { adopted: Map<string, number>; kept: Set<string> } {
  const adopted = new Map<string, number>();
  const kept = new Set<string>();
  return {
    adopted,
    kept,
    adopt: async (id, cseq) => void adopted.set(id, cseq),
    reconcile: (still) => {
      for (const id of [...kept]) if (!still(id)) kept.delete(id);
    },
  };
}

const skip = SKIP_WITHOUT_REDIS ? { skip: SKIP_WITHOUT_REDIS } : {};

test('one owner per dialog; reservations only by the owner; a released dialog is free', skip, async () => {
  const p = `t${prefixN++}:`;
  const a = await node(p, 'A');
  const b = await node(p, 'B');
  assert.deepEqual(await a.leases.claim('sub:d1', 1000), { ok: true, cseq: 1000 });
  assert.deepEqual(await b.leases.claim('sub:d1'), { ok: false, owner: 'A' });
  assert.equal(await b.leases.reserve('sub:d1', 5000), false);
  assert.equal(await a.leases.reserve('sub:d1', 2000), true);
  assert.deepEqual(await b.leases.ownerOf('sub:d1'), { node: 'A', alive: true });
  // A reservation never goes down.
  assert.equal(await a.leases.reserve('sub:d1', 1500), true);
  await a.leases.release('sub:d1');
  assert.equal(await b.leases.ownerOf('sub:d1'), undefined);
  assert.deepEqual(await b.leases.claim('sub:d1'), { ok: true, cseq: 0 });
  assert.ok(a.nodes.mayAct());
});

test('a node id in use by a live node is refused', skip, async () => {
  const p = `t${prefixN++}:`;
  await node(p, 'A');
  const c = await client();
  await assert.rejects(new ClusterNodes(c, { nodeId: 'A', leaseMs: 60_000, prefix: p, log: silentLogger }).start(), /in use/);
});

test('two survivors take a dead node’s 250 dialogs over: disjoint, complete, above every reservation', skip, async () => {
  const p = `t${prefixN++}:`;
  const a = await node(p, 'A');
  const b = await node(p, 'B');
  const c = await node(p, 'C');
  const kb = recorder();
  const kc = recorder();
  new Takeover(b.leases, silentLogger).register('sub', kb);
  new Takeover(c.leases, silentLogger).register('sub', kc);
  for (let i = 0; i < 250; i++) assert.equal((await a.leases.claim(`sub:d${i}`, 1000 + i)).ok, true);
  // A node that does not run a kind gives its dialogs back unowned.
  assert.equal((await a.leases.claim('xmpp:component')).ok, true);
  // Alive: nobody takes anything.
  assert.equal(await b.leases.takeover('A', 10), undefined);
  await a.nodes.stop(); // leaves: heartbeat deleted, dialogs still listed under A
  await Promise.all([b.nodes.scanDead(), c.nodes.scanDead()]);
  for (let i = 0; i < 200 && kb.adopted.size + kc.adopted.size < 250; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(kb.adopted.size + kc.adopted.size, 250);
  for (const id of kb.adopted.keys()) assert.ok(!kc.adopted.has(id), `${id} adopted twice`);
  for (const [id, cseq] of [...kb.adopted, ...kc.adopted]) assert.equal(cseq, 1000 + Number(id.slice(1)));
  // Every dialog has exactly one live owner now, and the dead node has left the node set.
  for (let i = 0; i < 250; i++) {
    const o = await b.leases.ownerOf(`sub:d${i}`);
    assert.ok(o && o.alive && (o.node === 'B' || o.node === 'C'));
  }
  assert.equal(await b.leases.ownerOf('xmpp:component'), undefined);
  const members = (await b.redis.eval(`return redis.call('SMEMBERS', KEYS[1])`, { keys: [`${p}nodes`], arguments: [] })) as string[];
  assert.deepEqual(members.sort(), ['B', 'C']);
});

test('a node paused past its lease is fenced at once, and after resuming serves only what it still owns', skip, async () => {
  const p = `t${prefixN++}:`;
  const a = await node(p, 'A', 300);
  const b = await node(p, 'B');
  const ka = recorder();
  const kb = recorder();
  new Takeover(a.leases, silentLogger).register('sub', ka);
  new Takeover(b.leases, silentLogger).register('sub', kb);
  assert.equal((await a.leases.claim('sub:x', 1000)).ok, true);
  assert.equal((await a.leases.claim('sub:y', 1000)).ok, true);
  ka.kept.add('x').add('y');
  assert.ok(a.nodes.mayAct());
  // SIGSTOP as the event loop sees it: nothing runs, no renewal, for longer than the lease.
  const until = performance.now() + 450;
  while (performance.now() < until) {
    /* paused */
  }
  assert.equal(a.nodes.mayAct(), false, 'the fence closes by the local clock alone');
  // Meanwhile (A still frozen as far as Redis knows) B finds A dead and takes x over.
  const taken = await b.leases.takeover('A', 1);
  assert.equal(taken?.length, 1);
  const lost = taken![0]!.dialog.slice('sub:'.length);
  // A resumes: its re-check finds the heartbeat gone, joins again, and drops only the dialog it lost.
  assert.equal(await a.nodes.check(), true);
  assert.deepEqual([...ka.kept], ['x', 'y'].filter((d) => d !== lost));
  assert.equal(await a.leases.reserve(`sub:${lost}`, 5000), false, 'a lost dialog cannot reserve CSeqs');
  assert.equal(await a.leases.reserve(`sub:${lost === 'x' ? 'y' : 'x'}`, 5000), true);
  // The dialog B took keeps the reservation A made before it was paused: B's CSeqs go above it.
  assert.equal(taken![0]!.cseq, 1000);
  // Alive again: B cannot take the other dialog any more.
  assert.equal(await b.leases.takeover('A', 10), undefined);
});

test('the XMPP component connection: one node holds it, a survivor connects when that node leaves', skip, async () => {
  const p = `t${prefixN++}:`;
  const held = async (id: string) => {
    const { nodes, leases } = await node(p, id);
    const takeover = new Takeover(leases, silentLogger);
    const ownership: Ownership = { nodes, leases, takeover, start: () => nodes.start(), scan: () => void nodes.scanDead(), stop: () => nodes.stop() };
    const service = { running: false, start: async () => void (service.running = true), stop: async () => void (service.running = false) };
    await holdSingleton(ownership, 'xmpp', 'component', service, silentLogger);
    return { nodes, service };
  };
  const a = await held('A');
  const b = await held('B');
  assert.equal(a.service.running, true);
  assert.equal(b.service.running, false, 'a second connection would be refused by the XMPP server');
  await a.nodes.stop();
  await b.nodes.scanDead();
  for (let i = 0; i < 200 && !b.service.running; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(b.service.running, true);
});
