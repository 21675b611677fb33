// Interop: Herald's SIP gateway against a real Kamailio (presence + presence_xml) serving the remote
// domain remote.test on a loopback port (test/interop/kamailio/remote-presence.cfg). A UDP client
// publishes at Kamailio; a local watcher watches sip:bob@remote.test through a test-only Herald
// (SipStack + Hub + gateway, wired as server.ts will) and gets Kamailio's PIDF, its changes,
// Kamailio's refusals and Kamailio's restart; Herald's own restart keeps the upstream dialog.
// Everything on 127.0.0.1; Kamailio is stopped by its own pid; every wait is bounded.
import { watchHub } from '../support/hub-watch.js';
import { after, before, describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Hub } from '../../src/hub/hub.js';
import type { PresenceSnapshot } from '../../src/hub/types.js';
import { silentLogger } from '../../src/log.js';
import { SipStack } from '../../src/sip/stack.js';
import { Store } from '../../src/store/store.js';
import type { SubscriberRecord } from '../../src/events/subscriber.js';
import { createSipGateway, SipGatewayConfigSchema, type SipGateway } from '../../gateways/sip/index.js';
import { createRegSource, isRegistered, parseRegInfo } from '../../gateways/sip/reginfo.js';
import { PresenceAgent, type PublicationRecord } from '../../src/presence/pa.js';
import { TestUA, pidf } from '../support/ua.js';
import { tempDir } from '../support/herald.js';
import { ROOT, freePort, stopChild } from './peers.js';

const KAMAILIO = '/usr/sbin/kamailio';
const DBTEXT = '/usr/share/kamailio/dbtext/kamailio';
const BOB = 'sip:bob@remote.test';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function requireKamailio(t: TestContext): boolean {
  if (existsSync(KAMAILIO) && existsSync(DBTEXT)) return true;
  if (process.env.CI === 'true') assert.fail(`${KAMAILIO} is missing`);
  t.skip(`${KAMAILIO} or ${DBTEXT} is missing (apt-get install kamailio kamailio-presence-modules)`);
  return false;
}

class Kamailio {
  private child: ChildProcess | undefined;
  log = '';
  constructor(readonly port: number, readonly dir: string, readonly defines: string[] = []) {}

  /** Starts Kamailio; `fresh` gives it an empty copy of the db_text tables (a restart that lost everything). */
  async start(fresh = true): Promise<void> {
    const db = join(this.dir, 'db');
    if (fresh) {
      rmSync(db, { recursive: true, force: true });
      cpSync(DBTEXT, db, { recursive: true });
    }
    const cfg = readFileSync(join(ROOT, 'test', 'interop', 'kamailio', 'remote-presence.cfg'), 'utf8').replaceAll('@PORT@', String(this.port)).replaceAll('@DBDIR@', db);
    writeFileSync(join(this.dir, 'kamailio.cfg'), cfg);
    mkdirSync(join(this.dir, 'run'), { recursive: true });
    const child = spawn(KAMAILIO, [...this.defines.flatMap((d) => ['-A', d]), '-f', join(this.dir, 'kamailio.cfg'), '-P', join(this.dir, 'kamailio.pid'), '-DD', '-E', '-Y', join(this.dir, 'run'), '-w', this.dir, '-m', '64', '-M', '8'], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stderr?.on('data', (d: Buffer) => (this.log = (this.log + d.toString()).slice(-20000)));
    child.stdout?.on('data', () => undefined);
    // Ready when it answers OPTIONS (bounded: 10 s).
    const ua = await TestUA.open('udp', '127.0.0.1', this.port);
    try {
      for (let i = 0; i < 50; i++) {
        try {
          const r = await ua.request('OPTIONS', `sip:127.0.0.1:${this.port}`, { from: 'sip:probe@example.test' }, 200);
          if (r.status === 200) return;
        } catch {
          // not up yet
        }
        if (child.exitCode !== null) throw new Error(`kamailio exited: ${this.log.slice(-2000)}`);
      }
      throw new Error(`kamailio did not answer: ${this.log.slice(-2000)}`);
    } finally {
      ua.close();
    }
  }

  /** Stops the Kamailio this test started, by its pid (SIGTERM, then SIGKILL after 5 s). */
  async stop(): Promise<void> {
    const c = this.child;
    this.child = undefined;
    await stopChild(c);
  }
}

interface Herald {
  stack: SipStack;
  store: Store;
  gw: SipGateway;
  hub: Hub;
  stop(): Promise<void>;
}

async function startHerald(kport: number, storeUrl: string, restore = false, extra: Record<string, unknown> = {}): Promise<Herald> {
  const stack = new SipStack({ listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }], maxMessageBytes: 65535, log: silentLogger });
  const store = Store.open(storeUrl, silentLogger);
  const config = SipGatewayConfigSchema.parse({
    enabled: true,
    policy: 'peers',
    peers: [{ domain: 'remote.test', outbound_proxy: `sip:127.0.0.1:${kport}` }],
    identity: 'sip:gateway@example.test',
    expires: 60,
    min_retry: 0.2,
    max_retry: 2,
    ...extra,
  });
  const gw = createSipGateway({ stack, store, log: silentLogger, localDomains: ['example.test'], config });
  stack.onRequest = (tx) => {
    if (!gw.handleNotify(tx)) tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
  };
  const hub = new Hub();
  hub.register(gw.provider);
  if (restore) await gw.restore();
  await stack.start();
  return {
    stack,
    store,
    gw,
    hub,
    async stop() {
      await gw.stop();
      await stack.stop();
      await store.close();
    },
  };
}

