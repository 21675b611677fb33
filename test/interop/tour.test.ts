// The README's five-minute tour, as written, against sipp: two users added with the CLI, alice
// publishes with docs/tour/publish.xml, bob watches with docs/tour/watch.xml (pending), the CLI shows
// bob pending and approves him, bob's next NOTIFY is active with alice's note. Herald offers MD5
// first, as its default config does: sipp answers only the first digest challenge, and only MD5.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { ROOT, assertSippOk, freePort, heraldCli, requireSipp, runSipp, startHerald, startSipp } from './peers.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
const TOUR = join(ROOT, 'docs', 'tour');

test('the five-minute tour: publish, watch (pending), herald watcher approve, active with the note', { timeout: 120_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startHerald(t, {
    auth: 'challenge',
    algorithms: ['MD5', 'SHA-256'],
    policy: 'confirm',
    adminPort: await freePort(),
    async beforeStart({ configFile }) {
      await heraldCli(configFile, ['user', 'add', ALICE, '--password', 'alice-pw']);
      await heraldCli(configFile, ['user', 'add', BOB, '--password', 'bob-pw']);
    },
  });
  assertSippOk(await runSipp(join(TOUR, 'publish.xml'), { herald, name: 'tour-publish', keys: { note: 'In the office' }, credentials: { username: 'alice', password: 'alice-pw', uri: ALICE } }), herald);
  assert.match(await heraldCli(herald.configFile, ['presentities']), /^sip:alice@example\.test\s+green\s+open\s+1\s+0\s+In the office$/m);

  // The tour's watcher stays a minute after the approval; here a moment is enough.
  const watch = join(herald.dir, 'watch.xml');
  writeFileSync(watch, readFileSync(join(TOUR, 'watch.xml'), 'utf8').replace('milliseconds="60000"', 'milliseconds="500"'));
  const watcher = await startSipp(watch, { herald, name: 'tour-watch', timeoutS: 60, credentials: { username: 'bob', password: 'bob-pw', uri: ALICE } });
  await watcher.waitForLog(/tour: first NOTIFY, pending/, 20_000);
  assert.match(await heraldCli(herald.configFile, ['watchers', 'alice@example.test']), /^sip:bob@example\.test\s+pending\s+subscribe\s/m);
  assert.match(await heraldCli(herald.configFile, ['watcher', 'approve', ALICE, BOB]), /^approve: sip:bob@example\.test for sip:alice@example\.test/m);
  const r = await watcher.result;
  assertSippOk(r, herald);
  assert.ok(r.logLines().some((l) => /tour: next NOTIFY, active .*alice says: In the office/.test(l)), r.describe());
});
