// The XMPP gateway end to end over real SIP against a real Prosody (Debian `prosody`): Herald runs with
// `[gateway.xmpp]` enabled exactly as src/server.ts wires it, SIP watchers and publishers are the
// project's TestUA on real sockets, Jabber users are @xmpp/client c2s sessions (romeo, juliet, alice on
// xmpp.test), bob's pres-rules live on Herald's embedded XCAP server. Loopback only; Prosody is started
// and stopped by its own pid; every wait is bounded.
import { decodeList, type ListNotify } from '../support/rls.js';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { parsePidf, type PidfDocument } from '../../src/formats/pidf.js';
import { el, text, child } from '../../gateways/xmpp/wire.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { freePort } from '../support/process.js';
import { TestUA, rnd, type Msg } from '../support/ua.js';
import { presRules, rule, xcap } from '../support/xcap.js';
import { Prosody } from './prosody/prosody.js';
import { Jabber, isPresence } from './prosody/jabber.js';
import { activityOf, basicOf, noteOf, showOf } from './prosody/pidf-checks.js';

const D = 'example.test';
const GW = 'xmpp.example.test';
const COMPONENT = 'sip.xmpp.test';
const SECRET = 'interop-sip-secret';
const sip = (u: string): string => `sip:${u}@${D}`;
/** A Jabber user as SIP sees it (RFC 7247 §6, separator "*"). */
const jabberSip = (node: string): string => `sip:${node}*xmpp.test@${GW}`;
/** A SIP user as XMPP sees it. */
const sipJid = (u: string): string => `${u}%${D}@${COMPONENT}`;
const ROMEO = jabberSip('romeo');
const JULIET = jabberSip('juliet');
const BOB = sip('bob');
const BOB_JID = sipJid('bob');
/** The identity a Jabber watcher has in a SIP user's pres-rules (what the gateway hands the authorizer). */
const JULIET_WATCHER = 'sip:juliet@xmpp.test';
const BOB_AUTH = { username: 'bob', password: 'bob-pw' };
const BOB_RULES = `pres-rules/users/${BOB}/index`;
const EVERYTHING =
  '<provide-services><all-services/></provide-services><provide-persons><all-persons/></provide-persons><provide-devices><all-devices/></provide-devices>' +
  '<provide-activities>true</provide-activities><provide-note>true</provide-note>';

/** One SIP subscription dialog of a TestUA: its NOTIFYs in order, each looked at once. */
class SipDialog {
  private readonly seen = new Set<Msg>();
  constructor(readonly ua: TestUA, readonly res: Msg, readonly callId: string, readonly fromTag: string, readonly from: string, readonly target: string) {}

  /** The next NOTIFY of this dialog that satisfies `pred`; NOTIFYs before it are passed over. */
  async next(pred: (m: Msg) => boolean = () => true, ms = 8000): Promise<Msg> {
    const deadline = Date.now() + ms;
    let last: Msg | undefined;
    for (;;) {
      for (const m of this.ua.requests) {
        if (m.method !== 'NOTIFY' || m.callId !== this.callId || this.seen.has(m)) continue;
        this.seen.add(m);
        last = m;
        if (pred(m)) return m;
      }
      if (Date.now() > deadline) throw new Error(`${this.from} → ${this.target}: no matching NOTIFY within ${ms} ms; last: ${last ? `${last.h('subscription-state')}\n${last.body}` : 'none'}`);
      await sleep(25);
    }
  }

  /** Re-SUBSCRIBE in the dialog (Expires: 0 ends it). */
  refresh(expires: number, cseq: number, headers: Record<string, string> = {}): Promise<Msg> {
    return this.ua.request('SUBSCRIBE', this.target, {
      from: this.from,
      fromTag: this.fromTag,
      toTag: this.res.toTag!,
      callId: this.callId,
      cseq,
      headers: { Event: 'presence', Expires: String(expires), ...headers },
    });
  }
}

const stateOf = (m: Msg): string => (m.h('subscription-state') ?? '').split(';')[0]!.trim();
const pidfOf = (m: Msg): PidfDocument | undefined => (m.body.trim() === '' ? undefined : parsePidf(m.body));

/** The PIDF a list NOTIFY carries for one member, if any. */
function memberPidf(n: ListNotify, uri: string): PidfDocument | undefined {
  const cid = n.rlmi.resources.find((r) => r.uri === uri)?.instances[0]?.cid;
  const body = cid === undefined ? undefined : n.parts.get(cid);
  return body === undefined ? undefined : parsePidf(body);
}

