// Reads config.toml (smol-toml) and validates it against the schema; every problem is reported with
// the dotted key it concerns, so an operator sees "presence.subscribe_min_expires: ..." and not a stack.
import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { ConfigSchema, type Config } from './schema.js';

export class ConfigError extends Error {}

export function parseConfig(text: string, source = 'config'): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (e) {
    throw new ConfigError(`${source}: not valid TOML: ${(e as Error).message}`);
  }
  return validateConfig(raw, source);
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = ConfigSchema.safeParse(raw);
  if (result.success) return result.data;
  const lines = result.error.issues.map((issue) => {
    let key = issue.path.join('.');
    if (issue.code === 'unrecognized_keys') key = [...issue.path, ...issue.keys].join('.');
    return `  ${key || '(top level)'}: ${issue.code === 'unrecognized_keys' ? 'unknown key' : issue.message}`;
  });
  throw new ConfigError(`${source}: invalid configuration\n${lines.join('\n')}`);
}

export function loadConfig(path: string): Config {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new ConfigError(`cannot read ${path}: ${(e as Error).message}`);
  }
  return parseConfig(text, path);
}

/** Defaults only, for tests and embedding. */
export function defaultConfig(overrides: Record<string, unknown> = {}): Config {
  return validateConfig(overrides);
}
