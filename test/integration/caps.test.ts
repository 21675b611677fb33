// What one source address can make Herald hold (issue 16, [limits]): publications per source address
// across presentities (limits.max_publications_per_source, trusted peers exempt), and subscriptions
// and publications counted against the address that last refreshed them, not the one that made them.
// Sources are distinct loopback addresses (127.0.0.1, .2, .3) over real UDP sockets.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { TestUA, pidf, rnd } from '../support/ua.js';
import { startTestHerald, type TestHerald } from '../support/herald.js';

const A = '127.0.0.1';
const B = '127.0.0.2';
const TRUSTED = '127.0.0.3';

describe('limits per source address', () => {
  let h: TestHerald;
  const uas: TestUA[] = [];
  const ua = async (local: string): Promise<TestUA> => {
    const u = await TestUA.open('udp', '127.0.0.1', h.port('udp'), undefined, local);
    uas.push(u);
    return u;
  };

  before(async () => {
    h = await startTestHerald({
      auth: { trusted_peers: [TRUSTED] },
      limits: { max_publications_per_source: 3, max_subscriptions_per_source: 2 },
    });
  });
  after(async () => {
    for (const u of uas) u.close();
    await h.stop();
  });

  const publish = async (u: TestUA, user: string, opts: { etag?: string; expires?: number } = {}) => {
    const aor = `sip:${user}@example.test`;
    const r = await u.request('PUBLISH', aor, {
      from: aor,
      headers: { Event: 'presence', Expires: String(opts.expires ?? 60), ...(opts.etag ? { 'SIP-If-Match': opts.etag } : {}) },
      ...(opts.etag ? {} : { body: pidf(aor, { tuple: rnd() }) }),
    });
    return { status: r.status!, reason: r.reason, etag: r.h('sip-etag') };
  };

  test('publications per source address: the 4th over three presentities is 403, another address is not counted, removal frees', async () => {
    const a = await ua(A);
    const b = await ua(B);
    const made = [await publish(a, 'p0'), await publish(a, 'p1'), await publish(a, 'p2')];
    assert.deepEqual(made.map((r) => r.status), [200, 200, 200]);
    const fourth = await publish(a, 'p3');
    assert.equal(fourth.status, 403);
    assert.equal(fourth.reason, 'Too Many Publications From This Address');
    assert.equal((await publish(b, 'p3')).status, 200, 'another address has its own count');
    assert.equal((await publish(a, 'p1', { etag: made[1]!.etag!, expires: 0 })).status, 200);
    assert.equal((await publish(a, 'p4')).status, 200, 'a removed publication no longer counts');
  });

  test('a publication refreshed from another address counts against that one', async () => {
    // Addresses of their own: the test above left A and B holding publications.
    const a = await ua('127.0.0.4');
    const b = await ua('127.0.0.5');
    const c = [await publish(a, 'q0'), await publish(a, 'q1'), await publish(a, 'q2')];
    assert.deepEqual(c.map((r) => r.status), [200, 200, 200]);
    assert.equal((await publish(a, 'q3')).status, 403);
    // b refreshes one of a's (it knows the entity-tag): it is b's now.
    assert.equal((await publish(b, 'q0', { etag: c[0]!.etag! })).status, 200);
    assert.equal((await publish(a, 'q3')).status, 200, 'a holds one fewer');
    assert.equal((await publish(b, 'q4')).status, 200);
    assert.equal((await publish(b, 'q5')).status, 200);
    assert.equal((await publish(b, 'q6')).status, 403, 'b holds q0, q4 and q5');
  });

  test('trusted peers are exempt (a proxy in front carries everybody\'s)', async () => {
    const t = await ua(TRUSTED);
    const statuses = [];
    for (let i = 0; i < 5; i++) statuses.push((await publish(t, `t${i}`)).status);
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
  });

  test('a subscription refreshed from another address moves to that address', async () => {
    const a = await ua(A);
    const b = await ua(B);
    const sub = (u: TestUA, user: string, dialog: { callId?: string; fromTag?: string; toTag?: string; cseq?: number } = {}) =>
      u.request('SUBSCRIBE', `sip:${user}@example.test`, { from: 'sip:w@example.test', headers: { Event: 'presence', Expires: '60' }, ...dialog });
    const callId = rnd();
    const fromTag = rnd();
    const s0 = await sub(a, 's0', { callId, fromTag });
    assert.equal(s0.status, 200);
    assert.equal((await sub(a, 's1')).status, 200);
    assert.equal((await sub(a, 's2')).status, 403, 'a holds two');
    // The watcher moved (a new address, as after a NAT rebinding) and refreshes s0 from there.
    const refreshed = await sub(b, 's0', { callId, fromTag, toTag: s0.toTag!, cseq: 2 });
    assert.equal(refreshed.status, 200);
    assert.equal((await sub(a, 's2')).status, 200, 'a holds one fewer');
    assert.equal((await sub(b, 's3')).status, 200);
    assert.equal((await sub(b, 's4')).status, 403, 'b holds s0 and s3');
  });
});
