import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, parseConfig } from '../../src/config/load.js';

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