function bobPidf(note: string, activity: string): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" entity="${BOB}">
  <tuple id="t1"><status><basic>open</basic></status><contact>sip:bob@127.0.0.1</contact><note>${note}</note></tuple>
  <dm:person id="p1"><rpid:activities><rpid:${activity}/></rpid:activities></dm:person>
</presence>`;
}

describe('XMPP gateway with Prosody, over real SIP', { skip: !Prosody.available() && process.env.CI !== 'true' ? 'prosody not installed' : false, timeout: 150_000 }, () => {
  let prosody: Prosody;
  let th: TestHerald;
  let service: string;
  /** SIP user agents: watchers over TCP, bob's phone over UDP. */
  let watcherUa: TestUA;
  let bobUa: TestUA;
  let bobEtag = '';
  let carolRomeo: SipDialog;
  const clients: Jabber[] = [];

  const jabber = async (user: string, resource = 'test'): Promise<Jabber> => {
    const j = new Jabber(service, user, 'pw', resource);
    clients.push(j);
    await j.start();
    return j;
  };
  const client = (user: string): Jabber => {
    const j = clients.find((c) => c.user === user);
    assert.ok(j, `${user} is logged in`);
    return j;
  };

  const subscribe = async (ua: TestUA, from: string, target: string, headers: Record<string, string> = {}): Promise<SipDialog> => {
    const callId = rnd();
    const fromTag = rnd();
    const res = await ua.request('SUBSCRIBE', target, { from, fromTag, callId, headers: { Event: 'presence', Expires: '3600', Accept: 'application/pidf+xml', ...headers } });
    return new SipDialog(ua, res, callId, fromTag, from, target);
  };

  const publish = async (body: string, etag?: string, expires = 3600): Promise<Msg> => {
    const r = await bobUa.request('PUBLISH', BOB, { from: BOB, headers: { Event: 'presence', Expires: String(expires), ...(etag ? { 'SIP-If-Match': etag } : {}) }, ...(expires > 0 ? { body } : {}) });
    assert.equal(r.status, 200, `PUBLISH: ${r.status} ${r.reason}`);
    return r;
  };

  const putBobRules = async (rules: string): Promise<void> => {
    const r = await xcap('PUT', th.xcapUrl(), BOB_RULES, BOB_AUTH, presRules(rules), 'application/auth-policy+xml');
    assert.ok(r.status === 200 || r.status === 201, `pres-rules PUT: ${r.status} ${r.body}`);
  };

  /** The subscription state of `jid` in the user's roster (RFC 6121 §2.1.2.5), polled until `want` or a bound. */
  const rosterState = async (j: Jabber, jid: string, want: string): Promise<string> => {
    let got = 'absent';
    for (let i = 0; i < 50; i++) {
      const res = await j.iq(el('iq', { type: 'get' }, el('query', { xmlns: 'jabber:iq:roster' })));
      const item = child(res, 'query')?.children.find((c) => typeof c !== 'string' && c.attrs['jid'] === jid);
      got = typeof item === 'object' ? (item.attrs['subscription'] ?? 'none') : 'absent';
      if (got === want) break;
      await sleep(100);
    }
    return got;
  };

  before(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'herald-prosody-sip-'));
    const [c2s, comp] = [await freePort(), await freePort()];
    service = `xmpp://127.0.0.1:${c2s}`;
    prosody = new Prosody({ dir, c2sPort: c2s, componentPort: comp, secret: SECRET });
    for (const u of ['romeo', 'juliet', 'alice']) prosody.register(u, 'xmpp.test', 'pw');
    await prosody.start();
    th = await startTestHerald({
      // SIP users decide Jabber watchers by their pres-rules; no rules: confirm (RFC 5025 §3.2.1).
      policy: { default: 'confirm' },
      rls: { min_notify_interval: 0 },
      gateway: { xmpp: prosody.heraldGateway({ min_request_interval: 0 }) },
    });
    assert.ok(th.herald.xmpp, '[gateway.xmpp] enabled builds the gateway');
    await th.herald.users.add(BOB, BOB_AUTH.password);
    watcherUa = await TestUA.open('tcp', '127.0.0.1', th.port('tcp'));
    bobUa = await TestUA.open('udp', '127.0.0.1', th.port('udp'));
  });

  after(async () => {
    for (const c of clients) await c.stop();
    watcherUa?.close();
    bobUa?.close();
    await th?.stop();
    await prosody?.stop();
  });

  it('a SIP watcher sees a Jabber user online, away with a note, offline (pending until he approves)', async () => {
    const romeo = await jabber('romeo');
    await romeo.presence(undefined);
    carolRomeo = await subscribe(watcherUa, sip('carol'), ROMEO);
    assert.equal(carolRomeo.res.status, 200, `${carolRomeo.res.status} ${carolRomeo.res.reason}`);
    // RFC 8048 §5.3: an XMPP subscribe from carol's mapped JID; pending until romeo answers.
    const n0 = await carolRomeo.next();
    assert.equal(stateOf(n0), 'pending', n0.h('subscription-state'));
    const sub = await romeo.next(isPresence(sipJid('carol'), 'subscribe'));
    await romeo.presence(sub.attrs['from'], 'subscribed');
    const n1 = await carolRomeo.next((m) => stateOf(m) === 'active' && basicOf(pidfOf(m)) === 'open');
    assert.match(n1.h('content-type') ?? '', /^application\/pidf\+xml/);
    const d1 = pidfOf(n1)!;
    assert.equal(d1.entity, ROMEO);
    assert.equal(d1.tuples[0]?.id, 'ID-test', 'one tuple per XMPP resource, ID- prefixed');
    // Away with a note: the note, the show embedded verbatim in jabber:client, and the RPID activity.
    await romeo.presence(undefined, undefined, 'away', 'Gone fishing');
    const n2 = await carolRomeo.next((m) => showOf(pidfOf(m)) === 'away');
    const d2 = pidfOf(n2)!;
    assert.equal(stateOf(n2), 'active');
    assert.equal(basicOf(d2), 'open');
    assert.equal(noteOf(d2), 'Gone fishing');
    assert.equal(activityOf(d2), 'away', 'RPID activity for phones that read only RPID');
    assert.match(n2.body, /xmlns(:\w+)?="jabber:client"/);
    // Offline: closed, the subscription itself stays active.
    await romeo.presence(undefined, 'unavailable');
    const n3 = await carolRomeo.next((m) => basicOf(pidfOf(m)) === 'closed');
    assert.equal(stateOf(n3), 'active');
  });

  it('a Jabber user refusing ends the SIP subscription: terminated;reason=rejected', async () => {
    const romeo = client('romeo');
    // Inbound subscription requests reach available resources (RFC 6121 §3.1.3).
    await romeo.presence(undefined);
    const dave = await subscribe(watcherUa, sip('dave'), ROMEO);
    assert.equal(dave.res.status, 200);
    assert.equal(stateOf(await dave.next()), 'pending');
    const sub = await romeo.next(isPresence(sipJid('dave'), 'subscribe'));
    await romeo.presence(sub.attrs['from'], 'unsubscribed');
    const n = await dave.next((m) => stateOf(m) === 'terminated');
    assert.match(n.h('subscription-state') ?? '', /reason=rejected/);
    assert.equal(pidfOf(n), undefined, 'no presence for a refused watcher');
    // Carol's subscription is untouched and saw romeo come back.
    const c = await carolRomeo.next((m) => basicOf(pidfOf(m)) === 'open');
    assert.equal(stateOf(c), 'active');
  });

  it("a Jabber user sees a SIP user's PUBLISH: pending while bob's rules say confirm, then show and status", async () => {
    const pub = await publish(bobPidf('On a call', 'on-the-phone'));
    bobEtag = pub.h('sip-etag') ?? '';
    assert.ok(bobEtag, 'SIP-ETag');
    const juliet = await jabber('juliet');
    await juliet.presence(undefined);
    await juliet.presence(BOB_JID, 'subscribe');
    // No rules yet (default confirm): nothing goes back to XMPP (RFC 8048 §5.2.1).
    assert.ok(await juliet.none((n) => n.name === 'presence' && n.attrs['from']?.startsWith(BOB_JID) === true, 500));

    // Bob allows her on XCAP: `subscribed` (consumed by Prosody into her roster) and his presence.
    await putBobRules(rule('r-juliet', [JULIET_WATCHER], 'allow', EVERYTHING));
    const p = await juliet.next(isPresence(BOB_JID, undefined));
    assert.equal(text(child(p, 'show')), 'dnd', 'RPID on-the-phone → dnd');
    assert.equal(text(child(p, 'status')), 'On a call', 'note → status');
    assert.equal(await rosterState(juliet, BOB_JID, 'to'), 'to');

    // A modified publication flows as a new presence.
    const r2 = await publish(bobPidf('Lunch', 'lunch'), bobEtag);
    bobEtag = r2.h('sip-etag') ?? '';
    const p2 = await juliet.next((n) => isPresence(BOB_JID, undefined)(n) && text(child(n, 'status')) === 'Lunch');
    assert.equal(text(child(p2, 'show')), 'away', 'RPID lunch → away');
  });

  it("roster mode: SUBSCRIBE to the roster list gets the roster's full RLMI state, a roster push adds a member live", async () => {
    const romeo = client('romeo');
    await romeo.presence(undefined, undefined, 'chat', 'Free to talk');
    // alice@xmpp.test has romeo in her roster with an approved subscription (from her phone).
    const alice = await jabber('alice', 'phone');
    await alice.iq(el('iq', { type: 'set' }, el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: 'romeo@xmpp.test' }))));
    await alice.presence('romeo@xmpp.test', 'subscribe');
    await romeo.next(isPresence('alice@xmpp.test', 'subscribe'));
    await romeo.presence('alice@xmpp.test', 'subscribed');
    assert.equal(await rosterState(alice, 'romeo@xmpp.test', 'to'), 'to');

    const roster = th.herald.xmpp!.roster;
    const list = roster.listUriOf(sip('alice'))!;
    assert.equal(list, sip('alice+roster'));
    await roster.link(sip('alice'), 'alice@xmpp.test', 'pw');
    for (let i = 0; i < 100 && !(roster.members(list) ?? []).includes(ROMEO); i++) await sleep(50);
    assert.deepEqual(roster.members(list), [ROMEO], 'Herald fetched the roster over its own c2s session');

    const s = await subscribe(watcherUa, sip('alice'), list, { Supported: 'eventlist', Accept: 'application/pidf+xml, application/rlmi+xml, multipart/related' });
    assert.equal(s.res.status, 200, `${s.res.status} ${s.res.reason}`);
    assert.equal(s.res.h('require'), 'eventlist');
    const n0 = decodeList(await s.next());
    assert.equal(n0.msg.h('require'), 'eventlist');
    assert.match(n0.msg.h('content-type')!, /^multipart\/related;.*type="application\/rlmi\+xml"/);
    assert.equal(n0.rlmi.uri, list);
    assert.equal(n0.rlmi.version, 0);
    assert.equal(n0.rlmi.fullState, true);
    assert.deepEqual(n0.rlmi.resources.map((r) => r.uri), [ROMEO]);
    // Romeo's presence reaches alice's list through her own session (her roster is subscribed to him).
    const open = (n: ListNotify): boolean => showOf(memberPidf(n, ROMEO)) === 'chat';
    const withRomeo = open(n0) ? n0 : decodeList(await s.next((m) => open(decodeList(m))));
    const rd = memberPidf(withRomeo, ROMEO)!;
    assert.equal(withRomeo.rlmi.resources.find((r) => r.uri === ROMEO)?.instances[0]?.state, 'active');
    assert.equal(basicOf(rd), 'open');
    assert.equal(noteOf(rd), 'Free to talk');

    // Live: alice adds juliet from her phone; Prosody pushes it to Herald's session (RFC 6121 §2.1.6).
    await alice.iq(el('iq', { type: 'set' }, el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: 'juliet@xmpp.test' }))));
    const added = decodeList(await s.next((m) => decodeList(m).rlmi.resources.some((r) => r.uri === JULIET)));
    assert.equal(added.rlmi.fullState, false, 'a partial NOTIFY');
    assert.deepEqual(added.rlmi.resources.map((r) => r.uri), [JULIET], 'only the new member');
    assert.ok(added.rlmi.version > withRomeo.rlmi.version);
    assert.deepEqual([...(roster.members(list) ?? [])].sort(), [ROMEO, JULIET].sort());

    // And a roster removal ends that member (RFC 4662 §5.2: shown terminated once).
    await alice.iq(el('iq', { type: 'set' }, el('query', { xmlns: 'jabber:iq:roster' }, el('item', { jid: 'juliet@xmpp.test', subscription: 'remove' }))));
    const removed = decodeList(await s.next((m) => decodeList(m).rlmi.resources.some((r) => r.uri === JULIET && r.instances[0]?.state === 'terminated')));
    assert.equal(removed.rlmi.fullState, false);
    assert.deepEqual(roster.members(list), [ROMEO]);

    // A refresh brings full state again: romeo only.
    const r = await s.refresh(3600, 2, { Supported: 'eventlist' });
    assert.equal(r.status, 200);
    const full = decodeList(await s.next((m) => decodeList(m).rlmi.fullState));
    assert.deepEqual(full.rlmi.resources.map((x) => x.uri), [ROMEO]);
    await s.refresh(0, 3, { Supported: 'eventlist' });
  });

  // The roster is private to the linked account: another SIP user subscribing to alice's roster list
  // learns who is in it (200 and the RLMI member list; the members' presence itself stays pending,
  // decided upstream). The RLS serves a roster list to its owner only: 403 for anyone else.
  it("only the owner may subscribe to her roster list", async () => {
    const list = th.herald.xmpp!.roster.listUriOf(sip('alice'))!;
    const s = await subscribe(watcherUa, sip('mallory'), list, { Supported: 'eventlist', Accept: 'application/pidf+xml, application/rlmi+xml, multipart/related' });
    try {
      assert.equal(s.res.status, 403, `mallory subscribing to alice's roster: ${s.res.status} ${s.res.reason}`);
    } finally {
      if (s.res.status === 200) await s.refresh(0, 2, { Supported: 'eventlist' });
    }
  });

  it('Prosody restarting loses no authorization: the SIP dialog gets presence again, a Jabber login gets the SIP presence', async () => {
    for (const c of clients.splice(0)) await c.stop();
    await prosody.stop();
    await sleep(300);
    await prosody.start();
    // Romeo comes back: Prosody still has carol% in his roster and sends her his presence.
    const romeo = await jabber('romeo');
    await romeo.presence(undefined, undefined, 'chat', 'Back');
    const n = await carolRomeo.next((m) => showOf(pidfOf(m)) === 'chat' && noteOf(pidfOf(m)) === 'Back', 15_000);
    assert.equal(stateOf(n), 'active');
    // A new SIP subscription of carol's is active at once: the gateway kept her authorization.
    const again = await subscribe(watcherUa, sip('carol'), ROMEO);
    assert.equal(again.res.status, 200);
    const a = await again.next((m) => stateOf(m) === 'active' && noteOf(pidfOf(m)) === 'Back');
    assert.equal(basicOf(pidfOf(a)), 'open');
    assert.ok(await romeo.none(isPresence(sipJid('carol'), 'subscribe'), 300), 'no new approval asked of romeo');
    await again.refresh(0, 2);
    // Juliet comes back: her login probes bob%, which the gateway answers from bob's publication.
    const juliet = await jabber('juliet');
    await juliet.presence(undefined);
    const p = await juliet.next((x) => isPresence(BOB_JID, undefined)(x) && text(child(x, 'status')) === 'Lunch', 15_000);
    assert.equal(text(child(p, 'show')), 'away');
  });

  it("a SIP user's refusal ends the Jabber side: bob's rules block juliet → unsubscribed, then no presence", async () => {
    const juliet = client('juliet');
    await putBobRules(rule('r-juliet', [JULIET_WATCHER], 'block'));
    await juliet.next(isPresence(BOB_JID, 'unavailable'));
    assert.equal(await rosterState(juliet, BOB_JID, 'none'), 'none');
    // Bob publishes again: nothing of it reaches juliet.
    await publish(bobPidf('Back at my desk', 'busy'), bobEtag);
    assert.ok(await juliet.none((x) => isPresence(BOB_JID, undefined)(x) && text(child(x, 'status')) === 'Back at my desk', 700));
    // Carol's SIP dialog with romeo ends cleanly.
    const r = await carolRomeo.refresh(0, 2);
    assert.equal(r.status, 200);
    const last = await carolRomeo.next((m) => stateOf(m) === 'terminated');
    assert.ok(last);
  });

  // RFC 5025 §3.2.1 "confirm" means the presentity is asked: a SIP user learns of pending watchers
  // through presence.winfo (RFC 3857). Jabber watchers are decided by the XMPP front end directly
  // (gateways/xmpp/frontend.ts → authorizer.decide) and never enter the WatcherRegistry, so bob cannot see
  // romeo's request and could only approve it blind: the front end records Jabber watchers in winfo.
  it("bob's watcherinfo lists a pending Jabber watcher", async () => {
    const winfo = await subscribe(bobUa, BOB, BOB, { Event: 'presence.winfo', Accept: 'application/watcherinfo+xml' });
    assert.equal(winfo.res.status, 200);
    await winfo.next();
    const romeo = client('romeo');
    await romeo.presence(BOB_JID, 'subscribe');
    try {
      const w = await winfo.next((m) => m.body.includes('sip:romeo@xmpp.test'), 3000);
      // bob's rules decide romeo's row: pending under a confirm rule; by now bob's document has no
      // rule for romeo, so no rule matches and he is rejected (RFC 5025 §3.2.1) — either way bob sees him.
      assert.match(w.body, /<watcher[^>]*(status="pending"|status="terminated"[^>]*event="rejected"|event="rejected"[^>]*status="terminated")[^>]*>sip:romeo@xmpp\.test</);
    } finally {
      await winfo.refresh(0, 2, { Event: 'presence.winfo' });
    }
  });
});
