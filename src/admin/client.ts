// The CLI's side of the admin API: the URL from admin.listen (a wildcard address is reached on
// loopback), the token from admin.token_file, JSON back. Errors are AdminClientError with a message
// an operator can act on ("is Herald running?"), never a stack.
import { request } from 'undici';
import type { Config } from '../config/schema.js';
import { readToken } from './auth.js';

export class AdminClientError extends Error {}

export class AdminClient {
  readonly base: string;
  private readonly token: string;

  constructor(config: Config) {
    if (!config.admin.enabled) throw new AdminClientError('admin.enabled is false in this configuration: there is no admin API to ask');
    const at = config.admin.listen.lastIndexOf(':');
    let host = config.admin.listen.slice(0, at).replace(/^\[|\]$/g, '');
    if (host === '0.0.0.0') host = '127.0.0.1';
    if (host === '::') host = '::1';
    this.base = `http://${host.includes(':') ? `[${host}]` : host}:${config.admin.listen.slice(at + 1)}`;
    try {
      this.token = readToken(config.admin.token_file);
    } catch {
      throw new AdminClientError(`cannot read the admin token ${config.admin.token_file} (Herald writes it at its first start; run as the user Herald runs as)`);
    }
  }

  async call<T = Record<string, unknown>>(method: 'GET' | 'POST', path: string, body?: unknown): Promise<T> {
    let r;
    try {
      r = await request(`${this.base}${path}`, {
        method,
        headers: { authorization: `Bearer ${this.token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        headersTimeout: 10_000,
        bodyTimeout: 10_000,
      });
    } catch (e) {
      throw new AdminClientError(`cannot reach Herald's admin API at ${this.base} (${(e as Error).message}): is Herald running with this configuration?`);
    }
    const text = await r.body.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      throw new AdminClientError(`${this.base}${path}: answered ${r.statusCode} with no JSON`);
    }
    if (r.statusCode !== 200) throw new AdminClientError(`${path}: ${r.statusCode} ${(json as { error?: string }).error ?? ''}`.trim());
    return json as T;
  }
}
