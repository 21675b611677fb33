// Herald's presence agent against sipp: RFC 3903 PUBLISH, RFC 6665/3856 SUBSCRIBE and NOTIFY.
// Each test runs its own Herald (own temp dir and SQLite store) and stops it by pid afterwards.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assertSippOk, requireSipp, runSipp, startHerald, startSipp } from './peers.js';

test('PUBLISH over UDP: initial, refresh (new ETag), modify, remove, then 412 for the removed ETag', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  assertSippOk(await runSipp('publish.xml', { herald, keys: { presentity: 'alice' } }), herald);
});

test('PUBLISH over TCP: the same life cycle', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  assertSippOk(await runSipp('publish.xml', { herald, transport: 'tcp', keys: { presentity: 'alice' } }), herald);
});

test('SUBSCRIBE to a publishing user: 200, NOTIFY active, refresh, unsubscribe, NOTIFY terminated', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'subscribe-test' } }), herald);
  assertSippOk(await runSipp('subscribe.xml', { herald, keys: { presentity: 'alice', watcher: 'bob' } }), herald);
});

test('SUBSCRIBE to a user who never published (unknown_presentity = "closed"): the same life cycle', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  assertSippOk(await runSipp('subscribe.xml', { herald, keys: { presentity: 'carol', watcher: 'bob' } }), herald);
});

test('a PUBLISH reaches the watcher: NOTIFY in the dialog carrying the new note', { timeout: 90_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t);
  const watcher = await startSipp('watch.xml', { herald, timeoutS: 45, keys: { presentity: 'alice', watcher: 'bob', note: 'green' } });
  await watcher.waitForLog(/herald-interop ready/, 20_000);
  assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'green' } }), herald);
  const result = await watcher.result;
  assertSippOk(result, herald);
  assert.ok(
    result.logLines().some((l) => /step=change .*note=green /.test(l)),
    `no NOTIFY carried note green\n${result.describe()}`,
  );
});

test('a PUBLISH from a peer that is not trusted is challenged: 401, Digest, realm, nonce, qop=auth, MD5 offered', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t, { auth: 'challenge' });
  assertSippOk(await runSipp('challenge.xml', { herald, keys: { presentity: 'alice' } }), herald);
});
