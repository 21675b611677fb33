// Herald's resource list server (RFC 4662) against sipp: a list subscriber with `Supported: eventlist`
// checks the multipart/related structure, the RLMI root and its cid ↔ Content-ID ties, and the version
// sequence (0 full, 1 partial with only the member that changed), then unsubscribes.
// The list is an rls-services document PUT over XCAP (digest, user added with `herald user add` before
// the start) on the XCAP port startHerald chose.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { xcap } from '../support/xcap.js';
import { DOMAIN, assertSippOk, heraldCli, requireSipp, runSipp, startHerald, startSipp, type Herald } from './peers.js';

const OWNER = { username: 'owner', password: 'owner-pw' };
const uri = (u: string): string => `sip:${u}@${DOMAIN}`;
// scenarios/rls-subscribe.xml names these in its regexps (sipp puts no keys into a regexp).
const LIST = 'buddies';
const MEMBERS = ['alice', 'carol', 'dave'];

const SERVICES = `<?xml version="1.0" encoding="UTF-8"?>
<rls-services xmlns="urn:ietf:params:xml:ns:rls-services" xmlns:rl="urn:ietf:params:xml:ns:resource-lists">
  <service uri="${uri(LIST)}">
    <list name="${LIST}">${MEMBERS.map((m) => `<rl:entry uri="${uri(m)}"/>`).join('')}</list>
    <packages><package>presence</package></packages>
  </service>
</rls-services>`;

/** A Herald (policy allow) with the list PUT by its owner on Herald's XCAP server. */
async function heraldWithList(t: TestContext): Promise<Herald> {
  const herald = await startHerald(t, {
    policy: 'allow',
    beforeStart: async ({ configFile }) => {
      await heraldCli(configFile, ['user', 'add', uri(OWNER.username), '--password', OWNER.password]);
    },
  });
  const put = await xcap('PUT', herald.xcapUrl, `rls-services/users/${uri(OWNER.username)}/index`, OWNER, SERVICES, 'application/rls-services+xml');
  assert.equal(put.status, 201, `XCAP PUT of the rls-services document: ${put.status} ${put.body}\n${herald.logTail()}`);
  return herald;
}

const field = (line: string | undefined, name: string): string | undefined => new RegExp(`\\b${name}=(\\S*)`).exec(line ?? '')?.[1];

for (const transport of ['udp', 'tcp'] as const) {
  test(`a sipp list subscriber over ${transport.toUpperCase()}: RLMI full state v0 with cid-tied parts, one PUBLISH → partial v1 with that member only, unsubscribe`, { timeout: 90_000 }, async (t) => {
    if (!requireSipp(t)) return;
    const herald = await heraldWithList(t);
    assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'alice-before' } }), herald);
    assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'carol', note: 'carol-here' } }), herald);
    // dave never publishes: his instance is active with a closed PIDF (unknown_presentity = "closed").

    const watcher = await startSipp('rls-subscribe.xml', { herald, transport, timeoutS: 45, keys: { list: LIST, watcher: 'bob', note: 'alice-changed' } });
    await watcher.waitForLog(/herald-interop ready/, 20_000);
    assertSippOk(await runSipp('publish-once.xml', { herald, keys: { presentity: 'alice', note: 'alice-changed' } }), herald);
    const result = await watcher.result;
    assertSippOk(result, herald);

    const lines = result.logLines();
    const initial = lines.find((l) => l.includes('step=initial'));
    const change = lines.find((l) => l.includes('step=change'));
    const end = lines.find((l) => l.includes('step=terminated'));
    assert.equal(field(initial, 'version'), '0', result.describe());
    assert.equal(field(change, 'version'), '1', result.describe());
    assert.equal(field(change, 'note'), 'alice-changed', result.describe());
    assert.ok(Number(field(change, 'cseq')) > Number(field(initial, 'cseq')), result.describe());
    // The final NOTIFY, if it carries an RLMI document, goes on with the sequence.
    const v = field(end, 'version');
    if (v) assert.equal(v, '2', `terminated NOTIFY version\n${result.describe()}`);
  });
}

test('a sipp subscriber to the list URI without Supported: eventlist gets 421 with Require: eventlist', { timeout: 60_000 }, async (t) => {
  if (!requireSipp(t)) return;
  const herald = await heraldWithList(t);
  assertSippOk(await runSipp('rls-no-eventlist.xml', { herald, keys: { list: LIST, watcher: 'bob' } }), herald);
});
