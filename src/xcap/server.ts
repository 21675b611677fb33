// The embedded XCAP server (RFC 4825) on node:http: GET, PUT and DELETE of documents, elements
// and attributes, conditional requests, HTTP Digest against the SIP user directory, and the
// access rules of the usages.
//
// Access (RFC 4825 §5.7, RFC 4826 §3.4.9/§4.4.9, RFC 5025 §9.9): a user reads and writes only the
// documents under users/<own XUI>/; xcap-caps is readable by any authenticated user;
// rls-services/global/index (every user's services) only by the configured admins (the RLS);
// nothing global is writable. The digest realm is the domain of the XUI, so the user's SIP HA1
// works unchanged.
//
// Everything a client sends is bounded: header sizes by node's defaults, the body by
// maxDocumentBytes (read with a hard cap, the connection dropped beyond it), slow requests by
// timeouts.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { UserDirectory, type UserRecord } from '../auth/users.js';
import { CT, mediaType } from '../formats/content-types.js';
import { ifMatchFails, ifNoneMatchFails, parseTagList, quoteEtag, type Preconditions } from './conditions.js';
import { DigestServer } from './digest.js';
import type { NonceCounts } from '../auth/digest.js';
import { logAuthFailure, type AuthThrottle } from '../auth/throttle.js';
import type { XcapDocuments } from './documents.js';
import { XcapError, conflict, xcapErrorBody } from './errors.js';
import { XcapPathError, parseXcapPath, type XcapPath } from './path.js';
import { RLS_GLOBAL_INDEX } from './usages.js';

export interface XcapServerOptions {
  /** The path of the XCAP root, e.g. '/xcap-root'. */
  root: string;
  host: string;
  port: number;
  documents: XcapDocuments;
  users: UserDirectory;
  log: Logger;
  maxDocumentBytes: number;
  /** AORs allowed to read rls-services/global/index (the RLS's own identity, operators). */
  admins?: string[];
  /** Realm challenged for global documents (default: the first admin's domain, else `host`). */
  realm?: string;
  /** Digest nonce lifetime (default 5 minutes). */
  nonceLifetimeMs?: number;
  /** Nonce-count memory (its own, apart from SIP's: XCAP nonces are its own). */
  replay?: NonceCounts;
  /** The key nonces are bound with (default: random, per process); a cluster's nodes share one. */
  nonceSecret?: Buffer;
  /** The brute-force throttle, shared with SIP digest. */
  throttle?: AuthThrottle;
  /**
   * Herald's own figures in the Prometheus text format, served at GET /metrics beside the XCAP root
   * (the embedded HTTP server is the one Herald already has; it listens on loopback by default).
   */
  metrics?: () => string | Promise<string>;
  /** Told of each digest answer that did not pass (metrics). */
  onAuthFailure?: (reason: string) => void;
}

const METHODS = new Set(['GET', 'PUT', 'DELETE']);
/** Bytes of an oversized body still read (and dropped) after the 413, so the client sees the answer. */
const LINGER_BYTES = 1 << 20;
const LINGER_MS = 2000;

export class XcapServer {
  private server: Server | undefined;
  private boundPort = 0;
  private readonly digest: DigestServer;
  private readonly admins = new Set<string>();
  private readonly root: string;

