// Who may use the admin API and page: a bearer token read from the token file (what the `herald` CLI
// uses; Herald writes a random one there at first start, readable by its owner only), or HTTP digest
// as one of the admin AORs (RFC 7616, realm the first SIP domain, the user's SIP password; what a
// browser asks for). The page may also be opened once with ?token=…, which sets an HttpOnly,
// SameSite=Strict cookie so its EventSource (which cannot send headers) is authenticated too.
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { IncomingMessage } from 'node:http';
import { UserDirectory } from '../auth/users.js';
import { DigestServer } from '../xcap/digest.js';

export const COOKIE = 'herald_admin';

/** The token in the file, created (64 hex digits, mode 0600) when the file does not exist. */
export function ensureToken(path: string): string {
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
    chmodSync(path, 0o600);
  }
  return readToken(path);
}

export function readToken(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function sameSecret(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}

export function cookieToken(req: IncomingMessage): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === COOKIE && v) return decodeURIComponent(v);
  }
  return undefined;
}

export type AdminAuthResult = { ok: true; who: string } | { ok: false; reason: string; stale: boolean };

export class AdminAuth {
  private readonly digest: DigestServer;
  private readonly admins: Set<string>;

  constructor(
    private readonly o: { token: string | undefined; admins: readonly string[]; users: UserDirectory; realm: string; nonceLifetimeMs: number },
  ) {
    this.digest = new DigestServer({ users: o.users, lifetimeMs: o.nonceLifetimeMs });
    this.admins = new Set(o.admins.map((a) => UserDirectory.normalize(a).aor));
  }

  tokenMatches(candidate: string | undefined): boolean {
    return this.o.token !== undefined && candidate !== undefined && sameSecret(candidate, this.o.token);
  }

  async check(req: IncomingMessage): Promise<AdminAuthResult> {
    const authz = req.headers.authorization;
    const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authz ?? '')?.[1];
    if (bearer !== undefined) return this.tokenMatches(bearer) ? { ok: true, who: 'token' } : { ok: false, reason: 'wrong token', stale: false };
    if (this.tokenMatches(cookieToken(req))) return { ok: true, who: 'token' };
    if (authz === undefined) return { ok: false, reason: 'no credentials', stale: false };
    if (this.admins.size === 0) return { ok: false, reason: 'no admin AORs configured', stale: false };
    const r = await this.digest.verify(req.method ?? 'GET', req.url ?? '', authz, (realm) => realm.toLowerCase() === this.o.realm);
    if (!r.ok) return { ok: false, reason: r.reason, stale: r.stale };
    if (!this.admins.has(r.user.aor)) return { ok: false, reason: 'not an admin', stale: false };
    return { ok: true, who: r.user.aor };
  }

  /** WWW-Authenticate values for a 401: digest (when admins exist) and Bearer. */
  challenges(stale: boolean): string[] {
    return [...(this.admins.size > 0 ? this.digest.challenges(this.o.realm, stale) : []), 'Bearer realm="herald-admin"'];
  }
}
