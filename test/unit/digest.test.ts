import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { NonceManager, ReplayGuard, expectedResponse, readDigest } from '../../src/auth/digest.js';
import { hashHex } from '../../src/auth/users.js';
import { isTrustedAddress } from '../../src/auth/trust.js';

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
  assert.equal(g.accept('n1', 1, Date.now() + 1000), true);
  assert.equal(g.accept('n1', 1, Date.now() + 1000), false);
  assert.equal(g.accept('n1', 3, Date.now() + 1000), true);
  assert.equal(g.accept('n2', undefined, Date.now() + 1000), true);
  assert.equal(g.accept('n2', undefined, Date.now() + 1000), false);
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