  constructor(private readonly opts: XcapServerOptions) {
    this.root = opts.root.replace(/\/+$/, '');
    for (const a of opts.admins ?? []) {
      try {
        this.admins.add(UserDirectory.normalize(a).aor);
      } catch {
        opts.log.warn({ admin: a }, 'XCAP admin is not a SIP address of record; ignored');
      }
    }
    this.digest = new DigestServer({
      users: opts.users,
      ...(opts.nonceLifetimeMs !== undefined ? { lifetimeMs: opts.nonceLifetimeMs } : {}),
      ...(opts.replay ? { replay: opts.replay } : {}),
      ...(opts.nonceSecret ? { secret: opts.nonceSecret } : {}),
      ...(opts.throttle ? { throttle: opts.throttle } : {}),
    });
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => { void this.handle(req, res); });
    server.requestTimeout = 30_000;
    server.headersTimeout = 10_000;
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.opts.port, this.opts.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.boundPort = (server.address() as AddressInfo).port;
    this.server = server;
    this.opts.log.debug({ url: this.url }, 'XCAP server listening');
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    this.server = undefined;
    await new Promise<void>((resolve) => {
      s.close(() => resolve());
      s.closeAllConnections();
    });
  }

  /** The XCAP root URI. */
  get url(): string {
    const h = this.opts.host.includes(':') ? `[${this.opts.host}]` : this.opts.host;
    return `http://${h}:${this.boundPort}${this.root}`;
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = req.method ?? '';
    const target = req.url ?? '';
    try {
      if (method === 'GET' && target === '/metrics' && this.opts.metrics) {
        res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' });
        res.end(await this.opts.metrics());
        return;
      }
      if (!METHODS.has(method)) {
        res.setHeader('Allow', 'GET, PUT, DELETE');
        throw new XcapError(405, 'only GET, PUT and DELETE');
      }
      const q = target.indexOf('?');
      const rawPath = q === -1 ? target : target.slice(0, q);
      if (!rawPath.startsWith(this.root + '/')) throw new XcapError(404, 'not below the XCAP root');
      let path = parseXcapPath(rawPath.slice(this.root.length), q === -1 ? undefined : target.slice(q + 1));
      let realm: string;
      if (path.scope === 'users') {
        // Documents are kept under the normalized AOR, so spellings of one XUI share a home.
        const n = normalizeXui(path.xui as string);
        path = { ...path, xui: n.aor, owner: n.aor };
        realm = n.realm;
      } else {
        realm = this.globalRealm();
      }
      const user = await this.authenticate(req, res, path, realm);
      this.authorize(user, path, method);
      if (method === 'GET') this.get(req, res, path);
      else if (method === 'PUT') await this.put(req, res, path);
      else await this.delete(req, res, path);
      this.opts.log.debug({ method, url: target, user: user.aor, status: res.statusCode }, 'XCAP request');
    } catch (e) {
      this.fail(req, res, e, method, target);
    }
  }

  private globalRealm(): string {
    if (this.opts.realm !== undefined) return this.opts.realm;
    const first = [...this.admins][0];
    return first !== undefined ? UserDirectory.normalize(first).realm : this.opts.host;
  }

  private async authenticate(req: IncomingMessage, res: ServerResponse, path: XcapPath, realm: string): Promise<UserRecord> {
    // Users' documents take only the XUI's own realm; global ones any realm the user exists in,
    // so that a client already authenticated for its home can read xcap-caps with the same HA1.
    const realmOk = path.scope === 'users' ? (r: string) => r.toLowerCase() === realm : () => true;
    const src = req.socket.remoteAddress ?? '';
    const result = await this.digest.verify(req.method ?? '', req.url ?? '', req.headers.authorization, realmOk, src);
    if (result.ok) return result.user;
    if (result.reason !== 'no credentials') this.opts.onAuthFailure?.(result.reason);
    this.opts.log.debug({ url: req.url, reason: result.reason, stale: result.stale }, 'XCAP authentication failed');
    if (result.failure) logAuthFailure(this.opts.log, src, result.aor, result.failure);
    if (result.retryAfterMs !== undefined) {
      // RFC 6585 §4: too many requests, with when to come back.
      res.setHeader('Retry-After', String(Math.ceil(result.retryAfterMs / 1000)));
      throw new XcapError(429, 'too many failed authentication attempts');
    }
    res.setHeader('WWW-Authenticate', this.digest.challenges(realm, result.stale));
    throw new XcapError(401, 'authentication required');
  }

  private authorize(user: UserRecord, path: XcapPath, method: string): void {
    if (path.scope === 'users') {
      if (user.aor !== path.owner) throw new XcapError(403, "another user's documents");
      return;
    }
    if (method !== 'GET') throw new XcapError(403, 'global documents are read-only');
    // RFC 4826 §4.4.9: the global index holds every user's services; only the RLS reads it.
    if (path.auid === RLS_GLOBAL_INDEX.auid && path.document === RLS_GLOBAL_INDEX.name && !this.admins.has(user.aor)) {
      throw new XcapError(403, 'the global rls-services index is for the RLS only');
    }
  }

  private get(req: IncomingMessage, res: ServerResponse, path: XcapPath): void {
    const r = this.opts.documents.get(path);
    if (ifMatchFails(r.etag, parseTagList(req.headers['if-match']))) throw new XcapError(412, 'If-Match does not match');
    if (ifNoneMatchFails(r.etag, parseTagList(req.headers['if-none-match']))) {
      res.writeHead(304, { ETag: quoteEtag(r.etag) });
      res.end();
      return;
    }
    const body = Buffer.from(r.body, 'utf8');
    res.writeHead(200, { 'Content-Type': r.contentType, 'Content-Length': body.length, ETag: quoteEtag(r.etag), 'Cache-Control': 'no-cache' });
    res.end(body);
  }

  private async put(req: IncomingMessage, res: ServerResponse, path: XcapPath): Promise<void> {
    const raw = await this.readBody(req);
    let text: string;
    try {
      text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
    } catch {
      throw conflict({ kind: 'not-utf-8' });
    }
    const w = await this.opts.documents.put(path, text, mediaType(req.headers['content-type']), preconditions(req));
    res.writeHead(w.created ? 201 : 200, { ETag: quoteEtag(w.etag), 'Content-Length': 0 });
    res.end();
  }

  private async delete(req: IncomingMessage, res: ServerResponse, path: XcapPath): Promise<void> {
    const d = await this.opts.documents.delete(path, preconditions(req));
    res.writeHead(200, { ...(d.etag !== undefined ? { ETag: quoteEtag(d.etag) } : {}), 'Content-Length': 0 });
    res.end();
  }

  /** Reads the body, refusing (413) as soon as it exceeds maxDocumentBytes, declared or not. */
  private readBody(req: IncomingMessage): Promise<Buffer> {
    const max = this.opts.maxDocumentBytes;
    const declared = Number(req.headers['content-length'] ?? '0');
    if (declared > max) return Promise.reject(new XcapError(413, `body larger than ${max} bytes`));
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      let n = 0;
      const done = (): void => {
        req.off('data', onData);
        req.off('end', onEnd);
        req.off('error', onError);
      };
      const onData = (c: Buffer): void => {
        n += c.length;
        if (n > max) {
          done();
          req.pause();
          reject(new XcapError(413, `body larger than ${max} bytes`));
          return;
        }
        chunks.push(c);
      };
      const onEnd = (): void => { done(); resolve(Buffer.concat(chunks)); };
      const onError = (e: Error): void => { done(); reject(e); };
      req.on('data', onData);
      req.on('end', onEnd);
      req.on('error', onError);
    });
  }

  private fail(req: IncomingMessage, res: ServerResponse, e: unknown, method: string, url: string): void {
    let status = 500;
    let type = 'text/plain; charset=utf-8';
    let body: string;
    if (e instanceof XcapPathError) {
      status = e.status;
      body = e.message;
    } else if (e instanceof XcapError) {
      status = e.status;
      if (e.condition) {
        type = CT.XCAP_ERROR;
        body = xcapErrorBody(e.condition, (rel) => `${this.url}/${rel}`);
      } else {
        body = e.message;
      }
    } else {
      this.opts.log.error({ method, url, err: e instanceof Error ? e.message : String(e) }, 'XCAP request failed');
      body = 'internal error';
    }
    this.opts.log.debug({ method, url, status }, 'XCAP request refused');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const unread = !req.complete;
    // A body we will not read: close the connection rather than reading it all to keep it alive.
    if (unread) res.setHeader('Connection', 'close');
    const bytes = Buffer.from(body + (type.startsWith('text/') ? '\n' : ''), 'utf8');
    res.writeHead(status, { 'Content-Type': type, 'Content-Length': bytes.length });
    res.end(bytes);
    if (unread) linger(req);
  }
}

