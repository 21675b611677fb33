// Real phones on Herald's defaults: baresip 1.0 and linphonec 5.1 from Debian, headless on 127.0.0.1
// (test/interop/phones.ts). Herald runs its default configuration (digest on, no trusted peer, the
// default algorithms and challenge, policy "confirm") with users added by `herald user add` and
// pres-rules on its XCAP server that allow the watchers.
//  - baresip publishes online then offline; a second baresip watching it sees both (UDP and TCP);
//  - linphonec watches one buddy (a baresip) and sees it online, then offline (UDP and TCP);
//  - linphonec subscribes to a three-member list (rls-services on Herald's XCAP, RFC 4662), shows each
//    member's state, then a change of one member, and is still running at the end.
import assert from 'node:assert/strict';
import { test, type TestContext } from 'node:test';
import { TestUA, pidf, requestWithAuth } from '../support/ua.js';
import { SHOW_ALL, presRules, rule, xcap } from '../support/xcap.js';
import { rlsServices } from '../support/rls.js';
import { DOMAIN, heraldCli, requireBinaries, startHerald, type Herald } from './peers.js';
import { BARESIP, Baresip, LINPHONEC, Linphonec, type PhoneTransport } from './phones.js';

const aor = (u: string): string => `sip:${u}@${DOMAIN}`;
const password = (u: string): string => `${u}-pw`;

/** Herald on its defaults with these users, each presentity's pres-rules allowing the given watchers. */
async function heraldFor(t: TestContext, users: string[], allow: Record<string, string[]>): Promise<Herald> {
  const herald = await startHerald(t, {
    auth: 'challenge',
    policy: 'confirm', // Herald's own default
    beforeStart: async ({ configFile }) => {
      for (const u of users) await heraldCli(configFile, ['user', 'add', aor(u), '--password', password(u)]);
    },
  });
  for (const [presentity, watchers] of Object.entries(allow)) {
    const r = await xcap('PUT', herald.xcapUrl, `pres-rules/users/${aor(presentity)}/index`, { username: presentity, password: password(presentity) },
      presRules(rule('allow-watchers', watchers.map(aor), 'allow', SHOW_ALL)), 'application/auth-policy+xml');
    assert.equal(r.status, 201, `pres-rules for ${presentity}: ${r.status} ${r.body}`);
  }
  return herald;
}

for (const transport of ['udp', 'tcp'] as PhoneTransport[]) {
  test(`baresip publishes online then offline over ${transport.toUpperCase()}; a second baresip watching sees both`, { timeout: 90_000 }, async (t) => {
    if (!requireBinaries(t, BARESIP)) return;
    const herald = await heraldFor(t, ['alice', 'bob'], { alice: ['bob'] });
    // baresip prints a contact's changes but not its first state: alice is offline before bob watches.
    const alice = await Baresip.start(t, herald, { user: 'alice', password: password('alice'), transport, publish: true });
    await alice.command('/presence_offline');
    await alice.peer.waitForOutput(/^SIP\/2\.0 200 OK/, 15_000);
    const watcher = await Baresip.start(t, herald, { user: 'bob', password: password('bob'), transport, watch: ['alice'] });
    try {
      await watcher.peer.waitForOutput(/^NOTIFY sip:/, 15_000);
      await alice.command('/presence_online');
      await watcher.waitForStatus('alice', 'Online');
      const mark = watcher.peer.output().length;
      await alice.command('/presence_offline');
      await watcher.waitForStatus('alice', 'Offline', 15_000, mark);
      assert.ok(alice.peer.running() && watcher.peer.running());
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- Herald\n${herald.logTail()}`, { cause: e });
    }
  });

  test(`linphonec watches one buddy over ${transport.toUpperCase()}: a baresip online, then offline`, { timeout: 90_000 }, async (t) => {
    if (!requireBinaries(t, BARESIP, LINPHONEC)) return;
    const herald = await heraldFor(t, ['alice', 'carol'], { alice: ['carol'] });
    const alice = await Baresip.start(t, herald, { user: 'alice', password: password('alice'), transport, publish: true });
    await alice.command('/presence_online');
    const phone = await Linphonec.start(t, herald, { user: 'carol', password: password('carol'), transport, friends: ['alice'] });
    try {
      await phone.waitForFriend('alice', 'Online');
      const mark = phone.peer.output().length;
      await alice.command('/presence_offline');
      await phone.waitForFriend('alice', 'Offline', 15_000, mark);
      assert.ok(phone.peer.running(), 'linphonec is still running');
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- Herald\n${herald.logTail()}`, { cause: e });
    }
  });
}

test('linphonec subscribes to a three-member list on Herald\'s XCAP: each member\'s state, then one member\'s change; still running', { timeout: 90_000 }, async (t) => {
  if (!requireBinaries(t, LINPHONEC)) return;
  const members = ['alice', 'bob', 'dave'];
  const herald = await heraldFor(t, [...members, 'carol', 'owner'], Object.fromEntries(members.map((m) => [m, ['carol']])));
  const put = await xcap('PUT', herald.xcapUrl, `rls-services/users/${aor('owner')}/index`, { username: 'owner', password: password('owner') },
    rlsServices({ [aor('buddies')]: members.map(aor) }), 'application/rls-services+xml');
  assert.equal(put.status, 201, put.body);
  // The members publish with a plain UA (digest, as any phone would).
  const ua = await TestUA.open('udp', '127.0.0.1', herald.port);
  t.after(() => ua.close());
  const publish = async (user: string, basic: 'open' | 'closed'): Promise<void> => {
    const r = await requestWithAuth(ua, 'PUBLISH', aor(user), { from: aor(user), headers: { Event: 'presence', Expires: '600' }, body: pidf(aor(user), { basic, note: `${user} ${basic}` }) }, user, password(user));
    assert.equal(r.status, 200, `PUBLISH for ${user}: ${r.status} ${r.reason}`);
  };
  await publish('alice', 'open');
  await publish('bob', 'closed');
  await publish('dave', 'open');
  // Linphone sends the list's members in the body (deflated) and Require: recipient-list-subscribe;
  // Herald serves the list it holds for that URI.
  const phone = await Linphonec.start(t, herald, { user: 'carol', password: password('carol'), transport: 'udp', friends: members, rlsUri: aor('buddies') });
  try {
    await phone.waitForFriend('alice', 'Online');
    await phone.waitForFriend('bob', 'Offline');
    await phone.waitForFriend('dave', 'Online');
    const mark = phone.peer.output().length;
    await publish('bob', 'open');
    await phone.waitForFriend('bob', 'Online', 15_000, mark);
    assert.ok(phone.peer.running(), 'linphonec is still running');
  } catch (e) {
    throw new Error(`${(e as Error).message}\n--- Herald\n${herald.logTail()}`, { cause: e });
  }
});
