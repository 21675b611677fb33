// Digest authentication (RFC 3261 §22, RFC 8760) over real sockets: challenge and retry, MD5 and
// SHA-256, wrong passwords, replayed nonce counts, someone else's PUBLISH, trusted peers.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, digestAuthorization, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';

describe('digest authentication', () => {
  let h: TestHerald;
  let ua: TestUA;
  before(async () => {
    h = await startTestHerald({ auth: { enabled: true } });
    await h.herald.users.add(ALICE, 'alice-secret');
    await h.herald.users.add(BOB, 'bob-secret');
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  const pub = (who: string, from: string, extra: Record<string, string> = {}, cseq = 1, callId = rnd()) =>
    ua.request('PUBLISH', who, { from, callId, cseq, headers: { Event: 'presence', Expires: '60', ...extra }, body: pidf(who) });

  type Challenge = { algorithm?: string; nonce: string; realm: string };
  const challengesOf = (r: { raw: { headers: Record<string, unknown> } }): Challenge[] => (r.raw.headers['www-authenticate'] as Challenge[] | undefined) ?? [];

  test('a PUBLISH without credentials gets one challenge, MD5 (what deployed phones answer); MD5 and SHA-256 answers are both accepted', async () => {
    for (const alg of ['MD5', 'SHA-256']) {
      const callId = rnd();
      const r1 = await pub(ALICE, ALICE, {}, 1, callId);
      assert.equal(r1.status, 401);
      const offered = challengesOf(r1);
      assert.equal(offered.length, 1, JSON.stringify(offered));
      assert.equal(offered[0]!.algorithm, 'MD5');
      const challenge = `Digest realm=${offered[0]!.realm}, nonce=${offered[0]!.nonce}, algorithm=${alg}`;
      const r2 = await pub(ALICE, ALICE, { Authorization: digestAuthorization(challenge, 'PUBLISH', ALICE, 'alice', 'alice-secret') }, 2, callId);
      assert.equal(r2.status, 200, `${alg}: ${r2.reason}`);
    }
  });

  test('a client whose credentials use SHA-256 is challenged in SHA-256', async () => {
    const forged = digestAuthorization('Digest realm="example.test", nonce="AAAA", algorithm=SHA-256', 'PUBLISH', ALICE, 'alice', 'alice-secret');
    const r = await pub(ALICE, ALICE, { Authorization: forged });
    assert.equal(r.status, 401);
    assert.deepEqual(challengesOf(r).map((c) => c.algorithm), ['SHA-256']);
  });

  async function challenge(): Promise<string> {
    const r = await pub(ALICE, ALICE);
    const c = (r.raw.headers['www-authenticate'] as { nonce: string; realm: string }[])[0]!;
    return `Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=SHA-256`;
  }

  test('a wrong password is challenged again', async () => {
    const r = await pub(ALICE, ALICE, { Authorization: digestAuthorization(await challenge(), 'PUBLISH', ALICE, 'alice', 'wrong') });
    assert.equal(r.status, 401);
  });

  test('a replayed nonce count is refused (401 stale=true), a higher one accepted', async () => {
    const c = await challenge();
    const auth1 = digestAuthorization(c, 'PUBLISH', ALICE, 'alice', 'alice-secret', 1);
    assert.equal((await pub(ALICE, ALICE, { Authorization: auth1 })).status, 200);
    const replay = await pub(ALICE, ALICE, { Authorization: auth1 });
    assert.equal(replay.status, 401);
    assert.match(JSON.stringify(replay.raw.headers['www-authenticate']), /stale/);
    const auth2 = digestAuthorization(c, 'PUBLISH', ALICE, 'alice', 'alice-secret', 2);
    assert.equal((await pub(ALICE, ALICE, { Authorization: auth2 })).status, 200);
  });

  test('a nonce Herald did not issue is not accepted', async () => {
    const forged = digestAuthorization('Digest realm="example.test", nonce="AAAA", algorithm=MD5', 'PUBLISH', ALICE, 'alice', 'alice-secret');
    assert.equal((await pub(ALICE, ALICE, { Authorization: forged })).status, 401);
  });

  test("bob, authenticated, publishing alice's presence: 403", async () => {
    const r1 = await pub(ALICE, BOB);
    assert.equal(r1.status, 401);
    const c = (r1.raw.headers['www-authenticate'] as { nonce: string; realm: string }[])[0]!;
    const r2 = await pub(ALICE, BOB, { Authorization: digestAuthorization(`Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=SHA-256`, 'PUBLISH', ALICE, 'bob', 'bob-secret') });
    assert.equal(r2.status, 403);
  });

  test('a user added while Herald runs can authenticate at once; a removed one cannot', async () => {
    const carol = 'sip:carol@example.test';
    const c1 = await challenge();
    const r0 = await pub(carol, carol, { Authorization: digestAuthorization(c1, 'PUBLISH', carol, 'carol', 'pw') });
    assert.equal(r0.status, 401);
    await h.herald.users.add(carol, 'pw');
    const r1 = await pub(carol, carol, { Authorization: digestAuthorization(await challenge(), 'PUBLISH', carol, 'carol', 'pw') });
    assert.equal(r1.status, 200);
    await h.herald.users.remove(carol);
    const r2 = await pub(carol, carol, { Authorization: digestAuthorization(await challenge(), 'PUBLISH', carol, 'carol', 'pw') });
    assert.equal(r2.status, 401);
  });

  test('SUBSCRIBE is challenged; the watcher is the authenticated identity', async () => {
    const callId = rnd();
    const fromTag = rnd();
    const r1 = await ua.request('SUBSCRIBE', ALICE, { from: BOB, fromTag, callId, headers: { Event: 'presence', Expires: '60' } });
    assert.equal(r1.status, 401);
    const c = (r1.raw.headers['www-authenticate'] as { nonce: string; realm: string }[])[0]!;
    const r2 = await ua.request('SUBSCRIBE', ALICE, {
      from: BOB,
      fromTag,
      callId,
      cseq: 2,
      headers: { Event: 'presence', Expires: '60', Authorization: digestAuthorization(`Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=SHA-256`, 'SUBSCRIBE', ALICE, 'bob', 'bob-secret') },
    });
    assert.equal(r2.status, 200);
    assert.ok(h.herald.notifier.subscriptionsOf(ALICE).some((s) => s.callId === callId && s.watcher === BOB));
  });

  test('a watcher from another domain is not challenged and counts as anonymous', async () => {
    const callId = rnd();
    const r = await ua.request('SUBSCRIBE', ALICE, { from: 'sip:eve@elsewhere.test', callId, headers: { Event: 'presence', Expires: '60' } });
    assert.equal(r.status, 200);
    assert.ok(h.herald.notifier.subscriptionsOf(ALICE).some((s) => s.callId === callId && s.watcher === 'sip:anonymous@anonymous.invalid'));
  });

  test('a trusted peer is not challenged; its P-Asserted-Identity is believed', async () => {
    const t = await startTestHerald({ auth: { enabled: true, trusted_peers: ['127.0.0.0/8'] } });
    const u = await TestUA.open('udp', '127.0.0.1', t.port('udp'));
    try {
      const r = await u.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '60' }, body: pidf(ALICE) });
      assert.equal(r.status, 200);
      const callId = rnd();
      const s = await u.request('SUBSCRIBE', ALICE, { from: 'sip:x@example.test', callId, headers: { Event: 'presence', 'P-Asserted-Identity': `<${BOB}>` } });
      assert.equal(s.status, 200);
      assert.ok(t.herald.notifier.subscriptionsOf(ALICE).some((x) => x.callId === callId && x.watcher === BOB));
    } finally {
      u.close();
      await t.stop();
    }
  });

  test('a peer trusted by its TLS certificate name (a federated proxy): not challenged, its asserted identity believed; Record-Route over TLS honoured', async () => {
    const t = await startTestHerald({
      sip: { listen: ['udp:127.0.0.1:0', 'tls:127.0.0.1:0'], tls_cert: fixture('tls-cert.pem'), tls_key: fixture('tls-key.pem'), tls_ca: fixture('ca-cert.pem') },
      auth: { enabled: true, trusted_tls_names: ['proxy.remote.test'] },
    });
    const cert = { cert: readFileSync(fixture('peer-cert.pem')), key: readFileSync(fixture('peer-key.pem')) };
    const proxy = await TestUA.open('tls', '127.0.0.1', t.port('tls'), cert);
    const stranger = await TestUA.open('tls', '127.0.0.1', t.port('tls'));
    try {
      const callId = rnd();
      const s = await proxy.request('SUBSCRIBE', ALICE, {
        from: 'sip:carol@remote.test',
        callId,
        headers: { Event: 'presence', Expires: '60', 'P-Asserted-Identity': '<sip:carol@remote.test>', 'Record-Route': `<sip:proxy.remote.test@127.0.0.1:${proxy.localPort};transport=tls;lr>` },
      });
      assert.equal(s.status, 200);
      assert.ok(t.herald.notifier.subscriptionsOf(ALICE).some((x) => x.callId === callId && x.watcher === 'sip:carol@remote.test'));
      assert.match(JSON.stringify(s.raw.headers['record-route']), /proxy\.remote\.test/);
      const n = await proxy.nextRequest((m) => m.method === 'NOTIFY' && m.callId === callId);
      assert.match(JSON.stringify(n.raw.headers.route), /proxy\.remote\.test/, 'the NOTIFY follows the route set over the TLS connection');
      // Without a certificate the same request is an unvouched one: a local From is challenged.
      const r = await stranger.request('SUBSCRIBE', ALICE, { from: BOB, headers: { Event: 'presence', Expires: '60', 'P-Asserted-Identity': `<${BOB}>` } });
      assert.equal(r.status, 401);
    } finally {
      proxy.close();
      stranger.close();
      await t.stop();
    }
  });
});

describe('auth.challenge = "each" (RFC 8760 §2.4)', () => {
  test('one WWW-Authenticate per algorithm, in the configured order', async () => {
    const h = await startTestHerald({ auth: { enabled: true, algorithms: ['SHA-256', 'MD5'], challenge: 'each' } });
    const ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
    try {
      const r = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '60' }, body: pidf(ALICE) });
      assert.equal(r.status, 401);
      assert.deepEqual((r.raw.headers['www-authenticate'] as { algorithm?: string }[]).map((c) => c.algorithm), ['SHA-256', 'MD5']);
    } finally {
      ua.close();
      await h.stop();
    }
  });
});