const watch = (h: Pick<Herald, 'hub'>, resource: string, watcher: string) =>
  watchHub(h.hub, resource, watcher, { pick: 'latest', timeoutMs: 8000, describe: (s) => [s.upstream, noteOf(s)] });

function noteOf(s: PresenceSnapshot): string | undefined {
  for (const t of s.document?.tuples ?? []) {
    const n = t.element.children.find((c) => typeof c !== 'string' && c.name === 'note');
    if (n && typeof n !== 'string') return String(n.children[0]);
  }
  return undefined;
}

describe('Kamailio (presence, presence_xml) as the remote domain remote.test', () => {
  let kam: Kamailio | undefined;
  let pub: TestUA | undefined;
  let dir = '';
  const heralds: Herald[] = [];
  let etag: string | undefined;

  const publish = async (note: string, basic: 'open' | 'closed' = 'open') => {
    const headers: Record<string, string> = { Event: 'presence', Expires: '600' };
    if (etag) headers['SIP-If-Match'] = etag;
    let r = await pub!.request('PUBLISH', BOB, { from: BOB, headers, body: pidf(BOB, { note, basic }) });
    if (r.status === 412) {
      etag = undefined;
      r = await pub!.request('PUBLISH', BOB, { from: BOB, headers: { Event: 'presence', Expires: '600' }, body: pidf(BOB, { note, basic }) });
    }
    assert.equal(r.status, 200, `PUBLISH at Kamailio: ${r.status} ${r.reason}`);
    etag = r.h('sip-etag');
  };

  before(async () => {
    if (!existsSync(KAMAILIO)) return;
    dir = tempDir();
    kam = new Kamailio(await freePort(), dir);
    await kam.start();
    pub = await TestUA.open('udp', '127.0.0.1', kam.port);
  });
  after(async () => {
    for (const h of heralds) await h.stop().catch(() => undefined);
    pub?.close();
    await kam?.stop();
  });

  test('a watcher gets the PIDF Kamailio holds, and its changes', async (t) => {
    if (!requireKamailio(t)) return;
    await publish('at kamailio');
    const h = await startHerald(kam!.port, 'memory://');
    heralds.push(h);
    const a = watch(h, BOB, 'sip:alice@example.test');
    const s = await a.until((x) => noteOf(x) === 'at kamailio');
    assert.equal(s.upstream?.state, 'active');
    assert.equal(s.document?.tuples[0]?.basic, 'open');
    await publish('changed at kamailio', 'closed');
    const s2 = await a.until((x) => noteOf(x) === 'changed at kamailio');
    assert.equal(s2.document?.tuples[0]?.basic, 'closed');
    assert.equal(h.gw.stats().upstreamSubscriptions, 1);
    a.w.stop();
    await sleep(300);
    assert.equal(h.gw.stats().upstreamSubscriptions, 0, 'unsubscribed when the last watcher left');
  });

  test('Kamailio refusing: 403 (rejected) and 404 (noresource) reach the watcher', async (t) => {
    if (!requireKamailio(t)) return;
    const h = await startHerald(kam!.port, 'memory://');
    heralds.push(h);
    const m = watch(h, BOB, 'sip:mallory@example.test');
    assert.equal((await m.until((x) => x.upstream?.state === 'terminated')).upstream?.reason, 'rejected');
    const n = watch(h, 'sip:nobody@remote.test', 'sip:alice@example.test');
    assert.equal((await n.until((x) => x.upstream?.state === 'terminated')).upstream?.reason, 'noresource');
  });

  test('Kamailio restarting (state lost): the refresh gets 481, Herald re-subscribes, the watcher follows', { timeout: 60_000 }, async (t) => {
    if (!requireKamailio(t)) return;
    await publish('before restart');
    // 60 s granted, refreshed at 0.1 of it: every 6 s.
    const h = await startHerald(kam!.port, 'memory://', false, { refresh_fraction: 0.1 });
    heralds.push(h);
    const a = watch(h, BOB, 'sip:carol@example.test');
    await a.until((x) => noteOf(x) === 'before restart');
    await kam!.stop();
    await kam!.start(true);
    etag = undefined;
    // The next refresh (≤ 6 s) gets 481; a new subscription follows; Kamailio knows no publication now.
    await a.until((x) => x.upstream?.state === 'active' && x.document === undefined, 15_000).catch(() => undefined);
    await publish('after kamailio restart');
    const s = await a.until((x) => noteOf(x) === 'after kamailio restart', 20_000);
    assert.equal(s.upstream?.state, 'active');
    assert.equal(h.gw.stats().established, 1);
  });

  test("Herald's restart keeps the upstream dialog (refreshed in-dialog, Kamailio answers 200)", { timeout: 60_000 }, async (t) => {
    if (!requireKamailio(t)) return;
    await publish('kept');
    const url = `sqlite://${join(dir, 'herald.sqlite')}`;
    const h1 = await startHerald(kam!.port, url);
    const a = watch(h1, BOB, 'sip:dan@example.test');
    await a.until((x) => noteOf(x) === 'kept');
    await sleep(200);
    await h1.stop();
    const peek = Store.open(url, silentLogger);
    const before = (await peek.collection<SubscriberRecord>('gateway-sip').all()).map(([, r]) => r);
    await peek.close();
    assert.equal(before.length, 1);
    assert.ok(before[0]!.established && before[0]!.remoteTag);

    const h2 = await startHerald(kam!.port, url, true);
    heralds.push(h2);
    const a2 = watch(h2, BOB, 'sip:dan@example.test');
    // The restore's in-dialog refresh makes Kamailio send the current state (RFC 6665 §4.1.2.2).
    await a2.until((x) => noteOf(x) === 'kept');
    await sleep(300);
    const peek2 = Store.open(url, silentLogger);
    await h2.store.flush();
    const after2 = (await peek2.collection<SubscriberRecord>('gateway-sip').all()).map(([, r]) => r);
    await peek2.close();
    assert.equal(after2.length, 1);
    assert.equal(after2[0]!.callId, before[0]!.callId, 'same dialog: Call-ID');
    assert.equal(after2[0]!.remoteTag, before[0]!.remoteTag, 'same dialog: remote tag');
    assert.ok(after2[0]!.localCseq > before[0]!.localCseq, 'refreshed in-dialog (CSeq went up)');
    await publish('after herald restart');
    await a2.until((x) => noteOf(x) === 'after herald restart');
  });
});

