// Digest authentication under attack, over real sockets (issue 16 #3, #5, #6, #7): one account cannot
// lock another out of the nonce-count table, brute force is throttled per address (SIP and XCAP), the
// digest uri must name the Request-URI's resource, a PIDF entity naming another user is refused, and
// each failure writes the fixed `auth failure: src= aor= reason=` line.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { TestUA, digestAuthorization, pidf, rnd, type Msg } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';
import { xcap } from '../support/xcap.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';

/** A logger whose warn lines the test can read. */
function capturingLog(): { log: pino.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString().split('\n')) if (l) lines.push((JSON.parse(l) as { msg: string }).msg);
      cb();
    },
  });
  return { log: pino({ level: 'warn' }, stream), lines };
}

const failures = (lines: string[]): string[] => lines.filter((l) => l.startsWith('auth failure:'));

/** PUBLISH, challenged, answered with a digest for `digestUri` (default the Request-URI) and `password`. */
async function publishAs(ua: TestUA, user: string, password: string, o: { digestUri?: string; body?: string } = {}): Promise<Msg> {
  const aor = `sip:${user}@example.test`;
  const callId = rnd();
  const fromTag = rnd();
  const base = { from: aor, callId, fromTag, headers: { Event: 'presence', Expires: '60' }, body: o.body ?? pidf(aor) };
  const r1 = await ua.request('PUBLISH', aor, { ...base, cseq: 1 });
  if (r1.status !== 401) return r1;
  const c = (r1.raw.headers['www-authenticate'] as { nonce: string; realm: string; algorithm?: string }[])[0]!;
  const challenge = `Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=${c.algorithm ?? 'MD5'}`;
  const auth = digestAuthorization(challenge, 'PUBLISH', o.digestUri ?? aor, user, password);
  return ua.request('PUBLISH', aor, { ...base, cseq: 2, headers: { ...base.headers, Authorization: auth } });
}

describe('digest: replay table, digest uri, PIDF entity', () => {
  let h: TestHerald;
  let ua: TestUA;
  const cap = capturingLog();
  before(async () => {
    // alice's 300 logins are 300 initial PUBLISHes: each a publication of its own.
    h = await startTestHerald({ auth: { enabled: true, replay_nonces: 200, replay_nonces_per_identity: 8 }, limits: { max_publications_per_presentity: 1000 } }, { log: cap.log });
    await h.herald.users.add(ALICE, 'alice-secret');
    await h.herald.users.add(BOB, 'bob-secret');
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  test('bob logs in after alice exhausted the nonce-count table (SIP)', async () => {
    for (let i = 0; i < 300; i++) assert.equal((await publishAs(ua, 'alice', 'alice-secret')).status, 200);
    assert.equal((await publishAs(ua, 'bob', 'bob-secret')).status, 200);
    assert.equal((await publishAs(ua, 'alice', 'alice-secret')).status, 200, 'alice herself still logs in');
  });

  test('bob logs in after alice exhausted the nonce-count table (XCAP)', async () => {
    const path = (u: string) => `pres-rules/users/sip:${u}@example.test/index`;
    for (let i = 0; i < 300; i++) {
      const r = await xcap('GET', h.xcapUrl(), path('alice'), { username: 'alice', password: 'alice-secret' });
      assert.ok(r.status === 200 || r.status === 404, `alice: ${r.status}`);
    }
    const r = await xcap('GET', h.xcapUrl(), path('bob'), { username: 'bob', password: 'bob-secret' });
    assert.ok(r.status === 200 || r.status === 404, `bob: ${r.status}`);
  });

  test('a digest computed for another uri is refused; equivalent forms of the Request-URI are accepted', async () => {
    cap.lines.length = 0;
    const r = await publishAs(ua, 'alice', 'alice-secret', { digestUri: 'sip:someother@example.test' });
    assert.equal(r.status, 401);
    assert.deepEqual(failures(cap.lines), ['auth failure: src=127.0.0.1 aor=sip:alice@example.test reason=uri-mismatch']);
    for (const form of ['sip:alice@EXAMPLE.test', 'sip:%61lice@example.test']) {
      assert.equal((await publishAs(ua, 'alice', 'alice-secret', { digestUri: form })).status, 200, form);
    }
    for (const other of ['sip:alice@example.test:5060', 'sip:Alice@example.test', 'sips:alice@example.test']) {
      assert.equal((await publishAs(ua, 'alice', 'alice-secret', { digestUri: other })).status, 401, other);
    }
  });

  test("a PIDF entity naming another user is refused with 400; the presentity's pres: URI is accepted", async () => {
    cap.lines.length = 0;
    const r = await publishAs(ua, 'alice', 'alice-secret', { body: pidf(BOB) });
    assert.equal(r.status, 400);
    assert.match(r.reason, /Entity/);
    assert.deepEqual(failures(cap.lines), ['auth failure: src=127.0.0.1 aor=sip:alice@example.test reason=foreign-publish']);
    assert.equal((await publishAs(ua, 'alice', 'alice-secret', { body: pidf('pres:alice@example.test') })).status, 200);
  });
});

describe('digest: brute-force throttle', () => {
  let h: TestHerald;
  let ua: TestUA;
  const cap = capturingLog();
  before(async () => {
    h = await startTestHerald({ auth: { enabled: true, throttle_source_failures: 5, throttle_lockout: 60 } }, { log: cap.log });
    await h.herald.users.add(ALICE, 'alice-secret');
    ua = await TestUA.open('udp', '127.0.0.1', h.port('udp'));
  });
  after(async () => {
    ua.close();
    await h.stop();
  });

  test('SIP: after 5 wrong passwords from one address the right one is refused with 403 and Retry-After', async () => {
    for (let i = 0; i < 5; i++) assert.equal((await publishAs(ua, 'alice', `guess-${i}`)).status, 401);
    const r = await publishAs(ua, 'alice', 'alice-secret');
    assert.equal(r.status, 403);
    assert.ok(Number(r.h('retry-after')) > 0);
    assert.deepEqual(failures(cap.lines), [
      ...Array.from({ length: 5 }, () => 'auth failure: src=127.0.0.1 aor=sip:alice@example.test reason=wrong-password'),
      'auth failure: src=127.0.0.1 aor=sip:alice@example.test reason=throttled',
    ]);
  });

  test('XCAP: the same address is throttled there too (429 with Retry-After), unknown users count', async () => {
    const r = await xcap('GET', h.xcapUrl(), 'pres-rules/users/sip:alice@example.test/index', { username: 'alice', password: 'alice-secret' });
    assert.equal(r.status, 429);
    assert.ok(failures(cap.lines).at(-1)!.endsWith('reason=throttled'));
  });
});

describe('digest: XCAP brute force alone', () => {
  let h: TestHerald;
  before(async () => {
    h = await startTestHerald({ auth: { enabled: true, throttle_source_failures: 5 } });
    await h.herald.users.add(ALICE, 'alice-secret');
  });
  after(() => h.stop());

  test('5 wrong XCAP passwords, then the right one gets 429', async () => {
    const path = 'pres-rules/users/sip:alice@example.test/index';
    for (let i = 0; i < 5; i++) assert.equal((await xcap('GET', h.xcapUrl(), path, { username: 'alice', password: `guess-${i}` })).status, 401);
    assert.equal((await xcap('GET', h.xcapUrl(), path, { username: 'alice', password: 'alice-secret' })).status, 429);
  });
});
