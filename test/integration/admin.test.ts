// The admin listener over real sockets: every endpoint, refused without credentials, the token and an
// admin AOR's digest accepted, paging and filters, a watcher decision that changes the watcher's
// subscription at once, and /metrics (prom-client) with the figures the hooks feed.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, digestAuthorization, pidf, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { rlsServices } from '../support/rls.js';
import { parseXcapPath } from '../../src/xcap/path.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const CAROL = 'sip:carol@example.test';
const ADMIN = 'sip:admin@example.test';
const LIST = 'sip:carol-buddies@example.test';

type Json = Record<string, unknown> & { items?: Record<string, unknown>[]; total?: number };

describe('admin API', () => {
  let h: TestHerald;
  let ua: TestUA;
  let etag: string;
  const seen = new Set<Msg>();
  const bobCall = rnd();

  const get = async (path: string, auth: Record<string, string> = { authorization: `Bearer ${h.adminToken()}` }): Promise<{ status: number; json: Json; headers: Headers }> => {
    const r = await fetch(`${h.adminUrl()}${path}`, { headers: auth });
    const text = await r.text();
    return { status: r.status, json: (text.startsWith('{') ? JSON.parse(text) : {}) as Json, headers: r.headers };
  };

  before(async () => {
    h = await startTestHerald({ policy: { default: 'confirm' }, admin: { admins: [ADMIN] }, rls: { min_notify_interval: 0 } });
    await h.herald.users.add(ADMIN, 'admin-secret');
    await h.herald.users.add(ALICE, 'alice-secret');
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    const p = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'In the office', extra: '<dm:device xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" id="d1"><dm:deviceID>urn:uuid:desk-phone</dm:deviceID></dm:device>' }) });
    assert.equal(p.status, 200);
    etag = p.h('sip-etag')!;
    const s = await ua.request('SUBSCRIBE', ALICE, { from: BOB, callId: bobCall, headers: { Event: 'presence', Expires: '600' } });
    assert.equal(s.status, 200);
    const n = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall, 5000, seen);
    seen.add(n);
    assert.match(n.h('subscription-state') ?? '', /^pending/);
    // A list of carol's with alice and bob on it, subscribed by carol.
    const path = parseXcapPath(`/rls-services/users/${encodeURIComponent(CAROL)}/index`);
    await h.herald.xcapDocuments.put(path, rlsServices({ [LIST]: [ALICE, BOB] }), 'application/rls-services+xml');
    const l = await ua.request('SUBSCRIBE', LIST, { from: CAROL, headers: { Event: 'presence', Expires: '600', Supported: 'eventlist', Accept: 'application/pidf+xml, application/rlmi+xml, multipart/related' } });
    assert.equal(l.status, 200);
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  test('without credentials every endpoint but /metrics is refused with 401 and a challenge', async () => {
    for (const path of ['/', '/api/status', '/api/presentities', `/api/presentities/${ALICE}`, `/api/presentities/${ALICE}/watchers`, '/api/subscriptions', '/api/lists', '/api/peers', '/api/users', '/api/events']) {
      const r = await get(path, {});
      assert.equal(r.status, 401, path);
      assert.match(r.headers.get('www-authenticate') ?? '', /Digest realm="example\.test".*Bearer/, path);
    }
    const post = await fetch(`${h.adminUrl()}/api/presentities/${ALICE}/watchers/${BOB}`, { method: 'POST', body: '{"action":"approve"}' });
    assert.equal(post.status, 401);
    assert.equal((await get('/api/status', { authorization: 'Bearer wrong' })).status, 401);
    assert.equal((await get('/metrics', {})).status, 200);
  });

  test('an admin AOR passes with digest (realm the SIP domain); another user does not', async () => {
    const challenge = (await get('/api/status', {})).headers.get('www-authenticate')!.split(', Bearer')[0]!;
    const md5 = challenge.replace(/algorithm=SHA-256/, 'algorithm=MD5');
    const ok = await get('/api/status', { authorization: digestAuthorization(md5, 'GET', '/api/status', 'admin', 'admin-secret') });
    assert.equal(ok.status, 200);
    const c2 = (await get('/api/status', {})).headers.get('www-authenticate')!;
    const alice = await get('/api/status', { authorization: digestAuthorization(c2.replace(/algorithm=SHA-256.*$/, 'algorithm=MD5'), 'GET', '/api/status', 'alice', 'alice-secret') });
    assert.equal(alice.status, 401);
  });

  test('GET /api/status', async () => {
    const { status, json } = await get('/api/status');
    assert.equal(status, 200);
    assert.deepEqual(json['domains'], ['example.test']);
    assert.equal(json['publications'], 1);
    assert.ok((json['subscriptions'] as number) >= 2);
    assert.equal(json['listSubscriptions'], 1);
    assert.match(String(json['version']), /^\d+\.\d+\.\d+/);
  });

  test('GET /api/presentities: colour, note, counts; filters and pages', async () => {
    const { json } = await get('/api/presentities');
    const alice = json.items!.find((p) => p['aor'] === ALICE)!;
    assert.equal(alice['colour'], 'green');
    assert.equal(alice['basic'], 'open');
    assert.equal(alice['note'], 'In the office');
    assert.equal(alice['publications'], 1);
    assert.ok((alice['watchers'] as number) >= 1);
    assert.equal((await get('/api/presentities?colour=green')).json.items!.length, 1);
    assert.equal((await get('/api/presentities?q=office')).json.items![0]!['aor'], ALICE);
    const paged = (await get('/api/presentities?limit=1&offset=0')).json;
    assert.equal(paged.items!.length, 1);
    assert.ok(paged.total! >= 2, 'bob, watched in the list, is a presentity too');
  });

  test('GET /api/presentities/ALICE: the composed document and each publication with device, ETag, expiry', async () => {
    const { status, json } = await get(`/api/presentities/${encodeURIComponent(ALICE)}`);
    assert.equal(status, 200);
    assert.match(String(json['document']), /<basic>open<\/basic>/);
    const pubs = json['publicationList'] as Record<string, unknown>[];
    assert.equal(pubs.length, 1);
    assert.equal(pubs[0]!['etag'], etag);
    assert.deepEqual(pubs[0]!['devices'], ['urn:uuid:desk-phone']);
    assert.ok((pubs[0]!['expiresIn'] as number) > 500);
    assert.equal((await get('/api/presentities/nobody@elsewhere.test')).status, 404);
    assert.equal((await get('/api/presentities/not%20an%20aor')).status, 400);
  });

  test('GET /api/presentities/ALICE/watchers: state, since, event, from where', async () => {
    const { json } = await get(`/api/presentities/alice@example.test/watchers`);
    const bob = json.items!.find((w) => w['watcher'] === BOB)!;
    assert.equal(bob['status'], 'pending');
    assert.equal(bob['event'], 'subscribe');
    assert.match(String(bob['from']), /^udp:127\.0\.0\.1:\d+$/);
    assert.equal((await get(`/api/presentities/alice@example.test/watchers?status=active`)).json.items!.length, 0);
  });

  test('GET /api/subscriptions: dialog, event, expiry, last NOTIFY and its answer; filtered by event', async () => {
    const { json } = await get('/api/subscriptions?event=presence&resource=' + encodeURIComponent(ALICE));
    assert.equal(json.items!.length, 1);
    const s = json.items![0]!;
    assert.equal(s['watcher'], BOB);
    assert.equal((s['dialog'] as Record<string, unknown>)['callId'], bobCall);
    assert.deepEqual((s['lastNotify'] as Record<string, unknown>)['status'], 200);
    assert.ok((s['expiresIn'] as number) > 500);
  });

  test('GET /api/lists: the list, its watcher and the members\' instance states', async () => {
    const { json } = await get('/api/lists');
    assert.equal(json.items!.length, 1);
    const l = json.items![0]!;
    assert.equal(l['list'], LIST);
    assert.equal(l['watcher'], CAROL);
    const members = l['members'] as { uri: string; state: string }[];
    assert.deepEqual(members.map((m) => m.uri).sort(), [ALICE, BOB]);
    // Carol is not in alice's rules; the default is confirm: pending.
    assert.equal(members.find((m) => m.uri === ALICE)!.state, 'pending');
  });

  test('GET /api/peers and /api/users', async () => {
    const peers = (await get('/api/peers')).json;
    assert.deepEqual(peers['xmpp'], { enabled: false });
    assert.equal((peers['sip'] as Record<string, unknown>)['enabled'], false);
    const users = (await get('/api/users')).json;
    assert.deepEqual(users.items!.map((u) => u['aor']), [ADMIN, ALICE]);
    assert.equal(JSON.stringify(users).includes('ha1'), false, 'no digest hashes');
  });

  test('POST a watcher decision: pres-rules change as by XCAP, the watcher becomes active at once', async () => {
    const r = await fetch(`${h.adminUrl()}/api/presentities/${encodeURIComponent(ALICE)}/watchers/${encodeURIComponent(BOB)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.adminToken()}`, 'content-type': 'application/json' },
      body: JSON.stringify({ action: 'approve' }),
    });
    assert.equal(r.status, 200);
    const n = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall && /^active/.test(m.h('subscription-state') ?? ''), 5000, seen);
    assert.match(n.body, /In the office/);
    const doc = h.herald.xcapDocuments.document('pres-rules', ALICE, 'index');
    assert.match(doc!.body, /herald_bob_example\.test/);
    const w = (await get(`/api/presentities/alice@example.test/watchers`)).json.items!.find((x) => x['watcher'] === BOB)!;
    assert.equal(w['status'], 'active');
    const bad = await fetch(`${h.adminUrl()}/api/presentities/${encodeURIComponent(ALICE)}/watchers/${encodeURIComponent(BOB)}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${h.adminToken()}` },
      body: JSON.stringify({ action: 'adore' }),
    });
    assert.equal(bad.status, 400);
  });

  test('GET /api/events streams a change after a PUBLISH', async () => {
    const ac = new AbortController();
    const r = await fetch(`${h.adminUrl()}/api/events`, { headers: { authorization: `Bearer ${h.adminToken()}` }, signal: ac.signal });
    assert.equal(r.headers.get('content-type'), 'text/event-stream');
    const reader = r.body!.getReader();
    let text = '';
    const read = async (want: RegExp) => {
      while (!want.test(text)) {
        const c = await reader.read();
        if (c.done) break;
        text += new TextDecoder().decode(c.value);
      }
    };
    await read(/event: hello/);
    await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600', 'SIP-If-Match': etag } });
    await read(/event: change/);
    assert.match(text, /event: change\ndata: \{"at":/);
    ac.abort();
  });

  test('the page is served to the token holder, and ?token= is exchanged for a cookie', async () => {
    const page = await fetch(`${h.adminUrl()}/`, { headers: { authorization: `Bearer ${h.adminToken()}` } });
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<title>Herald admin<\/title>/);
    const login = await fetch(`${h.adminUrl()}/?token=${h.adminToken()}`, { redirect: 'manual' });
    assert.equal(login.status, 303);
    const cookie = login.headers.get('set-cookie')!;
    assert.match(cookie, /HttpOnly; SameSite=Strict/);
    assert.equal((await get('/api/status', { cookie: cookie.split(';')[0]! })).status, 200);
  });

  test('/metrics: process metrics, messages by method/status/transport, publish→NOTIFY and store-write histograms, NOTIFY answers, auth failures', async () => {
    const text = await (await fetch(`${h.adminUrl()}/metrics`)).text();
    assert.match(text, /^herald_process_cpu_user_seconds_total /m);
    assert.match(text, /^herald_sip_messages_total\{direction="in",kind="request",method="PUBLISH",status="",transport="udp"\} \d+/m);
    assert.match(text, /^herald_sip_messages_total\{direction="out",kind="response",method="SUBSCRIBE",status="200",transport="udp"\} \d+/m);
    assert.match(text, /^herald_publish_to_notify_seconds_count [1-9]/m);
    assert.match(text, /^herald_store_write_seconds_count [1-9]/m);
    assert.match(text, /^herald_notify_answers_total\{status="200"\} [1-9]/m);
    assert.match(text, /^herald_auth_failures_total\{protocol="admin",reason="wrong token"\} [1-9]/m);
    assert.match(text, /^# TYPE herald_upstream_subscriptions gauge$/m, "by state; no series without the SIP gateway");
    assert.match(text, /^herald_list_subscriptions 1$/m);
    assert.match(text, /^herald_free_memory_returned_bytes_total \d+$/m, 'malloc_trim after storms (0 until one)');
    assert.match(text, /^herald_heap_compactions_total \d+$/m, 'V8 old-space compactions asked for after storms');
    // The XCAP port keeps serving the same registry for scrapers configured before the admin listener.
    const old = await (await fetch(h.xcapUrl().replace(/\/xcap-root$/, '/metrics'))).text();
    assert.match(old, /^herald_hub_resources \d+$/m);
    assert.match(old, /^herald_sip_messages_total\{/m);
  });
});

describe('admin API with metrics_public = false', () => {
  test('/metrics needs credentials too', async () => {
    const h = await startTestHerald({ admin: { metrics_public: false } });
    try {
      assert.equal((await fetch(`${h.adminUrl()}/metrics`)).status, 401);
      const r = await fetch(`${h.adminUrl()}/metrics`, { headers: { authorization: `Bearer ${h.adminToken()}` } });
      assert.equal(r.status, 200);
      assert.match(await r.text(), /herald_subscriptions 0/);
    } finally {
      await h.stop();
    }
  });
});
