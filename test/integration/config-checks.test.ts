// Configuration mistakes that need the machine to be found: an address that does not resolve, a port
// in use, TLS files missing or not PEM, a store path that is a directory or cannot be created. Each
// stops the start with one line naming the key, from startHerald and from the `herald` command alike;
// and the XCAP server challenges global documents in the SIP domain's realm.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, validateConfig } from '../../src/config/load.js';
import { silentLogger } from '../../src/log.js';
import { startHerald } from '../../src/server.js';
import { startTestHerald, tempDir } from '../support/herald.js';
import { CLI, freePort } from '../support/process.js';

const fixture = (name: string) => fileURLToPath(new URL(`../../../test/fixtures/${name}`, import.meta.url));

function config(overrides: Record<string, Record<string, unknown>>) {
  const dir = tempDir();
  return validateConfig({
    ...overrides,
    sip: { listen: ['udp:127.0.0.1:0', 'tcp:127.0.0.1:0'], ...(overrides['sip'] ?? {}) },
    store: { url: 'memory://', ...(overrides['store'] ?? {}) },
    xcap: { listen: '127.0.0.1:0', ...(overrides['xcap'] ?? {}) },
    admin: { listen: '127.0.0.1:0', token_file: join(dir, 'admin.token'), ...(overrides['admin'] ?? {}) },
    log: { level: 'silent', format: 'json' },
  });
}

async function refused(overrides: Record<string, Record<string, unknown>>, expected: RegExp): Promise<void> {
  await assert.rejects(
    async () => {
      const h = await startHerald(config(overrides), { log: silentLogger });
      await h.stop();
    },
    (e: Error) => {
      assert.ok(e instanceof ConfigError, `a ConfigError, not ${e.stack}`);
      assert.equal(e.message.split('\n').length, 1, 'one line');
      assert.match(e.message, expected);
      return true;
    },
  );
}

describe('configuration checked against the machine', () => {
  test('an address that does not resolve', async () => {
    await refused({ sip: { listen: ['udp:no-such-host.invalid:5060'] } }, /^sip\.listen\.0: address no-such-host\.invalid does not resolve$/);
    await refused({ xcap: { listen: 'nowhere.invalid:8080' } }, /^xcap\.listen: address nowhere\.invalid does not resolve$/);
    await refused({ admin: { listen: 'nowhere.invalid:8090' } }, /^admin\.listen: address nowhere\.invalid does not resolve$/);
  });

  test('a port in use (SIP TCP, XCAP, admin)', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      await refused({ sip: { listen: ['udp:127.0.0.1:0', `tcp:127.0.0.1:${port}`] } }, new RegExp(`^sip\\.listen\\.1: tcp:127\\.0\\.0\\.1:${port}: port in use$`));
      await refused({ xcap: { listen: `127.0.0.1:${port}` } }, new RegExp(`^xcap\\.listen: 127\\.0\\.0\\.1:${port}: port in use$`));
      await refused({ admin: { listen: `127.0.0.1:${port}` } }, new RegExp(`^admin\\.listen: 127\\.0\\.0\\.1:${port}: port in use$`));
    } finally {
      blocker.close();
    }
  });

  test('a TLS file that does not exist or does not parse', async () => {
    const dir = tempDir();
    const junk = join(dir, 'junk.pem');
    writeFileSync(junk, 'not a certificate\n');
    const tls = (cert: string, key: string) => ({ sip: { listen: ['tls:127.0.0.1:0'], tls_cert: cert, tls_key: key } });
    await refused(tls(join(dir, 'missing.pem'), fixture('tls-key.pem')), /^sip\.tls_cert: .*missing\.pem: no such file$/);
    await refused(tls(junk, fixture('tls-key.pem')), /^sip\.tls_cert: .*junk\.pem: not a PEM certificate$/);
    await refused(tls(fixture('tls-cert.pem'), junk), /^sip\.tls_key: .*junk\.pem: not a PEM private key$/);
    await refused(tls(fixture('tls-cert.pem'), dir), /^sip\.tls_key: .*: is a directory$/);
  });

  test('a store path that is a directory or cannot be created', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, 'db'));
    await refused({ store: { url: `sqlite://${join(dir, 'db')}` } }, /^store\.url: .*db is a directory$/);
    const file = join(dir, 'plain');
    writeFileSync(file, '');
    await refused({ store: { url: `sqlite://${join(file, 'sub', 'h.sqlite')}` } }, /^store\.url: cannot create .*h\.sqlite: (ENOTDIR|EEXIST)$/);
  });

  test('the herald command prints the one line and exits 2; relative paths are the config file\'s', async () => {
    const dir = tempDir();
    const port = await freePort();
    writeFileSync(join(dir, 'herald.toml'), `[sip]\nlisten = ["udp:127.0.0.1:${port}", "tls:127.0.0.1:${port}"]\ntls_cert = "certs/missing.pem"\ntls_key = "certs/missing.pem"\n[xcap]\nlisten = "127.0.0.1:0"\n[admin]\nlisten = "127.0.0.1:0"\n`);
    const r = await run([CLI, '--config', join(dir, 'herald.toml')], tempDir());
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `herald: sip.tls_cert: ${join(dir, 'certs', 'missing.pem')}: no such file\n`);
    const bad = await run([CLI, '--config', join(dir, 'herald.toml'), '--log-format', 'xml'], dir);
    assert.notEqual(bad.code, 0);
    assert.match(bad.stderr, /option '--log-format <format>' argument 'xml' is invalid/);
    const level = await run([CLI, 'status', '--log-level', 'loud'], dir);
    assert.match(level.stderr, /option '-l, --log-level <level>' argument 'loud' is invalid/);
    const v = await run([CLI, '--version'], dir);
    assert.match(v.stdout, /^\d+\.\d+\.\d+\n$/);
  });
});

describe('XCAP digest realm', () => {
  test('xcap-caps/global/index challenges in the SIP domain, so a user\'s SIP password passes', async () => {
    const h = await startTestHerald({ sip: { domains: ['example.test'] } });
    try {
      const r = await fetch(`${h.xcapUrl()}/xcap-caps/global/index`);
      assert.equal(r.status, 401);
      assert.match(r.headers.get('www-authenticate') ?? '', /realm="example\.test"/);
      assert.doesNotMatch(r.headers.get('www-authenticate') ?? '', /realm="127\.0\.0\.1"/);
    } finally {
      await h.stop();
    }
  });
});

function run(args: string[], cwd: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const t = setTimeout(() => p.kill('SIGKILL'), 20_000);
    p.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout, stderr });
    });
  });
}
