// The `herald` command against a running Herald (a child process on a temp config): status,
// presentities, watchers, subscriptions, lists, peers, a watcher decision that changes the watcher's
// subscription at once, `user add` from stdin with its warning, --config before or after the
// subcommand, SIGHUP and the last log line on SIGTERM.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { HeraldProcess, CLI, freePort } from '../support/process.js';
import { tempDir } from '../support/herald.js';
import { TestUA, pidf, rnd, type Msg } from '../support/ua.js';

const ALICE = 'sip:alice@example.test';
const BOB = 'sip:bob@example.test';

function cli(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [CLI, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: tempDir() });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.stdin.end(stdin ?? '');
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('herald CLI against a running Herald', () => {
  let herald: HeraldProcess;
  let ua: TestUA;
  let cfg: string;
  const seen = new Set<Msg>();
  const bobCall = rnd();

  before(async () => {
    const dir = tempDir();
    const port = await freePort();
    // The CLI finds the admin API by admin.listen: a real port, not 0.
    cfg = HeraldProcess.writeConfig(dir, port, `[policy]\ndefault = "confirm"\n[admin]\nlisten = "127.0.0.1:${await freePort()}"\n`);
    herald = new HeraldProcess(cfg);
    await herald.start();
    ua = await TestUA.open('udp', '127.0.0.1', port);
    assert.equal((await ua.request('PUBLISH', ALICE, { from: ALICE, headers: { Event: 'presence', Expires: '600' }, body: pidf(ALICE, { note: 'Lunch' }) })).status, 200);
    assert.equal((await ua.request('SUBSCRIBE', ALICE, { from: BOB, callId: bobCall, headers: { Event: 'presence', Expires: '600' } })).status, 200);
    seen.add(await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall, 5000, seen));
  });
  after(async () => {
    ua.close();
    await herald.stop();
  });

  test('herald status (--config after the subcommand) and --json', async () => {
    const r = await cli(['status', '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^domains\s+\["example\.test"\]$/m);
    assert.match(r.stdout, /^publications\s+1$/m);
    const j = await cli(['--config', cfg, '--json', 'status']);
    assert.equal((JSON.parse(j.stdout) as { publications: number }).publications, 1);
  });

  test('herald presentities', async () => {
    const r = await cli(['--config', cfg, 'presentities']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^PRESENTITY\s+COLOUR\s+BASIC\s+DEVICES\s+WATCHERS\s+NOTE$/m);
    assert.match(r.stdout, /^sip:alice@example\.test\s+green\s+open\s+1\s+1\s+Lunch$/m);
    assert.match((await cli(['--config', cfg, 'presentities', '--colour', 'red'])).stdout, /^no presentities$/m);
  });

  test('herald watchers ALICE and herald subscriptions', async () => {
    const w = await cli(['watchers', 'alice@example.test', '--config', cfg]);
    assert.match(w.stdout, /^sip:bob@example\.test\s+pending\s+subscribe\s+\S+ \S+\s+udp:127\.0\.0\.1:\d+$/m);
    const s = await cli(['subscriptions', '--event', 'presence', '--config', cfg]);
    assert.match(s.stdout, /^presence\s+sip:alice@example\.test\s+sip:bob@example\.test\s+\d+s\s+200\s+udp:/m);
  });

  test('herald lists and herald peers', async () => {
    assert.match((await cli(['lists', '--config', cfg])).stdout, /^no list subscriptions$/m);
    const p = await cli(['peers', '--config', cfg]);
    assert.match(p.stdout, /^sip gateway: off$/m);
    assert.match(p.stdout, /^xmpp component: off$/m);
  });

  test('herald watcher approve ALICE BOB: bob is active at once, then polite-block shows him closed', async () => {
    const r = await cli(['watcher', 'approve', ALICE, BOB, '--config', cfg]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^approve: sip:bob@example\.test for sip:alice@example\.test \(rule herald_bob_example\.test in pres-rules\/users\/sip:alice@example\.test\/index, etag \S+\)$/m);
    const n = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall && /^active/.test(m.h('subscription-state') ?? ''), 5000, seen);
    seen.add(n);
    assert.match(n.body, /Lunch/);
    await cli(['watcher', 'polite-block', ALICE, BOB, '--config', cfg]);
    const n2 = await ua.nextRequest((m) => m.method === 'NOTIFY' && m.callId === bobCall && /<basic>closed<\/basic>/.test(m.body), 5000, seen);
    assert.doesNotMatch(n2.body, /Lunch/);
    const bad = await cli(['watcher', 'adore', ALICE, BOB, '--config', cfg]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /decision must be one of approve, block, polite-block/);
  });

  test('herald user add reads the password from stdin and warns for an AOR outside sip.domains', async () => {
    const r = await cli(['user', 'add', 'sip:dave@example.test', '--config', cfg], 'dave-secret\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^added sip:dave@example\.test/);
    assert.equal(r.stderr, '');
    const o = await cli(['--config', cfg, 'user', 'add', 'sip:erin@elsewhere.test'], 'pw\n');
    assert.match(o.stderr, /warning: sip:erin@elsewhere\.test is not in sip\.domains \(example\.test\)/);
    const none = await cli(['user', 'add', 'sip:frank@example.test', '--config', cfg]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no password given on stdin/);
    const list = await cli(['user', 'list', '--config', cfg]);
    assert.match(list.stdout, /sip:dave@example\.test/);
  });

  test('SIGHUP reloads without ending the process; SIGTERM ends with a last log line', async () => {
    herald.child!.kill('SIGHUP');
    await new Promise((r) => setTimeout(r, 500));
    assert.match(herald.output, /"msg":"configuration reloaded"/);
    assert.equal(herald.child!.exitCode, null);
    assert.equal((await cli(['status', '--config', cfg])).code, 0);
    const code = await herald.stop('SIGTERM');
    assert.equal(code, 0);
    const lines = herald.output.trim().split('\n');
    assert.match(lines[lines.length - 1]!, /"msg":"Herald stopped"/);
  });
});

describe('herald CLI without a running Herald', () => {
  test('an admin command says what is wrong in one line', async () => {
    const dir = tempDir();
    const cfg = HeraldProcess.writeConfig(dir, await freePort());
    const r = await cli(['status', '--config', cfg]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^herald: cannot read the admin token .*admin\.token/);
  });
});
