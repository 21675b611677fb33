// Nested lists as nested RLMI (RFC 4662 §5.4) over real sockets: a service whose list holds an entry
// and a nested <list>; the nested list is a resource of the top-level RLMI whose instance points at a
// multipart/related part with its own RLMI (URI, name, version from 0), holding its members' parts.
// Partial state nests the same way; a service configured flat gets one RLMI; no multipart: 406.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { xcap } from '../support/xcap.js';
import { decodeList, memberBody } from '../support/rls.js';
import { parseMultipart, rootPart } from '../../src/formats/multipart.js';
import { parseRlmi } from '../../src/formats/rlmi.js';
import { parsePidfDiff } from '../../src/formats/pidf-diff.js';

const D = 'example.test';
const uri = (u: string) => `sip:${u}@${D}`;
const OWNER = { username: 'owner', password: 'owner-pw' };
const NESTED = uri('nested');
const FLAT = uri('flat');
const FRIENDS = `${NESTED};list=friends`;

const service = (s: string) => `<service uri="${s}"><list name="top"><rl:entry uri="${uri('bob')}"/><rl:list name="friends"><rl:entry uri="${uri('carol')}"/><rl:entry uri="${uri('dave')}"/></rl:list></list><packages><package>presence</package></packages></service>`;
const SERVICES = `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">${service(NESTED)}${service(FLAT)}</rls-services>`;

