// XMPP gateway against a real Prosody (Debian `prosody`): Herald's gateway is the XEP-0114 component
// sip.xmpp.test, two real c2s users (romeo, juliet) and a roster-mode account (alice) on xmpp.test.
// Loopback only; Prosody is started and stopped by its own pid; every wait is bounded.
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePidf, serializePidf, type PidfDocument } from '../../src/formats/pidf.js';
import type { PresenceSnapshot, Watch } from '../../src/hub/types.js';
import type { Authorizer } from '../../src/policy/authorizer.js';
import { WatcherViews } from '../../src/policy/view.js';
import type { SubHandling } from '../../src/formats/pres-rules.js';
import { silentLogger } from '../../src/log.js';
import { createXmppGateway, type XmppGateway } from '../../gateways/xmpp/index.js';
import { XmppGatewayConfigSchema } from '../../gateways/xmpp/config.js';
import { el, text, child } from '../../gateways/xmpp/wire.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/process.js';
import { Prosody } from './prosody/prosody.js';
import { Jabber, isPresence } from './prosody/jabber.js';
import { activityOf, basicOf, noteOf, showOf } from './prosody/pidf-checks.js';

const GW = 'xmpp.example.test';
const ROMEO = `sip:romeo*xmpp.test@${GW}`;
const BOB = 'sip:bob@example.test';
const BOB_JID = 'bob%example.test@sip.xmpp.test';

/** pres-rules stand-in the test can turn: (watcher, presentity) → sub-handling, with onChange. */
class TestAuthorizer implements Authorizer {
  readonly rules = new Map<string, SubHandling>();
  readonly asked: string[] = [];
  private listeners: ((p: string) => void)[] = [];
  decide(watcher: string, presentity: string) {
    this.asked.push(watcher);
    return { subHandling: this.rules.get(`${watcher} ${presentity}`) ?? 'confirm', view: 'full', transform: (d: PidfDocument) => d };
  }
  onChange(l: (p: string) => void): void {
    this.listeners.push(l);
  }
  set(watcher: string, presentity: string, h: SubHandling): void {
    this.rules.set(`${watcher} ${presentity}`, h);
    for (const l of this.listeners) l(presentity);
  }
}

