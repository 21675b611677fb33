import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NonceManager, ReplayGuard, expectedResponse, readDigest } from '../../src/auth/digest.js';
import { hashHex } from '../../src/auth/users.js';
import { isTrustedAddress } from '../../src/auth/trust.js';
import { AuthThrottle } from '../../src/auth/throttle.js';

test('nonces: valid, then stale after their lifetime; another server\'s nonce is invalid', () => {
  const a = new NonceManager(randomBytes(32), 300_000);
  const b = new NonceManager(randomBytes(32), 300_000);
  const n = a.issue(1_000_000);
  assert.equal(a.check(n, 1_000_000 + 299_000), 'valid');
  assert.equal(a.check(n, 1_000_000 + 301_000), 'stale');
  assert.equal(b.check(n, 1_000_000), 'invalid');
  assert.equal(a.check(n.slice(0, -2) + 'AA', 1_000_000), 'invalid');
  assert.equal(a.check('not-a-nonce', 1_000_000), 'invalid');
});

test('nonce counts must rise; without qop a nonce serves once', () => {
  const g = new ReplayGuard();
  assert.equal(g.accept('n1', 1, Date.now() + 1000, 'a'), 'accepted');
  assert.equal(g.accept('n1', 1, Date.now() + 1000, 'a'), 'replayed');
  assert.equal(g.accept('n1', 3, Date.now() + 1000, 'a'), 'accepted');
  assert.equal(g.accept('n2', undefined, Date.now() + 1000, 'a'), 'accepted');
  assert.equal(g.accept('n2', undefined, Date.now() + 1000, 'a'), 'replayed');
});

test('RFC 2617 §3.5 example response (MD5, qop=auth)', () => {
  // The RFC's worked example (HTTP, but the arithmetic is the same).
  const d = readDigest('Digest', {
    username: 'Mufasa', realm: 'testrealm@host.com', nonce: 'dcd98b7102dd2f0e8b11d0f600bfb0c093', uri: '/dir/index.html',
    qop: 'auth', nc: '00000001', cnonce: '0a4f113b', response: '6629fae49393a05397450978507c4ef1',
  })!;
  const ha1 = hashHex('MD5', 'Mufasa:testrealm@host.com:Circle Of Life');
  assert.equal(expectedResponse(d, ha1, 'GET'), '6629fae49393a05397450978507c4ef1');
});

test('trusted peers by address and CIDR', () => {
  assert.equal(isTrustedAddress('10.1.2.3', ['10.0.0.0/8']), true);
  assert.equal(isTrustedAddress('11.1.2.3', ['10.0.0.0/8']), false);
  assert.equal(isTrustedAddress('::ffff:192.0.2.7', ['192.0.2.7']), true);
  assert.equal(isTrustedAddress('2001:db8::1', ['2001:db8::/32']), true);
  assert.equal(isTrustedAddress('2001:db9::1', ['2001:db8::/32']), false);
});

test('replay table: one identity filling it evicts only its own oldest nonces, which then answer stale', () => {
  const g = new ReplayGuard(100, 4);
  const t = Date.now() + 60_000;
  assert.equal(g.accept('bob1', 1, t, 'bob'), 'accepted');
  for (let i = 0; i < 1000; i++) assert.equal(g.accept(`alice${i}`, 1, t + 1 + i, 'alice'), 'accepted');
  assert.equal(g.accept('bob1', 2, t, 'bob'), 'accepted', "bob's nonce is still remembered");
  assert.equal(g.accept('bob2', 1, t + 5000, 'bob'), 'accepted', 'bob gets a new one');
  assert.equal(g.accept('alice0', 2, t + 1, 'alice'), 'stale', "alice's evicted nonce cannot be replayed");
  assert.equal(g.accept('alice999', 1, t + 1000, 'alice'), 'replayed');
});

test('throttle: per address and per identity; an address that proved the identity is not locked out by strangers', () => {
  const t = new AuthThrottle({ maxPerSource: 3, maxPerIdentity: 5, windowMs: 60_000, lockoutMs: 30_000, maxTracked: 1000 });
  const now = 1_000_000;
  t.success('10.0.0.1', 'sip:bob@x');
  for (let i = 0; i < 3; i++) t.failure('10.9.9.9', 'sip:alice@x', now);
  assert.ok(t.retryAfter('10.9.9.9', undefined, now) > 0, 'the guessing address is locked');
  assert.equal(t.retryAfter('10.0.0.1', 'sip:alice@x', now), 0, 'another address is not');
  for (let i = 0; i < 5; i++) t.failure(`10.8.0.${i}`, 'sip:bob@x', now);
  assert.ok(t.retryAfter('10.7.7.7', 'sip:bob@x', now) > 0, "bob's identity is locked for strangers");
  assert.equal(t.retryAfter('10.0.0.1', 'sip:bob@x', now), 0, "but not from bob's own address");
  assert.equal(t.retryAfter('10.7.7.7', 'sip:bob@x', now + 31_000), 0, 'the lockout ends');
});
