// Herald's digest authentication (RFC 3261 §22, RFC 7616) against sipp: authentication on, no trusted
// peer, MD5 offered alone (sipp 3.6.1 answers only MD5, and only the first challenge). The users are
// created with the CLI (`herald user add … --config <the temp config>`) before Herald starts; the CLI and
// Herald share the SQLite store the config names.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test, type TestContext } from 'node:test';
import { DOMAIN, assertSippOk, heraldCli, requireSipp, runSipp, startHerald, type Herald, type SippResult } from './peers.js';

const USERS = { alice: 'alice-pw', bob: 'bob-pw' } as const;
const aor = (user: string): string => `sip:${user}@${DOMAIN}`;

/** A Herald that challenges 127.0.0.1 like anyone else, with alice and bob in its store. */
function startAuthHerald(t: TestContext): Promise<Herald> {
  return startHerald(t, {
    auth: 'challenge',
    algorithms: ['MD5'],
    async beforeStart({ configFile }) {
      for (const [user, password] of Object.entries(USERS)) {
        const out = await heraldCli(configFile, ['user', 'add', aor(user), '--password', password]);
        assert.match(out, new RegExp(`added ${aor(user)}`), `herald user add ${aor(user)} said: ${out}`);
      }
      const listed = await heraldCli(configFile, ['user', 'list']);
      for (const user of Object.keys(USERS)) assert.ok(listed.includes(aor(user)), `herald user list does not show ${aor(user)}:\n${listed}`);
    },
  });
}

/** The SIP messages sipp sent and received, as written to its trace. */
function trace(r: SippResult): string {
  try {
    return readFileSync(r.messageLog, 'utf8');
  } catch {
    return '';
  }
}

/** Asserts that sipp really sent digest credentials for `user` (so a 401 or 403 is about them). */
function assertSentCredentials(r: SippResult, herald: Herald, user: string): void {
  assert.match(
    trace(r),
    new RegExp(`^Authorization: Digest username="${user}",.*algorithm=MD5`, 'm'),
    `sipp sent no Authorization for ${user}\n${r.describe()}\n--- Herald output (${herald.logFile})\n${herald.logTail()}`,
  );
}

test('authenticated PUBLISH: 401, PUBLISH with credentials, 200 with SIP-ETag; refresh 401 then 200; remove reusing the nonce', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startAuthHerald(t);
  const r = await runSipp('auth-publish.xml', {
    herald,
    keys: { presentity: 'alice' },
    credentials: { username: 'alice', password: USERS.alice, uri: aor('alice') },
  });
  assertSippOk(r, herald);
  assertSentCredentials(r, herald, 'alice');
});

test('authenticated PUBLISH over TCP: the same exchange', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startAuthHerald(t);
  const r = await runSipp('auth-publish.xml', {
    herald,
    transport: 'tcp',
    keys: { presentity: 'alice' },
    credentials: { username: 'alice', password: USERS.alice, uri: aor('alice') },
  });
  assertSippOk(r, herald);
});

test('authenticated SUBSCRIBE: 401, SUBSCRIBE with credentials, 200, NOTIFY; unsubscribe in the dialog unchallenged, NOTIFY terminated', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startAuthHerald(t);
  const r = await runSipp('auth-subscribe.xml', {
    herald,
    keys: { presentity: 'alice', watcher: 'bob' },
    credentials: { username: 'bob', password: USERS.bob, uri: aor('alice') },
  });
  assertSippOk(r, herald);
  assertSentCredentials(r, herald, 'bob');
});

test('a wrong password is challenged again (401, not stale); an authenticated bob may not publish for alice (403)', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await startAuthHerald(t);

  const wrong = await runSipp('auth-wrong-password.xml', {
    herald,
    keys: { presentity: 'alice' },
    credentials: { username: 'alice', password: 'not-alice-pw', uri: aor('alice') },
  });
  assertSippOk(wrong, herald);
  assertSentCredentials(wrong, herald, 'alice');

  const forbidden = await runSipp('auth-forbidden.xml', {
    herald,
    keys: { presentity: 'alice', publisher: 'bob' },
    credentials: { username: 'bob', password: USERS.bob, uri: aor('alice') },
  });
  assertSippOk(forbidden, herald);
  assertSentCredentials(forbidden, herald, 'bob');

  // Neither attempt may have published anything: a watcher of alice (who never published) still gets the
  // closed document of an unknown presentity, not bob's "not mine" tuple.
  const watch = await runSipp('auth-subscribe.xml', {
    herald,
    keys: { presentity: 'alice', watcher: 'bob' },
    credentials: { username: 'bob', password: USERS.bob, uri: aor('alice') },
  });
  assertSippOk(watch, herald);
  const initial = watch.logLines().find((l) => l.includes('notify step=initial'));
  assert.ok(initial !== undefined && / basic=closed /.test(initial) && !initial.includes('not mine'), `alice's presence changed after refused PUBLISHes: ${initial}\n${watch.describe()}`);
});
