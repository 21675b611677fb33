// The admin listener (node:http, its own port, loopback by default): the JSON API under /api/, the
// live page at /, its server-sent events at /api/events, and /metrics. Everything but /metrics (when
// admin.metrics_public) needs the admin token or an admin AOR's digest (auth.ts).
//
// Lists are paged (?offset=&limit=, at most admin.page_size by default) and filtered (?q= matches any
// field, plus per-list filters named in docs/admin-api.md). Requests are small and bounded: bodies
// of at most 16 kB, header and request timeouts as the XCAP server has.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { UserDirectory } from '../auth/users.js';
import { AdminAuth, COOKIE } from './auth.js';
import type { HeraldMetrics } from './metrics.js';
import { ADMIN_PAGE } from './page.js';
import { DECISIONS, decideWatcher, type Decision } from './watcher-decision.js';
import { peersView, presentityDetail, presentityNames, subscriptionView, summary, usersView, watchersOf, type AdminSource } from './views.js';
import type { XcapDocuments } from '../xcap/documents.js';
import { XcapError } from '../xcap/errors.js';

export interface AdminServerOptions {
  host: string;
  port: number;
  source: AdminSource;
  documents: XcapDocuments;
  metrics: HeraldMetrics;
  auth: AdminAuth;
  metricsPublic: boolean;
  pageSize: number;
  version: string;
  log: Logger;
}

const MAX_BODY = 16 * 1024;
/** Server-sent events: at most one "change" per this many ms per client, and a comment to keep proxies open. */
const EVENT_COALESCE_MS = 250;
const KEEPALIVE_MS = 15_000;

class HttpError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

function page<T>(items: T[], url: URL, dflt: number): { total: number; offset: number; limit: number; items: T[] } {
  const q = url.searchParams.get('q')?.toLowerCase();
  const filtered = q ? items.filter((i) => JSON.stringify(i).toLowerCase().includes(q)) : items;
  const offset = Math.max(0, Math.trunc(Number(url.searchParams.get('offset') ?? 0)) || 0);
  const limit = Math.min(10_000, Math.max(1, Math.trunc(Number(url.searchParams.get('limit') ?? dflt)) || dflt));
  return { total: filtered.length, offset, limit, items: filtered.slice(offset, offset + limit) };
}

/** Keeps items whose `field` equals the query parameter of the same name, when it is given. */
function where<T extends Record<string, unknown>>(items: T[], url: URL, ...fields: string[]): T[] {
  return fields.reduce((acc, f) => {
    const v = url.searchParams.get(f);
    return v === null ? acc : acc.filter((i) => String(i[f]) === v);
  }, items);
}

/** An AOR from a path segment: "alice@example.test" and "sip:alice@example.test" both name alice. */
function aorParam(seg: string): string {
  const s = decodeURIComponent(seg);
  try {
    return UserDirectory.normalize(/^sips?:/i.test(s) ? s : `sip:${s}`).aor;
  } catch {
    throw new HttpError(400, `not an address of record: ${s}`);
  }
}

export class AdminServer {
  private server: Server | undefined;
  private boundPort = 0;
  private readonly clients = new Set<ServerResponse>();
  private pending: NodeJS.Timeout | undefined;
  private keepalive: NodeJS.Timeout | undefined;

