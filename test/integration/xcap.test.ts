// The embedded XCAP server over real HTTP on loopback (RFC 4825, RFC 7616 digest), and the XCAP
// client against it. The digest answers here are computed independently of src/xcap/digest.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { Client, request } from 'undici';
import { UserDirectory, type UserRecord } from '../../src/auth/users.js';
import { CT } from '../../src/formats/content-types.js';
import { silentLogger } from '../../src/log.js';
import { Store } from '../../src/store/store.js';
import { XcapClient, XcapUnavailableError, type XcapDocument } from '../../src/xcap/client.js';
import { XcapDocuments, type StoredXcapDoc } from '../../src/xcap/documents.js';
import { parseXcapPath } from '../../src/xcap/path.js';
import { remoteRulesSource } from '../../src/xcap/rules-source.js';
import { XcapServer } from '../../src/xcap/server.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const RLS = 'sip:rls@example.test';
const MAX = 4096;
const RL_NS = 'urn:ietf:params:xml:ns:resource-lists';

type Alg = 'MD5' | 'SHA-256';
interface Reply { status: number; headers: Record<string, string | string[] | undefined>; text: string }

const LISTS = `<?xml version="1.0" encoding="UTF-8"?><resource-lists xmlns="${RL_NS}">` +
  '<list name="friends"><entry uri="sip:bob@example.test"/><entry uri="sip:carol@example.test"/></list></resource-lists>';
const rls = (uri: string): string =>
  `<rls-services xmlns="urn:ietf:params:xml:ns:rls-services"><service uri="${uri}"><resource-list>http://x.example.test/xcap-root/resource-lists/users/${ALICE}/index/~~/resource-lists/list%5b1%5d</resource-list></service></rls-services>`;

function h(alg: Alg, s: string): string {
  return createHash(alg === 'MD5' ? 'md5' : 'sha256').update(s).digest('hex');
}

function challengeParams(header: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of header.matchAll(/([a-z]+)=(?:"([^"]*)"|([^\s,]+))/gi)) out[(m[1] as string).toLowerCase()] = m[2] ?? m[3] ?? '';
  return out;
}

