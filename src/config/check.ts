// What a configuration needs from the machine, checked before anything starts: listen addresses that
// resolve, TLS files that exist and parse, a store path that can be a database file. Each failure is a
// ConfigError naming the key, so the operator reads one line instead of a stack from deep inside a
// listener or the SQLite driver. A port in use is found when binding (checking first would race) and
// turned into the same kind of line by `bindError`.
import { lookup } from 'node:dns/promises';
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { accessSync, constants, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { isIP } from 'node:net';
import { ConfigError } from './load.js';
import { parseListen, type Config } from './schema.js';

function hostOf(listen: string): string {
  return listen.slice(0, listen.lastIndexOf(':')).replace(/^\[|\]$/g, '');
}

async function resolves(key: string, host: string): Promise<void> {
  if (isIP(host)) return;
  try {
    await lookup(host);
  } catch {
    throw new ConfigError(`${key}: address ${host} does not resolve`);
  }
}

function readable(key: string, path: string): Buffer {
  try {
    return readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new ConfigError(`${key}: ${path}: ${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : (e as Error).message}`);
  }
}

function checkPem(key: string, path: string, kind: 'certificate' | 'key'): void {
  if (!path) return;
  const pem = readable(key, path);
  try {
    if (kind === 'key') createPrivateKey(pem);
    else new X509Certificate(pem);
  } catch {
    throw new ConfigError(`${key}: ${path}: not a PEM ${kind === 'key' ? 'private key' : 'certificate'}`);
  }
}

/** A file Herald will create and write: not a directory, and its folder can be made and written. */
function checkWritableFile(key: string, path: string): void {
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw new ConfigError(`${key}: ${path} is a directory`);
    return;
  }
  const dir = dirname(path);
  try {
    mkdirSync(dir, { recursive: true });
    accessSync(dir, constants.W_OK);
  } catch (e) {
    throw new ConfigError(`${key}: cannot create ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

export async function checkEnvironment(c: Config): Promise<void> {
  for (const [i, l] of c.sip.listen.entries()) await resolves(`sip.listen.${i}`, parseListen(l).address.replace(/^\[|\]$/g, ''));
  if (c.xcap.enabled) await resolves('xcap.listen', hostOf(c.xcap.listen));
  if (c.admin.enabled) await resolves('admin.listen', hostOf(c.admin.listen));
  checkPem('sip.tls_cert', c.sip.tls_cert, 'certificate');
  checkPem('sip.tls_key', c.sip.tls_key, 'key');
  checkPem('sip.tls_ca', c.sip.tls_ca, 'certificate');
  // A cluster's store is its Redis: [store] url is not used then.
  if (c.store.url.startsWith('sqlite://') && !c.cluster.redis) {
    const path = c.store.url.slice('sqlite://'.length);
    if (path !== ':memory:') checkWritableFile('store.url', path);
  }
  if (c.admin.enabled && c.admin.token_file) checkWritableFile('admin.token_file', c.admin.token_file);
}

/** A listener's bind failure as a configuration error naming its key; other errors unchanged. */
export function bindError(key: string, what: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EADDRINUSE') return new ConfigError(`${key}: ${what}: port in use`);
  if (code === 'EADDRNOTAVAIL') return new ConfigError(`${key}: ${what}: not an address of this machine`);
  if (code === 'EACCES') return new ConfigError(`${key}: ${what}: permission denied (a port below 1024 needs privileges)`);
  return e;
}

/** Which sip.listen entry a bind error is about (Node puts the address and port on the error). */
export function listenKeyOf(c: Config, e: unknown): { key: string; what: string } {
  const err = e as { address?: string; port?: number };
  const i = c.sip.listen.findIndex((l) => {
    const p = parseListen(l);
    return p.port === err.port && (err.address === undefined || p.address.replace(/^\[|\]$/g, '') === err.address);
  });
  return i >= 0 ? { key: `sip.listen.${i}`, what: c.sip.listen[i]! } : { key: 'sip.listen', what: `${err.address ?? '?'}:${err.port ?? '?'}` };
}
