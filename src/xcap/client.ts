// An XCAP client (RFC 4825 §7) for an external XCAP server, on undici.
//
// Herald reads pres-rules and resource lists from it, so a failure must never look like "the
// user has no rules": while the server is down or answering errors, fetch() returns the last good
// document it had, logs one warning when the outage begins (not one per request) and one info
// line when it ends; with no last good document it throws XcapUnavailableError and the caller
// must refuse rather than allow. Only a 404 means "no such document".
//
// Documents are cached with their ETag and revalidated with If-None-Match (RFC 7232 §3.2); a 304
// serves the cached copy. Digest authentication (RFC 7616): after a 401 the response is computed
// and the request retried once; later requests answer the same challenge pre-emptively with the
// next nonce count, until the server asks again (e.g. stale=true).
import { Agent, request } from 'undici';
import type { Logger } from 'pino';
import { chooseChallenge, digestAuthorization, type AuthChallenge } from './digest.js';

export interface XcapDocument { body: string; etag: string }

export class XcapUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'XcapUnavailableError';
  }
}

export interface XcapClientOptions {
  /** The XCAP root URI, e.g. 'https://xcap.example.com/xcap-root'. */
  baseUrl: string;
  username?: string;
  password?: string;
  /** Bound on one request, body included. */
  timeoutMs: number;
  log: Logger;
  /** Largest document accepted (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface XcapPoll { stop(): void }

interface Response { status: number; headers: Record<string, string | string[] | undefined>; body: string }

class HttpStatusError extends Error {}

export class XcapClient {
  private readonly cache = new Map<string, XcapDocument>();
  private readonly agent = new Agent({ keepAliveTimeout: 10_000, connections: 8 });
  private readonly base: string;
  private challenge: AuthChallenge | undefined;
  private nc = 0;
  private down = false;

  constructor(private readonly opts: XcapClientOptions) {
    this.base = opts.baseUrl.replace(/\/+$/, '');
  }

  /**
   * The document at `path` (relative to the XCAP root, e.g. "pres-rules/users/sip:a@b/index"),
   * undefined if the server says it does not exist. Throws XcapUnavailableError only when the
   * server cannot be used and no earlier copy exists.
   */
  async fetch(path: string): Promise<XcapDocument | undefined> {
    const url = new URL(`${this.base}/${path.replace(/^\/+/, '')}`);
    const cached = this.cache.get(path);
    try {
      const res = await this.send(url, cached?.etag);
      let doc: XcapDocument | undefined;
      if (res.status === 200) {
        const etag = header(res.headers, 'etag');
        doc = { body: res.body, etag: etag ?? '' };
        if (etag !== undefined) this.cache.set(path, doc);
        else this.cache.delete(path);
      } else if (res.status === 304 && cached) {
        doc = cached;
      } else if (res.status === 404) {
        this.cache.delete(path);
        doc = undefined;
      } else {
        throw new HttpStatusError(`HTTP ${res.status}`);
      }
      this.recovered();
      return doc;
    } catch (e) {
      this.failed(e);
      const last = this.cache.get(path);
      if (last) return last;
      throw new XcapUnavailableError(`XCAP server ${this.base} unavailable and no earlier copy of ${path}: ${(e as Error).message}`);
    }
  }

  /**
   * Re-fetches `paths` every `intervalMs` and calls onChange when a document's ETag changes,
   * including its first appearance and its disappearance (a 404). An outage changes nothing.
   */
  poll(paths: readonly string[], intervalMs: number, onChange: (path: string, doc: XcapDocument | undefined) => void): XcapPoll {
    const seen = new Map<string, string | null>();
    let stopped = false;
    let timer: NodeJS.Timeout | undefined;
    const tick = async (): Promise<void> => {
      for (const p of paths) {
        if (stopped) return;
        let doc: XcapDocument | undefined;
        try {
          doc = await this.fetch(p);
        } catch {
          continue; // already logged once for the outage
        }
        const tag = doc ? doc.etag : null;
        if (seen.has(p) && seen.get(p) === tag) continue;
        seen.set(p, tag);
        try {
          onChange(p, doc);
        } catch (e) {
          this.opts.log.error({ path: p, err: (e as Error).message }, 'XCAP poll listener failed');
        }
      }
      if (!stopped) {
        timer = setTimeout(() => { void tick(); }, intervalMs);
        timer.unref();
      }
    };
    void tick();
    return { stop: () => { stopped = true; if (timer) clearTimeout(timer); } };
  }

  async close(): Promise<void> {
    await this.agent.close();
  }

  private failed(e: unknown): void {
    if (this.down) return;
    this.down = true;
    this.opts.log.warn({ xcap: this.base, err: e instanceof Error ? e.message : String(e) },
      'XCAP server unavailable: serving last good documents until it recovers');
  }

  private recovered(): void {
    if (!this.down) return;
    this.down = false;
    this.opts.log.info({ xcap: this.base }, 'XCAP server available again');
  }

  private async send(url: URL, etag: string | undefined): Promise<Response> {
    let res = await this.once(url, etag, this.authorization(url));
    const canAuth = this.opts.username !== undefined && this.opts.password !== undefined;
    if (res.status === 401 && canAuth) {
      const values = headerList(res.headers, 'www-authenticate');
      const ch = chooseChallenge(values);
      if (!ch) throw new HttpStatusError('HTTP 401 without a usable Digest challenge');
      this.challenge = ch;
      this.nc = 0;
      res = await this.once(url, etag, this.authorization(url));
    }
    return res;
  }

  private authorization(url: URL): string | undefined {
    if (!this.challenge || this.opts.username === undefined || this.opts.password === undefined) return undefined;
    this.nc++;
    return digestAuthorization(this.challenge, {
      username: this.opts.username, password: this.opts.password, method: 'GET', uri: url.pathname + url.search, nc: this.nc,
    });
  }

  private async once(url: URL, etag: string | undefined, authorization: string | undefined): Promise<Response> {
    const headers: Record<string, string> = {};
    if (etag !== undefined && etag !== '') headers['if-none-match'] = etag;
    if (authorization !== undefined) headers['authorization'] = authorization;
    const res = await request(url, {
      method: 'GET', headers, dispatcher: this.agent,
      signal: AbortSignal.timeout(this.opts.timeoutMs), headersTimeout: this.opts.timeoutMs, bodyTimeout: this.opts.timeoutMs,
    });
    if (res.statusCode !== 200) {
      await res.body.dump();
      return { status: res.statusCode, headers: res.headers, body: '' };
    }
    const max = this.opts.maxBodyBytes ?? 1 << 20;
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const chunk of res.body) {
      const b = chunk as Buffer;
      n += b.length;
      if (n > max) {
        res.body.destroy();
        throw new Error(`document larger than ${max} bytes`);
      }
      chunks.push(b);
    }
    return { status: 200, headers: res.headers, body: new TextDecoder('utf-8', { fatal: true }).decode(Buffer.concat(chunks)) };
  }
}

function headerList(h: Record<string, string | string[] | undefined>, name: string): string[] {
  const v = h[name];
  return v === undefined ? [] : Array.isArray(v) ? v : [v];
}

function header(h: Record<string, string | string[] | undefined>, name: string): string | undefined {
  return headerList(h, name)[0];
}