/** A SIP watcher through the hub: records every snapshot and waits for one that matches. */
class Recorder {
  readonly snaps: PresenceSnapshot[] = [];
  watch!: Watch;
  private waiter: { pred: (s: PresenceSnapshot) => boolean; resolve: (s: PresenceSnapshot) => void } | undefined;
  listener = (s: PresenceSnapshot): void => {
    this.snaps.push(s);
    if (this.waiter?.pred(s)) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(s);
    }
  };
  until(pred: (s: PresenceSnapshot) => boolean, ms = 8000): Promise<PresenceSnapshot> {
    const cur = this.watch?.current();
    if (cur && pred(cur)) return Promise.resolve(cur);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching snapshot within ${ms} ms; last: ${JSON.stringify(this.snaps.at(-1)?.upstream)} ${this.snaps.at(-1)?.document ? serializePidf(this.snaps.at(-1)!.document!) : ''}`)), ms);
      this.waiter = { pred, resolve: (s) => { clearTimeout(t); resolve(s); } };
    });
  }
}

function bobPidf(note: string, activity: string): string {
  return `<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="${BOB}">` +
    `<tuple id="t1"><status><basic>open</basic></status><contact>sip:bob@127.0.0.1</contact><note>${note}</note></tuple>` +
    `<dm:person id="p1"><rpid:activities><rpid:${activity}/></rpid:activities></dm:person></presence>`;
}

describe('XMPP gateway with Prosody', { skip: !Prosody.available() && process.env.CI !== 'true' ? 'prosody not installed' : false, timeout: 120_000 }, () => {
  let prosody: Prosody;
  let th: TestHerald;
  let gw: XmppGateway;
  let service: string;
  const auth = new TestAuthorizer();
  const clients: Jabber[] = [];
  let bobEtag = '';

  const jabber = async (user: string, resource = 'test'): Promise<Jabber> => {
    const j = new Jabber(service, user, 'pw', resource);
    clients.push(j);
    await j.start();
    return j;
  };

  /** The subscription state of `jid` in the user's roster (RFC 6121 §2.1.2.5), polled until `want` or a bound. */
  const rosterState = async (j: Jabber, jid: string, want: string): Promise<string> => {
    let got = 'absent';
    for (let i = 0; i < 50; i++) {
      const res = await j.iq(el('iq', { type: 'get' }, el('query', { xmlns: 'jabber:iq:roster' })));
      const q = child(res, 'query');
      const item = q?.children.find((c) => typeof c !== 'string' && c.attrs['jid'] === jid);
      got = typeof item === 'object' ? (item.attrs['subscription'] ?? 'none') : 'absent';
      if (got === want) break;
      await sleep(100);
    }
    return got;
  };

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-prosody-'));
    const [c2s, comp] = [await freePort(), await freePort()];
    service = `xmpp://127.0.0.1:${c2s}`;
    prosody = new Prosody({ dir, c2sPort: c2s, componentPort: comp, secret: 'interop-secret' });
    for (const u of ['romeo', 'juliet', 'alice']) prosody.register(u, 'xmpp.test', 'pw');
    await prosody.start();
    th = await startTestHerald();
    gw = createXmppGateway({
      hub: th.herald.hub,
      views: new WatcherViews(auth, { get: () => undefined, report: () => undefined }, (r) => th.herald.pa.handles(r)),
      store: th.herald.store,
      log: silentLogger,
      localDomains: ['example.test'],
      config: XmppGatewayConfigSchema.parse({
        enabled: true,
        service: `xmpp://127.0.0.1:${comp}`,
        secret: 'interop-secret',
        xmpp_domains: ['xmpp.test'],
        gateway_domain: GW,
        c2s_service: service,
        reconnect_initial: 0.2,
        reconnect_max: 1,
        min_request_interval: 0,
      }),
    });
    th.herald.hub.register(gw.provider);
    await gw.start();
  });

  after(async () => {
    for (const c of clients) await c.stop();
    await gw?.stop();
    await th?.stop();
    await prosody?.stop();
  });

  it('a SIP watcher sees a Jabber user online, away with a note, offline', async () => {
    const romeo = await jabber('romeo');
    await romeo.presence(undefined);
    const r = new Recorder();
    r.watch = th.herald.hub.watch(ROMEO, r.listener, 'sip:carol@example.test');
    // RFC 8048 §5.3: subscribe from the watcher's mapped JID; pending until the contact answers.
    assert.equal(r.watch.current()?.upstream?.state, 'pending');
    const sub = await romeo.next(isPresence('carol%example.test@sip.xmpp.test', 'subscribe'));
    await romeo.presence(sub.attrs['from'], 'subscribed');
    let s = await r.until((x) => x.upstream?.state === 'active' && basicOf(x.document) === 'open');
    assert.equal(s.document?.tuples[0]?.id, 'ID-test');
    await romeo.presence(undefined, undefined, 'away', 'Gone fishing');
    s = await r.until((x) => showOf(x.document) === 'away');
    assert.equal(noteOf(s.document), 'Gone fishing');
    assert.equal(activityOf(s.document), 'away', 'RPID activity for phones that read only RPID');
    await romeo.presence(undefined, 'unavailable');
    await r.until((x) => basicOf(x.document) === 'closed');
    r.watch.stop();
  });

  it("a Jabber user sees a SIP user's publication: pending while confirm, then show and status", async () => {
    const res = await th.herald.pa.publish({ kind: 'initial', presentity: BOB, document: parsePidf(bobPidf('On a call', 'on-the-phone')), body: bobPidf('On a call', 'on-the-phone'), expires: 3600 });
    assert.ok(res.ok);
    bobEtag = res.etag;
    const juliet = await jabber('juliet');
    await juliet.presence(undefined);
    await juliet.presence(BOB_JID, 'subscribe');
    // Rules say confirm: nothing goes back to XMPP (RFC 8048 §5.2.1).
    assert.ok(await juliet.none((n) => n.name === 'presence' && n.attrs['from']?.startsWith(BOB_JID) === true, 700));
    assert.ok(auth.asked.includes('sip:juliet@xmpp.test'), `watcher identity: ${auth.asked.join(',')}`);
    auth.set('sip:juliet@xmpp.test', BOB, 'allow');
    // The server consumes `subscribed` (RFC 6121 §3.1.6) and records it in juliet's roster.
    const p = await juliet.next(isPresence(BOB_JID, undefined));
    assert.equal(await rosterState(juliet, BOB_JID, 'to'), 'to');
    assert.equal(text(child(p, 'show')), 'dnd');
    assert.equal(text(child(p, 'status')), 'On a call');
    // A new publication flows as a new presence.
    const body = bobPidf('Lunch', 'lunch');
    const r2 = await th.herald.pa.publish({ kind: 'modify', presentity: BOB, etag: bobEtag, document: parsePidf(body), body, expires: 3600 });
    assert.ok(r2.ok);
    bobEtag = r2.etag;
    const p2 = await juliet.next((n) => isPresence(BOB_JID, undefined)(n) && text(child(n, 'status')) === 'Lunch');
    assert.equal(text(child(p2, 'show')), 'away');
  });

  it('Prosody restarting loses no authorization', async () => {
    const r = new Recorder();
    r.watch = th.herald.hub.watch(ROMEO, r.listener, 'sip:carol@example.test');
    await r.until((x) => x.upstream?.state === 'active');
    for (const c of clients.splice(0)) await c.stop();
    await prosody.stop();
    await sleep(300);
    await prosody.start();
    // Romeo comes back: Prosody still has carol% in his roster and sends her his presence.
    const romeo = await jabber('romeo');
    await romeo.presence(undefined, undefined, 'chat', 'Back');
    const s = await r.until((x) => showOf(x.document) === 'chat', 12_000);
    assert.equal(noteOf(s.document), 'Back');
    // Juliet comes back: her login probes bob%, which the gateway answers from its store.
    const juliet = await jabber('juliet');
    await juliet.presence(undefined);
    const p = await juliet.next((n) => isPresence(BOB_JID, undefined)(n) && text(child(n, 'status')) === 'Lunch', 12_000);
    assert.equal(text(child(p, 'show')), 'away');
    r.watch.stop();
  });

  it('a refusal on either side ends the other', async () => {
    // XMPP side: romeo denies dave → dave's watch ends terminated;reason=rejected (RFC 8048 §5.3.2).
    const romeo = clients.find((c) => c.user === 'romeo') as Jabber;
    const r = new Recorder();
    r.watch = th.herald.hub.watch(ROMEO, r.listener, 'sip:dave@example.test');
    const sub = await romeo.next(isPresence('dave%example.test@sip.xmpp.test', 'subscribe'));
    await romeo.presence(sub.attrs['from'], 'unsubscribed');
    const s = await r.until((x) => x.upstream?.state === 'terminated');
    assert.equal(s.upstream?.reason, 'rejected');
    r.watch.stop();
    // SIP side: bob's rules now block juliet → `unsubscribed`, and her probes get no presence.
    const juliet = clients.find((c) => c.user === 'juliet') as Jabber;
    auth.set('sip:juliet@xmpp.test', BOB, 'block');
    await juliet.next(isPresence(BOB_JID, 'unavailable'));
    assert.equal(await rosterState(juliet, BOB_JID, 'none'), 'none');
    // Her next probe (a new login) is answered `unsubscribed`-style: no presence of bob's arrives.
    await juliet.presence(undefined);
    assert.ok(await juliet.none(isPresence(BOB_JID, undefined), 700));
  });

  it('roster mode: the roster is a list, and a roster push adds a member live', async () => {
    // alice@xmpp.test has romeo in her roster with an approved subscription.
    const alice = await jabber('alice', 'phone');
    const romeo = clients.find((c) => c.user === 'romeo') as Jabber;
    await alice.iq(el('iq', { type: 'set' }, el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: 'romeo@xmpp.test' }))));
    await alice.presence('romeo@xmpp.test', 'subscribe');
    await romeo.next(isPresence('alice@xmpp.test', 'subscribe'));
    await romeo.presence('alice@xmpp.test', 'subscribed');
    await sleep(300);
    const list = gw.roster.listUriOf('sip:alice@example.test') as string;
    assert.equal(list, 'sip:alice+roster@example.test');
    const changes: string[] = [];
    gw.roster.onChange((l) => changes.push(l));
    await gw.roster.link('sip:alice@example.test', 'alice@xmpp.test', 'pw');
    for (let i = 0; i < 100 && !(gw.roster.members(list) ?? []).includes(ROMEO); i++) await sleep(50);
    assert.deepEqual(gw.roster.members(list), [ROMEO]);
    // Romeo's presence reaches alice's roster list through her own c2s session.
    const r = new Recorder();
    r.watch = th.herald.hub.watch(ROMEO, r.listener, 'sip:alice@example.test');
    const s = await r.until((x) => x.upstream?.state === 'active' && showOf(x.document) === 'chat');
    assert.equal(noteOf(s.document), 'Back');
    r.watch.stop();
    // Live: alice adds juliet from her phone; the server pushes it to Herald's session.
    await alice.iq(el('iq', { type: 'set' }, el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: 'juliet@xmpp.test' }))));
    for (let i = 0; i < 100 && !(gw.roster.members(list) ?? []).includes(`sip:juliet*xmpp.test@${GW}`); i++) await sleep(50);
    assert.deepEqual([...(gw.roster.members(list) ?? [])].sort(), [ROMEO, `sip:juliet*xmpp.test@${GW}`].sort());
    assert.ok(changes.includes(list));
  });
});