describe('resource list server: nested lists (RFC 4662 §5.4)', () => {
  let h: TestHerald;
  let pub: TestUA;
  let w: TestUA;
  before(async () => {
    h = await startTestHerald({ rls: { min_notify_interval: 0, flatten_services: [FLAT] } });
    await h.herald.users.add(uri('owner'), OWNER.password);
    pub = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    w = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const r = await xcap('PUT', h.xcapUrl(), `rls-services/users/${uri('owner')}/index`, OWNER, SERVICES, 'application/rls-services+xml');
    assert.ok(r.status === 200 || r.status === 201, `${r.status} ${r.body}`);
    for (const u of ['bob', 'carol', 'dave']) {
      const p = await pub.request('PUBLISH', uri(u), { from: uri(u), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri(u), { note: `${u}-1` }) });
      assert.equal(p.status, 200);
    }
  });
  after(async () => {
    pub.close();
    w.close();
    await h.stop();
  });

  async function subscribe(list: string, accept = 'application/pidf+xml, application/rlmi+xml, multipart/related') {
    const callId = rnd();
    const res = await w.request('SUBSCRIBE', list, { from: uri('watcher'), fromTag: rnd(), callId, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: accept } });
    const seen = new Set<Msg>();
    const next = async () => {
      const m = await w.nextRequest((x) => x.method === 'NOTIFY' && x.callId === callId, 5000, seen);
      seen.add(m);
      return decodeList(m);
    };
    return { res, next };
  }

  /** The nested list's part of a list NOTIFY, decoded: its RLMI and its own parts. */
  function nestedPart(n: ReturnType<typeof decodeList>, listUri: string) {
    const r = n.rlmi.resources.find((x) => x.uri === listUri);
    assert.ok(r, `no resource ${listUri} in ${n.rlmi.resources.map((x) => x.uri).join(', ')}`);
    const cid = r.instances[0]?.cid;
    assert.equal(r.instances[0]?.state, 'active');
    const mp = parseMultipart(n.msg.h('content-type')!, n.msg.body);
    const part = mp.parts.find((p) => p.contentId === cid);
    assert.ok(part, 'the cid names a top-level part of the outer multipart (§5.5)');
    assert.match(part.contentType, /^multipart\/related;.*type="?application\/rlmi\+xml/);
    const inner = parseMultipart(part.contentType, part.body);
    const root = rootPart(inner)!;
    const rlmi = parseRlmi(root.body);
    const bodies = new Map<string, string>();
    for (const res of rlmi.resources) {
      const b = inner.parts.find((p) => p.contentId === res.instances[0]?.cid)?.body;
      if (b) bodies.set(res.uri, b);
    }
    return { rlmi, bodies, name: r.names[0]?.text };
  }

  test('full state: the nested list is one resource with its own RLMI; a change is partial at both levels', async () => {
    const { res, next } = await subscribe(NESTED);
    assert.equal(res.status, 200);
    const n0 = await next();
    assert.equal(n0.rlmi.version, 0);
    assert.equal(n0.rlmi.fullState, true);
    assert.deepEqual(n0.rlmi.resources.map((r) => r.uri), [uri('bob'), FRIENDS]);
    assert.match(memberBody(n0, uri('bob'))!, /bob-1/);
    const f0 = nestedPart(n0, FRIENDS);
    assert.equal(f0.name, 'friends');
    assert.equal(f0.rlmi.uri, FRIENDS);
    assert.equal(f0.rlmi.version, 0, 'a nested list has its own version, from 0');
    assert.equal(f0.rlmi.fullState, true);
    assert.deepEqual(f0.rlmi.resources.map((r) => r.uri), [uri('carol'), uri('dave')]);
    assert.match(f0.bodies.get(uri('carol'))!, /carol-1/);

    await pub.request('PUBLISH', uri('carol'), { from: uri('carol'), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri('carol'), { note: 'carol-2' }) });
    const n1 = await next();
    assert.equal(n1.rlmi.version, 1);
    assert.equal(n1.rlmi.fullState, false);
    assert.deepEqual(n1.rlmi.resources.map((r) => r.uri), [FRIENDS], 'only the nested list changed');
    const f1 = nestedPart(n1, FRIENDS);
    assert.equal(f1.rlmi.version, 1);
    assert.equal(f1.rlmi.fullState, false);
    assert.deepEqual(f1.rlmi.resources.map((r) => r.uri), [uri('carol')]);
    assert.match(f1.bodies.get(uri('carol'))!, /carol-2/);

    await pub.request('PUBLISH', uri('bob'), { from: uri('bob'), headers: { Event: 'presence', Expires: '600' }, body: pidf(uri('bob'), { note: 'bob-2' }) });
    const n2 = await next();
    assert.deepEqual(n2.rlmi.resources.map((r) => r.uri), [uri('bob')], 'a top-level change leaves the nested list out');
  });

  test('a service configured flat: one RLMI with every member', async () => {
    const { res, next } = await subscribe(FLAT);
    assert.equal(res.status, 200);
    const n0 = await next();
    assert.deepEqual(n0.rlmi.resources.map((r) => r.uri).sort(), [uri('bob'), uri('carol'), uri('dave')]);
  });

  test('RFC 5263 parts: a list subscriber that accepts pidf-diff gets pidf-full parts, then patches of the member that changed', async () => {
    const { res, next } = await subscribe(FLAT, 'application/pidf+xml, application/pidf-diff+xml, application/rlmi+xml, multipart/related');
    assert.equal(res.status, 200);
    const n0 = await next();
    const cids = (n: ReturnType<typeof decodeList>) => n.rlmi.resources.map((r) => r.instances[0]?.cid).filter((c): c is string => !!c);
    const mp0 = parseMultipart(n0.msg.h('content-type')!, n0.msg.body);
    for (const cid of cids(n0)) {
      const p = mp0.parts.find((x) => x.contentId === cid)!;
      assert.match(p.contentType, /^application\/pidf-diff\+xml/);
      assert.equal(parsePidfDiff(p.body).kind, 'full');
    }
    const three = (note: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${uri('dave')}">${['a', 'b', 'c'].map((t) => `<tuple id="${t}"><status><basic>open</basic></status><contact>sip:dave-${t}@192.0.2.1</contact><note>${t === 'b' ? note : `device ${t}`}</note></tuple>`).join('')}</presence>`;
    const put = async (note: string) => (await pub.request('PUBLISH', uri('dave'), { from: uri('dave'), headers: { Event: 'presence', Expires: '600' }, body: three(note) })).status;
    assert.equal(await put('first'), 200);
    await next();
    assert.equal(await put('second'), 200);
    const n2 = await next();
    assert.deepEqual(n2.rlmi.resources.map((r) => r.uri), [uri('dave')]);
    const part = parseMultipart(n2.msg.h('content-type')!, n2.msg.body).parts.find((x) => x.contentId === cids(n2)[0])!;
    const d = parsePidfDiff(part.body);
    assert.equal(d.kind, 'patch');
    assert.equal(d.version, 2, "the member's own pidf-diff version: 0 (full state), 1, 2");
    if (d.kind === 'patch') assert.deepEqual(d.ops.map((o) => o.sel), ["*/tuple[@id='b']"]);
  });

  test('a subscriber that accepts no multipart/related: 406 with what would do', async () => {
    const { res } = await subscribe(NESTED, 'application/pidf+xml');
    assert.equal(res.status, 406);
    assert.match(res.h('accept') ?? '', /multipart\/related/);
  });
});