describe('Kamailio as registrar serving Event: reg (registrar, usrloc, pua_reginfo, presence_reginfo)', () => {
  test('a REGISTER makes a silent local user open to its watchers; its expiry, and a deregistration, make it closed', { timeout: 60_000 }, async (t) => {
    if (!requireKamailio(t)) return;
    const dir = tempDir();
    const kam = new Kamailio(await freePort(), dir, ['REG']);
    await kam.start();
    const stack = new SipStack({ listen: [{ transport: 'udp', address: '127.0.0.1', port: 0 }], maxMessageBytes: 65535, log: silentLogger });
    const store = Store.open('memory://', silentLogger);
    const cfg = SipGatewayConfigSchema.parse({ reg: { enabled: true, registrar: `sip:127.0.0.1:${kam.port}`, aors: [], on_demand: true, expires: 60 } });
    const reg = createRegSource({ stack, store, log: silentLogger, config: cfg.reg, identity: 'sip:gateway@example.test', refreshFraction: 0.8, minRetryMs: 200, maxRetryMs: 2000 });
    stack.onRequest = (tx) => {
      if (!reg.handleNotify(tx)) tx.respond({ status: 481, reason: 'Subscription Does Not Exist' });
    };
    // The PA composes registration state for users who publish nothing (as server.ts wires it).
    const hub = new Hub();
    hub.register(new PresenceAgent(['example.test'], store.collection<PublicationRecord>('publication'), silentLogger, reg));
    const ua = await TestUA.open('udp', '127.0.0.1', kam.port);
    const ALICE = 'sip:alice@example.test';
    const changes: [string, boolean | undefined][] = [];
    reg.onChange((aor, r) => changes.push([aor, r]));
    const basic = (s: PresenceSnapshot) => s.document?.tuples[0]?.basic;
    const register = async (expires: number, cseq: number) => {
      const r = await ua.request('REGISTER', 'sip:example.test', { from: ALICE, to: ALICE, callId: `reg-${kam.port}`, cseq, headers: { Expires: String(expires) } });
      assert.equal(r.status, 200, `REGISTER at Kamailio: ${r.status} ${r.reason}`);
      return r;
    };
    let w: ReturnType<typeof watch> | undefined;
    try {
      await reg.restore();
      await stack.start();
      w = watch({ hub }, ALICE, 'sip:bob@example.test');
      const seen = w.states;
      // Waits until the latest state the watcher holds is `want`.
      const next = async (want: 'open' | 'closed', ms: number, what: string): Promise<PresenceSnapshot> => {
        for (let i = 0; i < ms / 100; i++) {
          const s = seen.at(-1);
          if (s && basic(s) === want) return s;
          await sleep(100);
        }
        throw new Error(`${what}: alice never ${want} in ${ms} ms: reg changes ${JSON.stringify(changes)}; kamailio: ${kam.log.slice(-1500)}`);
      };
      // Subscribed, nothing registered: Kamailio's empty NOTIFY ⇒ closed.
      await next('closed', 8000, 'before REGISTER');
      assert.equal(reg.isRegistered(ALICE), false);

      // 1. Expiry by usrloc's timer: a 3 s binding (registrar min_expires lowered to allow it).
      const r1 = await register(3, 1);
      const bound = r1.raw.headers.contact;
      assert.equal(Array.isArray(bound) ? bound[0]?.params['expires'] : undefined, '3', 'Kamailio kept the 3 s binding');
      const t1 = Date.now();
      await next('open', 8000, 'after REGISTER (3 s)');
      assert.equal(reg.isRegistered(ALICE), true);
      // Binding ends at 3 s; usrloc sweeps every 2 s; pua_reginfo PUBLISHes, presence_reginfo NOTIFYs.
      const closed = await next('closed', 12_000, 'after the binding expired');
      assert.equal(reg.isRegistered(ALICE), false);
      assert.ok(Date.now() - t1 >= 2000, 'closed only once the binding expired');
      assert.equal(closed.document?.tuples.length, 1);

      // 2. Explicit deregistration (Expires: 0) of a 60 s binding.
      await register(60, 2);
      await next('open', 8000, 'after REGISTER (60 s)');
      await register(0, 3);
      await next('closed', 8000, 'after REGISTER Expires: 0');
      assert.equal(reg.isRegistered(ALICE), false);
      assert.deepEqual(
        changes.filter(([a]) => a === ALICE).map(([, r]) => r),
        [false, true, false, true, false],
      );
    } finally {
      w?.w.stop();
      ua.close();
      await reg.stop();
      await stack.stop();
      await store.close();
      await kam.stop();
    }
  });

  test("reginfo as Kamailio sends it: terminated registrations and contacts are 'not registered' (RFC 3680 §5.1)", () => {
    const doc = (state: string, regs: string) => parseRegInfo(`<?xml version="1.0"?>\n<reginfo xmlns="urn:ietf:params:xml:ns:reginfo" version="0" state="${state}">${regs}</reginfo>`);
    const A = 'sip:alice@example.test';
    // usrloc expiry (captured from Kamailio 5.6.3): the registration alone, terminated.
    assert.equal(isRegistered(doc('full', `<registration aor="${A}" id="0x1" state="terminated"/>`), A), false);
    // Expires: 0: the contact terminated with event unregistered.
    const dereg = doc('full', `<registration aor="${A}" id="0x1" state="terminated"><contact id="0x2" state="terminated" event="unregistered" expires="57" callid="c" cseq="1"><uri>sip:alice@127.0.0.1</uri></contact></registration>`);
    assert.deepEqual(dereg.registrations, [{ aor: A, state: 'terminated', activeContacts: 0 }]);
    assert.equal(isRegistered(dereg, A), false);
    // Registered, then active with only an expired contact listed (full state): not registered.
    const active = `<registration aor="${A}" id="0x1" state="active"><contact id="0x2" state="active" event="created" expires="3"><uri>sip:alice@127.0.0.1</uri></contact></registration>`;
    assert.equal(isRegistered(doc('full', active), A), true);
    assert.equal(isRegistered(doc('full', `<registration aor="${A}" id="0x1" state="active"><contact id="0x2" state="terminated" event="expired"><uri>sip:a@h</uri></contact></registration>`), A), false);
    // Partial state lists only changed contacts: one expired of several, the registration stays active.
    assert.equal(isRegistered(doc('partial', `<registration aor="${A}" id="0x1" state="active"><contact id="0x3" state="terminated" event="expired"><uri>sip:a@h2</uri></contact></registration>`), A), true);
    assert.equal(isRegistered(doc('partial', `<registration aor="${A}" id="0x1" state="terminated"/>`), A), false);
    // A full document without the AOR: no bindings; a partial one: no news.
    assert.equal(isRegistered(doc('full', ''), A), false);
    assert.equal(isRegistered(doc('partial', ''), A), undefined);
  });
});