function normalizeXui(xui: string): { aor: string; realm: string } {
  try {
    return UserDirectory.normalize(xui);
  } catch {
    // RFC 4825 §6.2: Herald's XUIs are SIP AORs; anything else names no user's home.
    throw new XcapError(404, 'no such user');
  }
}

function preconditions(req: IncomingMessage): Preconditions {
  const ifMatch = parseTagList(req.headers['if-match']);
  const ifNoneMatch = parseTagList(req.headers['if-none-match']);
  return { ...(ifMatch !== undefined ? { ifMatch } : {}), ...(ifNoneMatch !== undefined ? { ifNoneMatch } : {}) };
}

/**
 * Keeps reading (and dropping) a refused body for a little while, so the client, still sending,
 * gets to read the error instead of a connection reset; beyond a bound the socket is dropped.
 */
function linger(req: IncomingMessage): void {
  let n = 0;
  const kill = (): void => { req.socket.destroy(); };
  const timer = setTimeout(kill, LINGER_MS);
  timer.unref();
  req.on('data', (c: Buffer) => {
    n += c.length;
    if (n > LINGER_BYTES) { clearTimeout(timer); kill(); }
  });
  req.on('end', () => clearTimeout(timer));
  req.on('error', () => clearTimeout(timer));
  req.resume();
}
