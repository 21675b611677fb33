// Dialog ownership across Herald processes on one real redis-server (issue 10): the node holding 100
// presence dialogs and a list subscription is SIGKILLed, and a survivor notifies every one of them in
// its old dialog with a higher CSeq (the list's RLMI versions going on); a node paused (SIGSTOP) past
// its lease and resumed sends nothing in the dialogs taken over meanwhile, so no CSeq is used twice;
// a refresh and an un-SUBSCRIBE at the node that does not own the dialog are notified by the owner.
// Each node gets a public_host of its own here (a deployment gives them one, the load balancer's) so
// the Via of each NOTIFY says which node sent it. Behaviour is asserted, never time: each wait is a
// bounded deadline for something that must happen.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';
import { CLI, HeraldProcess, freePort } from '../support/process.js';
import { tempDir } from '../support/herald.js';
import { xcap } from '../support/xcap.js';
import { decodeList, rlsServices } from '../support/rls.js';
import { SKIP_WITHOUT_REDIS, TestRedis } from '../support/redis.js';
import { createClient } from '@redis/client';
import { BOB, ScriptedUpstream, pidf as pidfOf, type Req } from '../support/upstream.js';

const D = 'example.test';
const uri = (u: string): string => `sip:${u}@${D}`;
const OWNER = { username: 'owner', password: 'owner-pw' };
const LIST = uri('buddies');
const LEASE = 2;

interface Node {
  proc: HeraldProcess;
  port: number;
  id: string;
  xcapUrl: string;
}

interface Dialog {
  callId: string;
  fromTag: string;
  toTag: string;
}

/** `extra`: more TOML sections (the presence B2BUA's). */
function writeNodeConfig(dir: string, port: number, id: string, redisUrl: string, lease: number, extra = ''): string {
  const path = join(dir, `${id}.toml`);
  writeFileSync(
    path,
    `[sip]
listen = ["udp:127.0.0.1:${port}"]
domains = ["${D}"]
public_host = "127.0.0.1:${port}"
[presence]
subscribe_min_expires = 1
[store]
url = "sqlite://${join(dir, `${id}.sqlite`)}"
[cluster]
redis = "${redisUrl}"
node_id = "${id}"
lease = ${lease}
[rls]
min_notify_interval = 0
[log]
level = "info"
format = "json"
[xcap]
listen = "127.0.0.1:0"
[admin]
listen = "127.0.0.1:0"
[policy]
default = "allow"
[auth]
enabled = false
${extra}`,
  );
  return path;
}

function xcapUrlOf(startLine: Record<string, unknown>): string {
  const listen = startLine['listen'] as string[];
  return listen.find((a) => a.startsWith('xcap:'))!.slice('xcap:'.length);
}

/** The port in the top Via of a NOTIFY: which node sent it. */
const senderPort = (m: Msg): number => Number(/SIP\/2\.0\/\w+ [^;:]+:(\d+)/.exec(m.h('via') ?? String(m.raw.headers.via?.[0]?.port))?.[1] ?? m.raw.headers.via?.[0]?.port);