function list(v: string | string[] | undefined): string[] {
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

/** The Authorization value for a challenge, RFC 7616 §3.4.1 with qop=auth. */
function answer(challenge: string, user: string, password: string, method: string, uri: string, nc = 1): string {
  const p = challengeParams(challenge);
  const alg = (p['algorithm'] ?? 'MD5') as Alg;
  const ncs = nc.toString(16).padStart(8, '0');
  const cnonce = 'c0ffee';
  const ha1 = h(alg, `${user}:${p['realm']}:${password}`);
  const resp = h(alg, `${ha1}:${p['nonce']}:${ncs}:${cnonce}:auth:${h(alg, `${method}:${uri}`)}`);
  return `Digest username="${user}", realm="${p['realm']}", nonce="${p['nonce']}", uri="${uri}", algorithm=${alg}, qop=auth, nc=${ncs}, cnonce="${cnonce}", response="${resp}"`;
}

/** Encodes a node selector for a URI path: "[", "]", '"' and friends escaped, "/" kept. */
function sel(selector: string): string {
  return selector.split('/').map((s) => encodeURIComponent(s).replace(/%3A/g, ':').replace(/%40/g, '@')).join('/');
}

function capture(level: 'debug' | 'info'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = pino({ level }, { write: (s: string) => { lines.push(JSON.parse(s) as Record<string, unknown>); } });
  return { log, lines };
}

describe('XCAP server over HTTP', () => {
  let store: Store;
  let users: UserDirectory;
  let documents: XcapDocuments;
  let xcap: XcapServer;
  const changes: string[] = [];

  before(async () => {
    store = Store.open('memory://', silentLogger);
    users = new UserDirectory(store.collection<UserRecord>('user'));
    await users.add(ALICE, 'secret');
    await users.add(BOB, 'hunter2');
    await users.add(RLS, 'rls-pass');
    documents = await XcapDocuments.open({ collection: store.collection<StoredXcapDoc>('xcap'), log: silentLogger, maxDocumentBytes: MAX });
    documents.onChange((a, o, n) => changes.push(`${a}/${o}/${n}`));
    xcap = new XcapServer({ root: '/xcap-root', host: '127.0.0.1', port: 0, documents, users, log: silentLogger, maxDocumentBytes: MAX, admins: [RLS] });
    await xcap.start();
  });
  after(async () => {
    await xcap.stop();
    await store.close();
  });

  /** A request, answering one digest challenge with the chosen algorithm when credentials are given. */
  async function call(method: string, path: string, o: {
    user?: string; password?: string; alg?: Alg; body?: string | (() => Readable); type?: string; headers?: Record<string, string>; base?: string;
  } = {}): Promise<Reply> {
    const url = `${o.base ?? xcap.url}/${path}`;
    const u = new URL(url);
    const headers: Record<string, string> = { ...(o.type ? { 'content-type': o.type } : {}), ...o.headers };
    const body = (): string | Readable | undefined => (typeof o.body === 'function' ? o.body() : o.body);
    let res = await request(url, { method: method as 'GET', headers, body: body() });
    if (res.statusCode === 401 && o.user !== undefined) {
      const challenges = list(res.headers['www-authenticate']);
      const ch = challenges.find((c) => challengeParams(c)['algorithm'] === (o.alg ?? 'MD5'));
      assert.ok(ch, `no ${o.alg ?? 'MD5'} challenge in ${JSON.stringify(challenges)}`);
      await res.body.dump();
      res = await request(url, { method: method as 'GET', headers: { ...headers, authorization: answer(ch, o.user, o.password ?? '', method, u.pathname + u.search) }, body: body() });
    }
    return { status: res.statusCode, headers: res.headers, text: await res.body.text() };
  }
  const alice = { user: 'alice', password: 'secret' };
  const bob = { user: 'bob', password: 'hunter2' };
  const aliceDoc = (auid: string, name = 'index'): string => `${auid}/users/${ALICE}/${name}`;

  test('no credentials: 401 with SHA-256 and MD5 challenges in the XUI\'s realm', async () => {
    const r = await call('GET', aliceDoc('resource-lists'));
    assert.equal(r.status, 401);
    const chs = list(r.headers['www-authenticate']).map(challengeParams);
    assert.deepEqual(chs.map((c) => c['algorithm']), ['SHA-256', 'MD5']);
    for (const c of chs) {
      assert.equal(c['realm'], 'example.test');
      assert.equal(c['qop'], 'auth');
      assert.equal(c['stale'], undefined);
    }
  });

  test('digest with MD5 and with SHA-256: 401, then the PUT (201) and GET (200) go through', async () => {
    const put = await call('PUT', aliceDoc('resource-lists'), { ...alice, alg: 'MD5', body: LISTS, type: CT.RESOURCE_LISTS });
    assert.equal(put.status, 201);
    const etag = put.headers['etag'];
    assert.match(String(etag), /^"[A-Za-z0-9_-]+"$/);
    const get = await call('GET', aliceDoc('resource-lists'), { ...alice, alg: 'SHA-256' });
    assert.equal(get.status, 200);
    assert.equal(get.text, LISTS);
    assert.equal(get.headers['content-type'], CT.RESOURCE_LISTS);
    assert.equal(get.headers['etag'], etag);
    assert.ok(changes.includes(`resource-lists/${ALICE}/index`), 'onChange fired after the PUT');
  });

  test('wrong password, replayed nonce count, and a digest for another URI are refused', async () => {
    assert.equal((await call('GET', aliceDoc('resource-lists'), { user: 'alice', password: 'nope' })).status, 401);
    const first = await request(`${xcap.url}/${aliceDoc('resource-lists')}`);
    await first.body.dump();
    const ch = list(first.headers['www-authenticate'])[1] as string;
    const path = new URL(`${xcap.url}/${aliceDoc('resource-lists')}`).pathname;
    const auth = answer(ch, 'alice', 'secret', 'GET', path);
    const ok = await request(`${xcap.url}/${aliceDoc('resource-lists')}`, { headers: { authorization: auth } });
    await ok.body.dump();
    assert.equal(ok.statusCode, 200);
    const replay = await request(`${xcap.url}/${aliceDoc('resource-lists')}`, { headers: { authorization: auth } });
    await replay.body.dump();
    assert.equal(replay.statusCode, 401, 'same nonce count again is a replay');
    const other = await request(`${xcap.url}/${aliceDoc('pres-rules')}`, { headers: { authorization: answer(ch, 'alice', 'secret', 'GET', path, 2) } });
    await other.body.dump();
    assert.equal(other.statusCode, 401, 'digest-uri must be the request-target');
  });

  test('an expired nonce with a correct digest is answered with stale=true; the fresh nonce works', async () => {
    const quick = new XcapServer({ root: '/xcap-root', host: '127.0.0.1', port: 0, documents, users, log: silentLogger, maxDocumentBytes: MAX, nonceLifetimeMs: 50 });
    await quick.start();
    try {
      const url = `${quick.url}/${aliceDoc('resource-lists')}`;
      const path = new URL(url).pathname;
      const first = await request(url);
      await first.body.dump();
      const ch = list(first.headers['www-authenticate'])[0] as string;
      await new Promise((r) => setTimeout(r, 120));
      const late = await request(url, { headers: { authorization: answer(ch, 'alice', 'secret', 'GET', path) } });
      await late.body.dump();
      assert.equal(late.statusCode, 401);
      const fresh = list(late.headers['www-authenticate']);
      assert.ok(fresh.every((c) => challengeParams(c)['stale'] === 'true'), JSON.stringify(fresh));
      const again = await request(url, { headers: { authorization: answer(fresh[0] as string, 'alice', 'secret', 'GET', path) } });
      await again.body.dump();
      assert.equal(again.statusCode, 200);
    } finally {
      await quick.stop();
    }
  });

  test("another user's documents are 403, for reading and for writing", async () => {
    assert.equal((await call('GET', aliceDoc('resource-lists'), bob)).status, 403);
    assert.equal((await call('PUT', aliceDoc('resource-lists', 'x'), { ...bob, body: LISTS, type: CT.RESOURCE_LISTS })).status, 403);
    // Alice's credentials do not work in another realm's tree either.
    assert.equal((await call('GET', 'resource-lists/users/sip:alice@other.test/index', alice)).status, 401);
  });

  test('path traversal and smuggled separators: 404 / 400 before anything else', async () => {
    const client = new Client(new URL(xcap.url).origin);
    try {
      const raw = async (p: string): Promise<number> => {
        const r = await client.request({ method: 'GET', path: p });
        await r.body.dump();
        return r.statusCode;
      };
      assert.equal(await raw(`/xcap-root/resource-lists/users/${ALICE}/../../../../etc/passwd`), 404);
      assert.equal(await raw('/xcap-root/resource-lists/users/%2e%2e/index'), 404);
      assert.equal(await raw(`/xcap-root/resource-lists/users/${ALICE}/..`), 404);
      assert.equal(await raw('/xcap-root/resource-lists/users//index'), 404);
      assert.equal(await raw('/xcap-root/../etc/passwd'), 404);
      assert.equal(await raw('/etc/passwd'), 404);
      assert.equal(await raw(`/xcap-root/resource-lists/users/sip:bob@example.test%2F..%2F${ALICE}/index`), 400);
      assert.equal(await raw(`/xcap-root/resource-lists/users/${ALICE}/index%00`), 400);
      assert.equal(await raw(`/xcap-root/resource-lists/users/${ALICE}/index/~~/resource-lists%5b`), 401, 'well-formed enough to need credentials');
    } finally {
      await client.close();
    }
  });

  test('oversized bodies are 413, declared or chunked', async () => {
    const big = `<resource-lists xmlns="${RL_NS}">${'<list/>'.repeat(MAX / 7 + 10)}</resource-lists>`;
    assert.ok(Buffer.byteLength(big) > MAX);
    assert.equal((await call('PUT', aliceDoc('resource-lists', 'big'), { ...alice, body: big, type: CT.RESOURCE_LISTS })).status, 413);
    const chunked = (): Readable => Readable.from([big.slice(0, 2000), big.slice(2000, 4000), big.slice(4000)]);
    assert.equal((await call('PUT', aliceDoc('resource-lists', 'big'), { ...alice, body: chunked, type: CT.RESOURCE_LISTS })).status, 413);
    assert.equal((await call('GET', aliceDoc('resource-lists', 'big'), alice)).status, 404);
  });

  test('conditional requests: If-Match mismatch and If-None-Match: * on an existing document are 412; a matching If-None-Match GET is 304', async () => {
    const cur = await call('GET', aliceDoc('resource-lists'), alice);
    const etag = String(cur.headers['etag']);
    assert.equal((await call('PUT', aliceDoc('resource-lists'), { ...alice, body: LISTS, type: CT.RESOURCE_LISTS, headers: { 'if-match': '"not-it"' } })).status, 412);
    assert.equal((await call('PUT', aliceDoc('resource-lists'), { ...alice, body: LISTS, type: CT.RESOURCE_LISTS, headers: { 'if-none-match': '*' } })).status, 412);
    assert.equal((await call('DELETE', aliceDoc('resource-lists'), { ...alice, headers: { 'if-match': '"not-it"' } })).status, 412);
    const nm = await call('GET', aliceDoc('resource-lists'), { ...alice, headers: { 'if-none-match': etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.headers['etag'], etag);
    const ok = await call('PUT', aliceDoc('resource-lists'), { ...alice, body: LISTS, type: CT.RESOURCE_LISTS, headers: { 'if-match': etag } });
    assert.equal(ok.status, 200);
    assert.notEqual(ok.headers['etag'], etag);
  });

  test('element selectors over HTTP: by position and by attribute; element PUT and DELETE', async () => {
    const base = `${aliceDoc('resource-lists')}/~~/`;
    const byPos = await call('GET', base + sel('resource-lists/list[1]/entry[2]'), alice);
    assert.equal(byPos.status, 200);
    assert.equal(byPos.headers['content-type'], CT.XCAP_EL);
    assert.equal(byPos.text, `<entry xmlns="${RL_NS}" uri="sip:carol@example.test"/>`);
    const byAttr = await call('GET', base + sel('resource-lists/list[@name="friends"]/entry[@uri="sip:bob@example.test"]/@uri'), alice);
    assert.equal(byAttr.status, 200);
    assert.equal(byAttr.headers['content-type'], CT.XCAP_ATT);
    assert.equal(byAttr.text, 'sip:bob@example.test');
    const prefixed = await call('GET', base + sel('x:resource-lists/x:list[1]') + `?xmlns(x=${RL_NS})`, alice);
    assert.equal(prefixed.status, 200);
    const put = await call('PUT', base + sel('resource-lists/list[1]/entry[@uri="sip:dave@example.test"]'), { ...alice, body: '<entry uri="sip:dave@example.test"/>', type: CT.XCAP_EL });
    assert.equal(put.status, 201);
    assert.equal((await call('GET', base + sel('resource-lists/list[1]/entry[3]/@uri'), alice)).text, 'sip:dave@example.test');
    const wrongType = await call('PUT', base + sel('resource-lists/list[1]/entry[@uri="sip:erin@example.test"]'), { ...alice, body: '<entry uri="sip:erin@example.test"/>', type: 'text/xml' });
    assert.equal(wrongType.status, 415);
    const del = await call('DELETE', base + sel('resource-lists/list[1]/entry[@uri="sip:dave@example.test"]'), alice);
    assert.equal(del.status, 200);
    assert.ok(del.headers['etag']);
    assert.equal((await call('GET', base + sel('resource-lists/list[1]/entry[3]'), alice)).status, 404);
    const frag = await call('PUT', base + sel('resource-lists/list[1]/entry[@uri="sip:f@example.test"]'), { ...alice, body: '<entry/><entry/>', type: CT.XCAP_EL });
    assert.equal(frag.status, 409);
    assert.equal(frag.headers['content-type'], CT.XCAP_ERROR);
    assert.match(frag.text, /<not-xml-frag/);
  });

  test('409 with xcap-error <uniqueness-failure> for one rls-services service URI in two users\' documents', async () => {
    assert.equal((await call('PUT', aliceDoc('rls-services'), { ...alice, body: rls('sip:buddies@example.test'), type: CT.RLS_SERVICES })).status, 201);
    const dup = await call('PUT', `rls-services/users/${BOB}/index`, { ...bob, alg: 'SHA-256', body: rls('sip:buddies@example.test'), type: CT.RLS_SERVICES });
    assert.equal(dup.status, 409);
    assert.equal(dup.headers['content-type'], CT.XCAP_ERROR);
    assert.match(dup.text, /^<\?xml version="1.0" encoding="UTF-8"\?><xcap-error xmlns="urn:ietf:params:xml:ns:xcap-error"><uniqueness-failure><exists field="rls-services\/service\[1\]\/@uri"><alt-value>sip:buddies-2@example.test<\/alt-value><\/exists><\/uniqueness-failure><\/xcap-error>$/);
    assert.equal((await call('PUT', `rls-services/users/${BOB}/index`, { ...bob, body: rls('sip:buddies-2@example.test'), type: CT.RLS_SERVICES })).status, 201);
  });

  test('global documents: xcap-caps for any user, the rls-services index for admins only, no writes; 405, 415, not-utf-8', async () => {
    const caps = await call('GET', 'xcap-caps/global/index', bob);
    assert.equal(caps.status, 200);
    assert.equal(caps.headers['content-type'], CT.XCAP_CAPS);
    assert.match(caps.text, /<auid>rls-services<\/auid>/);
    assert.equal((await call('GET', 'rls-services/global/index', bob)).status, 403);
    const idx = await call('GET', 'rls-services/global/index', { user: 'rls', password: 'rls-pass' });
    assert.equal(idx.status, 200);
    assert.match(idx.text, /sip:buddies@example\.test.*sip:buddies-2@example\.test/);
    assert.equal((await call('PUT', 'rls-services/global/index', { ...bob, body: rls('sip:z@example.test'), type: CT.RLS_SERVICES })).status, 403);
    const post = await call('POST', aliceDoc('resource-lists'), { body: LISTS, type: CT.RESOURCE_LISTS });
    assert.equal(post.status, 405);
    assert.equal(post.headers['allow'], 'GET, PUT, DELETE');
    assert.equal((await call('PUT', aliceDoc('resource-lists', 'x'), { ...alice, body: LISTS, type: 'application/xml' })).status, 415);
    assert.equal((await call('GET', aliceDoc('resource-lists', 'missing'), alice)).status, 404);
    const latin1 = await call('PUT', aliceDoc('resource-lists', 'x'), { ...alice, body: () => Readable.from([Buffer.from(`<resource-lists xmlns="${RL_NS}"><list name="caf\xe9"/></resource-lists>`, 'latin1')]), type: CT.RESOURCE_LISTS });
    assert.equal(latin1.status, 409);
    assert.match(latin1.text, /<not-utf-8\/>/);
  });

  describe('XcapClient against the embedded server', () => {
    let server: XcapServer;
    let serverLog: ReturnType<typeof capture>;
    const path = `resource-lists/users/${ALICE}/index`;

    before(async () => {
      serverLog = capture('debug');
      server = new XcapServer({ root: '/xcap-root', host: '127.0.0.1', port: 0, documents, users, log: serverLog.log, maxDocumentBytes: MAX });
      await server.start();
    });
    after(() => server.stop());

    test('caches with the ETag and revalidates: the second fetch is a 304 served from the cache', async () => {
      const client = new XcapClient({ baseUrl: server.url, username: 'alice', password: 'secret', timeoutMs: 2000, log: silentLogger });
      try {
        const a = await client.fetch(path);
        assert.ok(a);
        assert.match(a.body, /<resource-lists/);
        const b = await client.fetch(path);
        assert.deepEqual(b, a);
        const statuses = serverLog.lines.filter((l) => l['msg'] === 'XCAP request').map((l) => l['status']);
        assert.deepEqual(statuses, [200, 304]);
        assert.equal(await client.fetch(`resource-lists/users/${ALICE}/nope`), undefined, '404 is "no such document"');
        await documents.put(parseXcapPath(`/${path}/~~/resource-lists/list%5b1%5d/@name`), 'pals', CT.XCAP_ATT);
        const c = await client.fetch(path);
        assert.notEqual(c?.etag, a.etag);
        assert.match(c?.body ?? '', /name="pals"/);
      } finally {
        await client.close();
      }
    });

    test('poll calls onChange when the ETag changes', async () => {
      const client = new XcapClient({ baseUrl: server.url, username: 'alice', password: 'secret', timeoutMs: 2000, log: silentLogger });
      const seen: (XcapDocument | undefined)[] = [];
      const poll = client.poll([path], 20, (_p, d) => seen.push(d));
      try {
        const wait = async (n: number): Promise<void> => {
          for (let i = 0; i < 100 && seen.length < n; i++) await new Promise((r) => setTimeout(r, 10));
        };
        await wait(1);
        assert.equal(seen.length, 1);
        await new Promise((r) => setTimeout(r, 60));
        assert.equal(seen.length, 1, 'no change, no call');
        await call('PUT', aliceDoc('resource-lists'), { ...alice, body: LISTS, type: CT.RESOURCE_LISTS });
        await wait(2);
        assert.equal(seen.length, 2);
        assert.notEqual(seen[1]?.etag, seen[0]?.etag);
      } finally {
        poll.stop();
        await client.close();
      }
    });

    test('remoteRulesSource: the index document over HTTP, and a change found by polling', async () => {
      const client = new XcapClient({ baseUrl: server.url, username: 'alice', password: 'secret', timeoutMs: 2000, log: silentLogger });
      const src = remoteRulesSource(client, 20);
      const heard: string[] = [];
      src.onChange((p) => heard.push(p));
      const rules = '<cp:ruleset xmlns:cp="urn:ietf:params:xml:ns:common-policy"><cp:rule id="a"/></cp:ruleset>';
      try {
        assert.deepEqual(await src.load(ALICE), []);
        await new Promise((r) => setTimeout(r, 60));
        assert.deepEqual(heard, [], 'nothing changed since the load');
        assert.equal((await call('PUT', aliceDoc('pres-rules'), { ...alice, body: rules, type: CT.AUTH_POLICY })).status, 201);
        for (let i = 0; i < 100 && heard.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
        assert.deepEqual(heard, [ALICE]);
        assert.deepEqual(await src.load(ALICE), [rules]);
      } finally {
        src.stop();
        await client.close();
      }
    });

    test('server down: the last good document and exactly one warning; no last good document: XcapUnavailableError', async () => {
      const clientLog = capture('info');
      const client = new XcapClient({ baseUrl: server.url, username: 'alice', password: 'secret', timeoutMs: 1000, log: clientLog.log });
      try {
        const good = await client.fetch(path);
        assert.ok(good);
        await server.stop();
        for (let i = 0; i < 3; i++) assert.deepEqual(await client.fetch(path), good);
        await assert.rejects(client.fetch(`pres-rules/users/${ALICE}/index`), XcapUnavailableError);
        const warnings = clientLog.lines.filter((l) => l['level'] === 40);
        assert.equal(warnings.length, 1, JSON.stringify(warnings));
        assert.match(String(warnings[0]?.['msg']), /unavailable/);
      } finally {
        await client.close();
      }
    });
  });
});