  constructor(private readonly o: AdminServerOptions) {}

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.o.port, this.o.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.keepalive = setInterval(() => {
      for (const c of this.clients) c.write(': keep-alive\n\n');
    }, KEEPALIVE_MS);
    this.keepalive.unref();
  }

  async stop(): Promise<void> {
    if (this.keepalive) clearInterval(this.keepalive);
    if (this.pending) clearTimeout(this.pending);
    for (const c of this.clients) c.end();
    this.clients.clear();
    const s = this.server;
    this.server = undefined;
    if (!s) return;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  get url(): string {
    const h = this.o.host.includes(':') ? `[${this.o.host}]` : this.o.host;
    return `http://${h}:${this.boundPort}`;
  }

  /** Something Herald holds changed: the live page's clients hear of it (coalesced). */
  changed(): void {
    if (this.pending || this.clients.size === 0) return;
    this.pending = setTimeout(() => {
      this.pending = undefined;
      const data = `event: change\ndata: ${JSON.stringify({ at: new Date().toISOString() })}\n\n`;
      for (const c of this.clients) c.write(data);
    }, EVENT_COALESCE_MS);
    this.pending.unref();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://admin.invalid');
    const method = req.method ?? 'GET';
    try {
      if (url.pathname === '/metrics' && method === 'GET' && this.o.metricsPublic) return await this.metrics(res);
      // ?token=… on the page: exchanged for a cookie, and the token taken out of the address bar.
      const t = url.searchParams.get('token');
      if (url.pathname === '/' && t !== null && this.o.auth.tokenMatches(t)) {
        res.writeHead(303, { Location: '/', 'Set-Cookie': `${COOKIE}=${encodeURIComponent(t)}; HttpOnly; SameSite=Strict; Path=/` });
        res.end();
        return;
      }
      const a = await this.o.auth.check(req);
      if (!a.ok) {
        if (a.reason !== 'no credentials') {
          this.o.metrics.authFailure('admin', a.reason);
          this.o.log.warn({ src: req.socket.remoteAddress, reason: a.reason }, `admin auth failure: src=${req.socket.remoteAddress ?? '-'} reason=${a.reason.replace(/\s+/g, '-')}`);
        }
        res.writeHead(401, { 'WWW-Authenticate': this.o.auth.challenges(a.stale), 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ error: 'authentication required' }));
        return;
      }
      if (url.pathname === '/metrics' && method === 'GET') return await this.metrics(res);
      if (url.pathname === '/' && method === 'GET') {
        res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Security-Policy': "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'" });
        res.end(ADMIN_PAGE);
        return;
      }
      if (url.pathname === '/api/events' && method === 'GET') return this.events(req, res);
      const body = await this.route(method, url, req);
      const text = JSON.stringify(body, null, 2);
      res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      res.end(text + '\n');
    } catch (e) {
      const status = e instanceof HttpError || e instanceof XcapError ? e.status : 500;
      if (status === 500) this.o.log.error({ err: e, url: req.url }, 'admin request failed');
      if (res.headersSent) return void res.destroy();
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ error: status === 500 ? 'internal error' : (e as Error).message }) + '\n');
    }
  }

  private async metrics(res: ServerResponse): Promise<void> {
    const text = await this.o.metrics.render();
    res.writeHead(200, { 'Content-Type': this.o.metrics.contentType });
    res.end(text);
  }

  private events(req: IncomingMessage, res: ServerResponse): void {
    res.writeHead(200, { 'Content-Type': 'text/event-stream', 'Cache-Control': 'no-store', Connection: 'keep-alive' });
    res.write(`event: hello\ndata: ${JSON.stringify({ version: this.o.version })}\n\n`);
    this.clients.add(res);
    req.on('close', () => this.clients.delete(res));
  }

  private async route(method: string, url: URL, req: IncomingMessage): Promise<unknown> {
    const h = this.o.source;
    const parts = url.pathname.split('/').filter(Boolean);
    if (parts[0] !== 'api') throw new HttpError(404, 'no such resource');
    const [, what, arg, sub, subArg] = parts;
    const n = this.o.pageSize;
    if (method === 'GET') {
      if (what === 'status' && !arg) return this.status();
      if (what === 'presentities' && !arg) return page(where(presentityNames(h).map((p) => ({ ...summary(h, p) })), url, 'colour', 'basic'), url, n);
      if (what === 'presentities' && arg && !sub) {
        const d = presentityDetail(h, aorParam(arg));
        if (!d) throw new HttpError(404, 'no such presentity');
        return d;
      }
      if (what === 'presentities' && arg && sub === 'watchers' && !subArg) return page(where(watchersOf(h, aorParam(arg)), url, 'status'), url, n);
      if (what === 'subscriptions' && !arg) return page(where(h.notifier.records().map((r) => subscriptionView(h, r)), url, 'event', 'resource', 'watcher'), url, n);
      if (what === 'lists' && !arg) return page(where((h.rls.subscriptions() as unknown as Record<string, unknown>[]), url, 'list', 'watcher'), url, n);
      if (what === 'peers' && !arg) return peersView(h);
      if (what === 'users' && !arg) return page(await usersView(h), url, n);
    }
    if (method === 'POST' && what === 'presentities' && arg && sub === 'watchers' && subArg) {
      const body = await readJson(req);
      const action = body['action'];
      if (typeof action !== 'string' || !(DECISIONS as readonly string[]).includes(action)) throw new HttpError(400, `action must be one of ${DECISIONS.join(', ')}`);
      const owner = aorParam(arg);
      if (!h.pa.handles(owner)) throw new HttpError(404, `${owner} is not of Herald's domains`);
      const r = await decideWatcher(this.o.documents, owner, aorParam(subArg), action as Decision);
      this.o.log.info({ owner, watcher: r.watcher, decision: action }, 'watcher decision written to pres-rules');
      return r;
    }
    if (['presentities', 'subscriptions', 'lists', 'peers', 'users', 'status'].includes(what ?? '')) throw new HttpError(405, 'method not allowed');
    throw new HttpError(404, 'no such resource');
  }

  private status(): Record<string, unknown> {
    const h = this.o.source;
    const subs = h.notifier.records();
    const hub = h.hub.stats();
    return {
      version: this.o.version,
      uptime: Math.round(process.uptime()),
      domains: h.config.sip.domains,
      listen: h.addresses,
      admin: this.url,
      store: h.config.store.url,
      presentities: presentityNames(h).length,
      publications: h.pa.publicationCount,
      subscriptions: subs.length,
      byEvent: subs.reduce<Record<string, number>>((acc, s) => ((acc[s.event] = (acc[s.event] ?? 0) + 1), acc), {}),
      listSubscriptions: h.rls.subscriptions().length,
      hub,
      upstreamSubscriptions: h.sipGateway?.stats().upstreamSubscriptions ?? 0,
      xmppComponent: h.xmpp?.status().component ?? 'disabled',
    };
  }
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of req as AsyncIterable<Buffer>) {
    n += c.length;
    if (n > MAX_BODY) throw new HttpError(413, 'body too large');
    chunks.push(c);
  }
  try {
    const v = JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as unknown;
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v as Record<string, unknown>;
  } catch {
    throw new HttpError(400, 'body must be a JSON object');
  }
}