async function until(cond: () => boolean, what: string, deadlineMs: number, diag: () => string): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`${what}\n${diag()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('cluster: dialog ownership and takeover', { skip: SKIP_WITHOUT_REDIS }, () => {
  const upstreams: ScriptedUpstream[] = [];
  // One Redis per test: each test's nodes are a cluster of their own.
  const redises: TestRedis[] = [];
  const procs: HeraldProcess[] = [];
  const uas: TestUA[] = [];
  after(async () => {
    for (const p of procs) {
      if (p.child?.signalCode === null && p.child.exitCode === null) p.child.kill('SIGCONT');
      await p.stop('SIGKILL');
    }
    for (const u of uas) u.close();
    for (const u of upstreams) u.close();
    for (const r of redises) await r.dispose();
  });

  async function cluster(): Promise<TestRedis> {
    const r = await TestRedis.start();
    redises.push(r);
    return r;
  }

  async function startNode(dir: string, id: string, redis: TestRedis, lease = LEASE, extra = ''): Promise<Node> {
    const port = await freePort();
    const proc = new HeraldProcess(writeNodeConfig(dir, port, id, redis.url, lease, extra));
    procs.push(proc);
    const line = await proc.start();
    return { proc, port, id, xcapUrl: xcapUrlOf(line) };
  }

  async function ua(port: number): Promise<TestUA> {
    const u = await TestUA.open('udp', '127.0.0.1', port);
    uas.push(u);
    return u;
  }

  async function subscribeMany(w: TestUA, resource: string, n: number): Promise<Dialog[]> {
    const out: Dialog[] = [];
    for (let i = 0; i < n; i += 20) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(20, n - i) }, async () => {
          const callId = rnd();
          const fromTag = rnd();
          const r = await w.request('SUBSCRIBE', resource, { from: uri('watcher'), fromTag, callId, headers: { Event: 'presence', Expires: '600' } });
          assert.equal(r.status, 200);
          return { callId, fromTag, toTag: r.toTag! };
        }),
      );
      out.push(...batch);
    }
    return out;
  }

  const notifiesOf = (w: TestUA, d: Dialog): Msg[] => w.requests.filter((m) => m.method === 'NOTIFY' && m.callId === d.callId);
  const lastCseq = (w: TestUA, d: Dialog): number => Math.max(0, ...notifiesOf(w, d).map((m) => m.cseq));

  test('SIGKILL of the node holding 100 dialogs and a list: a survivor notifies all in their old dialogs, CSeqs higher, RLMI versions going on', { timeout: 120_000 }, async (t) => {
    const dir = tempDir();
    const redis = await cluster();
    const a = await startNode(dir, 'kill-a', redis);
    await promisify(execFile)(process.execPath, [CLI, 'user', 'add', uri(OWNER.username), '--password', OWNER.password, '--config', a.proc.configPath], { timeout: 20_000 });
    const put = await xcap('PUT', a.xcapUrl, `rls-services/users/${uri(OWNER.username)}/index`, OWNER, rlsServices({ [LIST]: [uri('bob'), uri('carol')] }), 'application/rls-services+xml');
    assert.equal(put.status, 201, put.body);
    const pubA = await ua(a.port);
    const publish = async (p: TestUA, who: string, note: string) => {
      const r = await p.request('PUBLISH', who, { from: who, headers: { Event: 'presence', Expires: '600' }, body: pidf(who, { note }) });
      assert.equal(r.status, 200);
    };
    await publish(pubA, uri('alice'), 'alice-1');
    await publish(pubA, uri('bob'), 'bob-1');
    const w = await ua(a.port);
    const dialogs = await subscribeMany(w, uri('alice'), 100);
    const listCall = rnd();
    const listTag = rnd();
    const ls = await w.request('SUBSCRIBE', LIST, { from: uri('owner'), fromTag: listTag, callId: listCall, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: 'application/rlmi+xml, multipart/related, application/pidf+xml' } });
    assert.equal(ls.status, 200);
    const list: Dialog = { callId: listCall, fromTag: listTag, toTag: ls.toTag! };
    const survivors: Node[] = [];
    const diag = () => `node A:\n${a.proc.output.slice(-2000)}\nnode B:\n${survivors[0]?.proc.output.slice(-3000) ?? ''}`;
    await until(() => dialogs.every((d) => notifiesOf(w, d).length >= 1) && notifiesOf(w, list).length >= 1, 'the first NOTIFY of each dialog from node A', 20_000, diag);
    // A change at A: CSeqs move on in A's hands first.
    await publish(pubA, uri('bob'), 'bob-2');
    await until(() => notifiesOf(w, list).length >= 2, 'the list change at A', 20_000, diag);
    const before = new Map([...dialogs, list].map((d) => [d.callId, lastCseq(w, d)]));
    const listVersions = notifiesOf(w, list).map((m) => decodeList(m).rlmi.version);
    assert.deepEqual(listVersions, [0, 1]);

    // Node B starts once everything is in the shared store (it reads XCAP documents and publications at
    // start: their propagation between running nodes is h10core's part).
    const b = await startNode(dir, 'kill-b', redis);
    survivors.push(b);
    w.setPeer(b.port); // the watcher answers B's NOTIFYs (A's address is dead)
    const seenBefore = w.requests.length;
    const killedAt = performance.now();
    assert.equal(await a.proc.stop('SIGKILL'), 'SIGKILL');

    // Takeover: each dialog gets a NOTIFY from B, in its dialog, above every CSeq A used.
    const fromB = (d: Dialog) => notifiesOf(w, d).filter((m) => w.requests.indexOf(m) >= seenBefore);
    await until(() => [...dialogs, list].every((d) => fromB(d).length >= 1), 'a NOTIFY from the survivor in every dialog', 60_000, diag);
    // Reported, not asserted (the machine is shared): SIGKILL → the last of the 101 takeover NOTIFYs.
    t.diagnostic(`takeover of 101 dialogs with cluster.lease = ${LEASE} s: ${Math.round(performance.now() - killedAt)} ms from SIGKILL to the last NOTIFY (±50 ms polling)`);
    for (const d of [...dialogs, list]) {
      for (const m of fromB(d)) {
        assert.equal(senderPort(m), b.port, 'sent by the survivor');
        assert.equal(m.fromTag, d.toTag, 'the old dialog: From tag = the To tag of the 200');
        assert.equal(m.toTag, d.fromTag, 'the old dialog: To tag = the watcher’s From tag');
        assert.ok(m.cseq > before.get(d.callId)!, `CSeq ${m.cseq} above A's ${before.get(d.callId)}`);
      }
    }
    // And the dialogs go on at B: a change reaches all of them, CSeqs still growing, versions by one.
    const pubB = await ua(b.port);
    await publish(pubB, uri('alice'), 'alice-after');
    await publish(pubB, uri('bob'), 'bob-after');
    await until(() => dialogs.every((d) => fromB(d).some((m) => m.body.includes('alice-after'))), 'the change after the takeover in every dialog', 30_000, diag);
    await until(() => fromB(list).some((m) => m.body.includes('bob-after')), 'the list change after the takeover', 30_000, diag);
    for (const d of [...dialogs, list]) {
      const cseqs = notifiesOf(w, d).map((m) => m.cseq);
      for (let i = 1; i < cseqs.length; i++) assert.ok(cseqs[i]! > cseqs[i - 1]!, `CSeqs grow in ${d.callId}: ${cseqs.join(', ')}`);
    }
    const versions = notifiesOf(w, list).map((m) => decodeList(m).rlmi.version);
    assert.deepEqual(versions, versions.map((_, i) => i), `RLMI versions go on by one across the takeover: ${versions.join(', ')}`);
    t.diagnostic(`list NOTIFYs: ${notifiesOf(w, list).map((m) => `cseq ${m.cseq} v${decodeList(m).rlmi.version}`).join(', ')}`);
    assert.match(b.proc.output, /took over the dialogs of a dead node/);
  });

  test('in-dialog requests at a non-owner are notified by the owner; a node paused (SIGSTOP) past its lease and resumed sends nothing in the dialogs it lost: no CSeq used twice', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const redis = await cluster();
    const a = await startNode(dir, 'stop-a', redis);
    const b = await startNode(dir, 'stop-b', redis);
    const pubA = await ua(a.port);
    const pubB = await ua(b.port);
    const publish = async (p: TestUA, note: string) => {
      // A node just resumed measures the pause as event-loop delay and sheds load for a moment (503
      // with Retry-After, src/sip/overload.ts): a client tries again, boundedly.
      for (let i = 0; ; i++) {
        const r = await p.request('PUBLISH', uri('alice'), { from: uri('alice'), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri('alice'), { note }) });
        if (r.status === 503 && i < 20) {
          await new Promise((res) => setTimeout(res, 300));
          continue;
        }
        assert.equal(r.status, 200);
        return;
      }
    };
    await publish(pubA, 'before');
    const w = await ua(a.port);
    const dialogs = await subscribeMany(w, uri('alice'), 20);
    const diag = () => `node A:\n${a.proc.output.slice(-3000)}\nnode B:\n${b.proc.output.slice(-3000)}`;
    await until(() => dialogs.every((d) => notifiesOf(w, d).length >= 1), 'the first NOTIFYs from A', 20_000, diag);

    // In-dialog requests at the node that does not own the dialog (a load balancer chose B): B answers
    // them, the owner A sends the NOTIFY, one CSeq sequence. (The watcher sends them to B and answers
    // NOTIFYs to A: its answers go to its current peer.)
    const atB = (d: Dialog, expires: number) => {
      w.setPeer(b.port);
      const r = w.request('SUBSCRIBE', uri('alice'), { from: uri('watcher'), fromTag: d.fromTag, toTag: d.toTag, callId: d.callId, cseq: 2, headers: { Event: 'presence', Expires: String(expires) } });
      w.setPeer(a.port);
      return r;
    };
    const [refreshed, unsubscribed] = dialogs.splice(0, 2) as [Dialog, Dialog];
    assert.equal((await atB(refreshed, 600)).status, 200);
    assert.equal((await atB(unsubscribed, 0)).status, 200);
    await until(() => notifiesOf(w, refreshed).length >= 2 && notifiesOf(w, unsubscribed).length >= 2, 'the owner notifies after requests at B', 20_000, diag);
    const [afterRefresh] = notifiesOf(w, refreshed).slice(1);
    const [final] = notifiesOf(w, unsubscribed).slice(1);
    assert.equal(senderPort(afterRefresh!), a.port, 'the owner sends the refresh NOTIFY');
    assert.equal(afterRefresh!.cseq, 2);
    assert.match(afterRefresh!.h('subscription-state') ?? '', /^active/);
    assert.equal(senderPort(final!), a.port);
    assert.equal(final!.cseq, 2);
    assert.match(final!.h('subscription-state') ?? '', /^terminated/);
    dialogs.push(refreshed);
    w.setPeer(b.port);

    a.proc.child!.kill('SIGSTOP');
    // B takes the paused node's dialogs over (its heartbeat ran out) and notifies each.
    await until(() => dialogs.every((d) => notifiesOf(w, d).some((m) => senderPort(m) === b.port)), 'the takeover by B', 60_000, diag);
    await publish(pubB, 'at-b');
    await until(() => dialogs.every((d) => notifiesOf(w, d).some((m) => m.body.includes('at-b'))), 'B notifies a change', 30_000, diag);

    const resumedAt = w.requests.length;
    a.proc.child!.kill('SIGCONT');
    // A finds its lease gone, joins again and drops what it lost; a change at A then reaches no one
    // through A, and one at B reaches everyone through B.
    await until(() => /joined again/.test(a.proc.output), 'A re-checks its ownership', 30_000, diag);
    await publish(pubA, 'at-a-after-resume');
    await publish(pubB, 'at-b-after-resume');
    await until(() => dialogs.every((d) => notifiesOf(w, d).some((m) => m.body.includes('at-b-after-resume'))), 'B notifies after A resumed', 30_000, diag);
    await w.quiet(500);
    const fromAAfter = w.requests.slice(resumedAt).filter((m) => m.method === 'NOTIFY' && senderPort(m) === a.port);
    assert.deepEqual(fromAAfter.map((m) => `${m.callId} ${m.cseq}`), [], 'the resumed node sent nothing in the dialogs it lost');
    for (const d of dialogs) {
      const cseqs = notifiesOf(w, d).map((m) => m.cseq);
      assert.equal(new Set(cseqs).size, cseqs.length, `no CSeq used twice in ${d.callId}: ${cseqs.join(', ')}`);
      for (let i = 1; i < cseqs.length; i++) assert.ok(cseqs[i]! > cseqs[i - 1]!, `CSeqs grow in ${d.callId}: ${cseqs.join(', ')}`);
    }
  });

  test('a refresh at a node whose dialog owner is dead: that node takes the dialog over and notifies it, above the dead owner’s CSeqs', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const redis = await cluster();
    const a = await startNode(dir, 'dead-a', redis);
    // C scans for dead nodes only every 20 minutes (lease/3 of its own lease): here the refresh, not the
    // scan, finds A dead.
    const c = await startNode(dir, 'late-c', redis, 3600);
    const pubA = await ua(a.port);
    const r = await pubA.request('PUBLISH', uri('alice'), { from: uri('alice'), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri('alice'), { note: 'x' }) });
    assert.equal(r.status, 200);
    const w = await ua(a.port);
    const [d] = (await subscribeMany(w, uri('alice'), 1)) as [Dialog];
    const diag = () => `node A:\n${a.proc.output.slice(-2000)}\nnode C:\n${c.proc.output.slice(-3000)}`;
    await until(() => notifiesOf(w, d).length >= 1, 'the first NOTIFY from A', 20_000, diag);
    assert.equal(await a.proc.stop('SIGKILL'), 'SIGKILL');
    // A is dead once its heartbeat key is gone (read in Redis, not guessed from the clock).
    const probe = createClient({ url: redis.url });
    probe.on('error', () => undefined);
    await probe.connect();
    try {
      const end = Date.now() + 30_000;
      while ((await probe.exists('herald:node:dead-a')) === 1) {
        assert.ok(Date.now() < end, 'the dead node’s heartbeat runs out');
        await new Promise((res) => setTimeout(res, 100));
      }
    } finally {
      await probe.close();
    }
    w.setPeer(c.port);
    const ref = await w.request('SUBSCRIBE', uri('alice'), { from: uri('watcher'), fromTag: d.fromTag, toTag: d.toTag, callId: d.callId, cseq: 2, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(ref.status, 200);
    await until(() => notifiesOf(w, d).some((m) => senderPort(m) === c.port), 'the NOTIFY of the refresh from C', 20_000, diag);
    // The refresh's NOTIFY (and the state the takeover found, when the stored record did not say the
    // watcher had it): in the old dialog, above A's reserved block, growing.
    const fromC = notifiesOf(w, d).filter((m) => senderPort(m) === c.port);
    let prev = 1000;
    for (const m of fromC) {
      assert.ok(m.cseq > prev, `CSeq ${m.cseq} above ${prev}`);
      assert.equal(m.fromTag, d.toTag);
      assert.match(m.h('subscription-state') ?? '', /^active/);
      prev = m.cseq;
    }
    assert.match(c.proc.output, /dead-a/);
  });

  /** The presence B2BUA on, towards a scripted remote.test on loopback. */
  const gatewayConfig = (up: ScriptedUpstream): string => `[gateway.sip]
enabled = true
policy = "peers"
identity = "sip:gateway@${D}"
min_retry = 0.1
max_retry = 0.8
peers = [{ domain = "remote.test", trusts_us = false, outbound_proxy = "sip:127.0.0.1:${up.port}" }]
`;

  test('an upstream NOTIFY at the node that does not own its dialog reaches the watcher; SIGKILL of the owner: the survivor refreshes the same upstream dialog, and the remote state reaches the watcher', { timeout: 120_000 }, async () => {
    const dir = tempDir();
    const redis = await cluster();
    const up = await ScriptedUpstream.start();
    upstreams.push(up);
    up.note = 'before';
    const a = await startNode(dir, 'up-a', redis, LEASE, gatewayConfig(up));
    const b = await startNode(dir, 'up-b', redis, LEASE, gatewayConfig(up));
    const diag = () => `node A:\n${a.proc.output.slice(-2000)}\nnode B:\n${b.proc.output.slice(-3000)}`;
    const w = await ua(a.port);
    const callId = rnd();
    const fromTag = rnd();
    const r = await w.request('SUBSCRIBE', BOB, { from: uri('watcher'), fromTag, callId, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(r.status, 200);
    const notes = (): string[] => w.requests.filter((m) => m.method === 'NOTIFY' && m.callId === callId).map((m) => m.body);
    const first = await up.next((q) => q.from === uri('watcher'), 20_000);
    await until(() => notes().some((n) => n.includes('before')), 'the remote state at the watcher through A', 20_000, diag);
    // A NOTIFY of A's upstream dialog that lands at B (the remote notifier sends to the load balancer):
    // B passes it to A, answers with A's answer, and the remote state reaches the watcher.
    const upDialog = up.dialogs.get(first.callId)!;
    const atA = upDialog.target;
    upDialog.target = { host: '127.0.0.1', port: b.port };
    assert.equal(await up.notify(first.callId, 'active;expires=600', pidfOf(BOB, 'via-b')), 200);
    upDialog.target = atA;
    await until(() => notes().some((n) => n.includes('via-b')), 'the NOTIFY sent to B at the watcher', 20_000, diag);
    const inFirst = (q: Req): boolean => q.callId === first.callId;
    const lastCseq = Math.max(...up.subscribes.filter(inFirst).map((q) => q.cseq));
    const seen = up.subscribes.length;

    up.note = 'after';
    w.setPeer(b.port);
    assert.equal(await a.proc.stop('SIGKILL'), 'SIGKILL');
    // The survivor goes on in A's upstream dialog: same Call-ID and tags, a higher CSeq — no new dialog.
    const refresh = await up.next((q) => inFirst(q), 60_000, seen).catch((e: Error) => assert.fail(`${e.message}\n${diag()}`));
    assert.equal(refresh.fromTag, first.fromTag, 'the same local tag');
    assert.equal(refresh.toTag, up.dialogs.get(first.callId)!.toTag, 'the same remote tag');
    assert.ok(refresh.cseq > lastCseq, `CSeq ${refresh.cseq} above A's ${lastCseq}`);
    await until(() => notes().some((n) => n.includes('after')), 'the remote state at the watcher through B', 30_000, diag);
    // And later changes at the remote domain still reach the watcher, in that same dialog.
    assert.equal(await up.notify(first.callId, 'active;expires=600', pidfOf(BOB, 'later')), 200);
    await until(() => notes().some((n) => n.includes('later')), 'a later remote change at the watcher', 20_000, diag);
    assert.deepEqual(up.subscribes.slice(seen).filter((q) => !inFirst(q)), [], 'no new upstream dialog');
  });
});
