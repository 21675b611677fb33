import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig, resolvePaths } from '../../src/config/load.js';

const repoConfig = fileURLToPath(new URL('../../../config.toml', import.meta.url));

test('the repository config.toml is valid and equals the built-in defaults', () => {
  const fromFile = parseConfig(readFileSync(repoConfig, 'utf8'));
  const defaults = parseConfig('');
  assert.deepEqual(fromFile, defaults, 'config.toml documents every default, so the two agree');
  assert.deepEqual(fromFile.sip.listen, ['udp:127.0.0.1:5060', 'tcp:127.0.0.1:5060']);
  assert.deepEqual(fromFile.sip.domains, ['example.test']);
  assert.equal(fromFile.store.url, 'sqlite://data/herald.sqlite');
});

test('an unknown key stops the start with a message naming it', () => {
  assert.throws(() => parseConfig('[presence]\nsubscribe_min_expire = 5\n'), (e: Error) => e instanceof ConfigError && /presence\.subscribe_min_expire: unknown key/.test(e.message));
  assert.throws(() => parseConfig('[sipp]\nlisten = []\n'), /sipp: unknown key/);
});

test('a bad value stops the start with a message naming the key', () => {
  assert.throws(() => parseConfig('[sip]\nlisten = ["udp:127.0.0.1"]\n'), /sip\.listen\.0:/);
  assert.throws(() => parseConfig('[presence]\nunknown_presentity = "open"\n'), /presence\.unknown_presentity:/);
  assert.throws(() => parseConfig('[presence]\nsubscribe_min_expires = 100\nsubscribe_default_expires = 50\n'), /presence\.subscribe_default_expires: must lie between/);
  assert.throws(() => parseConfig('[store]\nurl = "mysql://x"\n'), /store\.url:/);
  assert.throws(() => parseConfig('[sip]\nlisten = ["tls:127.0.0.1:5061"]\n'), /sip\.tls_cert: a tls or wss listen address needs/);
  assert.throws(() => parseConfig('this is = = not toml'), /not valid TOML/);
});

test('a domain that is no host name names the key', () => {
  assert.throws(() => parseConfig('[sip]\ndomains = ["example test"]\n'), /sip\.domains\.0: not a host name/);
  assert.throws(() => parseConfig('[sip]\ndomains = ["sip:example.test"]\n'), /sip\.domains\.0: not a host name/);
  assert.throws(() => parseConfig('[policy]\nallow_domains = ["-bad-.test"]\n'), /policy\.allow_domains\.0: not a host name/);
  assert.deepEqual(parseConfig('[sip]\ndomains = ["Example.TEST", "192.0.2.1"]\n').sip.domains, ['example.test', '192.0.2.1']);
});

test('a CIDR whose prefix does not fit the address names the key', () => {
  assert.throws(() => parseConfig('[auth]\ntrusted_peers = ["10.0.0.0/99"]\n'), /auth\.trusted_peers\.0: expected an IP address or CIDR block/);
  assert.throws(() => parseConfig('[auth]\ntrusted_peers = ["10.0.0.300"]\n'), /auth\.trusted_peers\.0:/);
  assert.throws(() => parseConfig('[auth]\ntrusted_peers = ["::1/129"]\n'), /auth\.trusted_peers\.0:/);
  assert.deepEqual(parseConfig('[auth]\ntrusted_peers = ["10.0.0.0/8", "::1/128", "192.0.2.7"]\n').auth.trusted_peers, ['10.0.0.0/8', '::1/128', '192.0.2.7']);
});

test('a port above 65535 names the key (UDP would wrap 99999 to 34463)', () => {
  assert.throws(() => parseConfig('[sip]\nlisten = ["udp:127.0.0.1:99999"]\n'), /sip\.listen\.0: port above 65535/);
  assert.throws(() => parseConfig('[xcap]\nlisten = "127.0.0.1:70000"\n'), /xcap\.listen: port above 65535/);
  assert.throws(() => parseConfig('[admin]\nlisten = "127.0.0.1:65536"\n'), /admin\.listen: port above 65535/);
  assert.throws(() => parseConfig('[admin]\nlisten = "127.0.0.1:8080"\n'), /admin\.listen: port 8080 is already a SIP or XCAP port/);
});

test('each mistake is one line that starts with the file and names the key', () => {
  assert.throws(
    () => parseConfig('[sip]\nlisten = ["udp:127.0.0.1:99999"]\n', '/etc/herald.toml'),
    (e: Error) => e instanceof ConfigError && e.message === '/etc/herald.toml: sip.listen.0: port above 65535',
  );
});

test('relative paths are relative to the config file, absolute ones and memory stores unchanged', () => {
  const c = resolvePaths(parseConfig('[sip]\ntls_cert = "certs/c.pem"\ntls_key = "/k.pem"\n[store]\nurl = "sqlite://data/h.sqlite"\n'), '/etc/herald');
  assert.equal(c.sip.tls_cert, '/etc/herald/certs/c.pem');
  assert.equal(c.sip.tls_key, '/k.pem');
  assert.equal(c.sip.tls_ca, '');
  assert.equal(c.store.url, 'sqlite:///etc/herald/data/h.sqlite');
  assert.equal(c.admin.token_file, '/etc/herald/data/admin.token');
  assert.equal(resolvePaths(parseConfig('[store]\nurl = "memory://"\n'), '/x').store.url, 'memory://');
});

test('log.format defaults to auto (JSON unless stdout is a terminal); log.sip_trace is off', () => {
  const c = parseConfig('');
  assert.equal(c.log.format, 'auto');
  assert.equal(c.log.sip_trace, false);
  assert.throws(() => parseConfig('[log]\nformat = "xml"\n'), /log\.format:/);
});
