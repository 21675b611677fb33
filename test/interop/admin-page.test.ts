// The admin page in a real browser: Debian's chromium driven by playwright-core with the system
// executable (never a downloaded browser), headless, with its own fresh profile directory under the
// test's temp dir. After a PUBLISH the presentity appears with its colour; after a SUBSCRIBE its
// watcher appears pending in the detail; the page's own "approve" makes it active (and the watcher
// gets the NOTIFY); the search filters. A screenshot is written under .test-output/.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';
import { chromium } from 'playwright-core';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';
import { ROOT, freePort, startHerald } from './peers.js';

const CHROMIUM = '/usr/bin/chromium';
const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';
export const OUTPUT = join(ROOT, '.test-output');

function requireChromium(t: TestContext): boolean {
  if (existsSync(CHROMIUM)) return true;
  const why = `${CHROMIUM} is missing: run scripts/install-peers.sh as root`;
  if (process.env.CI === 'true') assert.fail(why);
  t.skip(why);
  return false;
}

const BUSY = '<dm:person xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" id="p1"><rpid:activities><rpid:meeting/></rpid:activities></dm:person>';

test('the admin page shows a PUBLISH and a SUBSCRIBE live, and approves the watcher', { timeout: 120_000 }, async (t) => {
  if (!requireChromium(t)) return;
  const adminPort = await freePort();
  const herald = await startHerald(t, { policy: 'confirm', adminPort });
  const token = readFileSync(join(herald.dir, 'data', 'admin.token'), 'utf8').trim();
  const base = `http://127.0.0.1:${adminPort}`;
  const profile = mkdtempSync(join(tmpdir(), 'herald-chromium-'));
  t.after(() => rmSync(profile, { recursive: true, force: true }));
  const ua = await TestUA.open('udp', '127.0.0.1', herald.port);
  t.after(() => ua.close());

  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 820 },
    timeout: 30_000,
  });
  t.after(() => context.close());
  const page = context.pages()[0] ?? (await context.newPage());
  // ?token= becomes an HttpOnly cookie and leaves the address bar.
  await page.goto(`${base}/?token=${token}`);
  assert.equal(new URL(page.url()).search, '');
  await page.locator('#live', { hasText: 'live' }).waitFor({ timeout: 15_000 });
  await page.locator('#presentities', { hasText: 'No presentities yet.' }).waitFor();

  // A PUBLISH: alice, open, in a meeting ⇒ a red dot and her note, without reloading the page.
  const pub = await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'Quarterly review', extra: BUSY }) });
  assert.equal(pub.status, 200);
  const row = page.locator(`tr[data-aor="${ALICE}"]`);
  await row.waitFor({ timeout: 10_000 });
  assert.equal(await row.locator('.dot').getAttribute('class'), 'dot red');
  assert.match(await row.innerText(), /Quarterly review/);

  // A SUBSCRIBE: bob watches alice; alice has no rules, the default is confirm ⇒ pending.
  const bobCall = rnd();
  const seen = new Set<Msg>();
  assert.equal((await ua.request('SUBSCRIBE', ALICE, { from: BOB, callId: bobCall, headers: { Event: 'presence', Expires: '600' } })).status, 200);
  seen.add(await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall, 5000, seen));
  await row.click();
  const bobRow = page.locator('#detail-watchers tr', { hasText: BOB });
  await bobRow.locator('.badge', { hasText: 'pending' }).waitFor({ timeout: 10_000 });
  assert.match(await page.locator('#detail-basic').innerText(), /open/);
  assert.match(await page.locator('#detail-pubs').innerText(), /\S{10,}/, 'the publication with its ETag');
  await page.locator('#detail-watchers', { hasText: 'udp:127.0.0.1' }).waitFor();

  // The owner's decision from the page: bob becomes active there and gets alice's state by NOTIFY.
  await bobRow.getByRole('button', { name: 'approve', exact: true }).click();
  await bobRow.locator('.badge', { hasText: 'active' }).waitFor({ timeout: 10_000 });
  const n = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall && /^active/.test(m.h('subscription-state') ?? ''), 10_000, seen);
  assert.match(n.body, /Quarterly review/);

  mkdirSync(OUTPUT, { recursive: true });
  const shot = join(OUTPUT, 'admin-page.png');
  await page.screenshot({ path: shot, fullPage: true });
  assert.ok(readFileSync(shot).length > 10_000, 'a screenshot with something on it');

  // The search filters the presentities.
  await page.fill('#search', 'no-such-user');
  await page.locator('#presentities', { hasText: 'No presentities yet.' }).waitFor();
  await page.fill('#search', 'alice');
  await row.waitFor();
});
