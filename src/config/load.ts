// Reads config.toml (smol-toml) and validates it against the schema; every problem is reported with
// the dotted key it concerns, one line each, so an operator sees "presence.subscribe_min_expires: ..."
// and not a stack. Relative paths in the file (store, TLS files, the admin token) are relative to the
// file itself, not to wherever Herald happens to be started from.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { parse as parseToml } from 'smol-toml';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {}

export function parseConfig(text: string, source = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    throw new ConfigError(`${source}: not valid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
  return validateConfig(raw, source);
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    let key = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') key = [...issue.path, ...issue.keys].join('.');
    return `${source}: ${key || '(top level)'}: ${issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message}`;
  });
  throw new ConfigError(lines.join('\n'));
}

/** Makes the file paths of a configuration absolute, relative to `base` (the config file's folder). */
export function resolvePaths(config: Config, base: string): Config {
  const abs = (p: string): string => (p === '' || isAbsolute(p) ? p : resolve(base, p));
  const url = config.store.url;
  const sqlite = url.startsWith('sqlite://') ? url.slice('sqlite://'.length) : undefined;
  return {
    ...config,
    sip: { ...config.sip, tls_cert: abs(config.sip.tls_cert), tls_key: abs(config.sip.tls_key), tls_ca: abs(config.sip.tls_ca) },
    store: { ...config.store, url: sqlite !== undefined && sqlite !== ':memory:' ? `sqlite://${abs(sqlite)}` : url },
    admin: { ...config.admin, token_file: abs(config.admin.token_file) },
  };
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return resolvePaths(parseConfig(text, path), dirname(resolve(path)));
}

/** Defaults only, for tests and embedding. */
export function defaultConfig(overrides: Record<string, unknown> = {}): Config {
  return validateConfig(overrides);
}
