// A small SIP user agent for tests: real UDP/TCP/TLS/WebSocket sockets, raw messages in and out.
// It parses with the `sip` package directly (not Herald's codec), so the tests do not share Herald's
// parsing bugs.
import dgram from 'node:dgram';
import net from 'node:net';
import tls from 'node:tls';
import crypto, { randomBytes } from 'node:crypto';
import sip, { type RawMessage } from 'sip';
import WebSocket from 'ws';
import { Arrivals } from './arrivals.js';

export type UaProtocol = 'udp' | 'tcp' | 'tls' | 'ws';

export interface Msg {
  raw: RawMessage;
  method: string | undefined;
  status: number | undefined;
  reason: string;
  body: string;
  /** Header by lower-case name (string headers only; structured ones through raw). */
  h(name: string): string | undefined;
  toTag: string | undefined;
  fromTag: string | undefined;
  callId: string;
  cseq: number;
}

function wrap(raw: RawMessage): Msg {
  const body = Buffer.from(raw.content ?? '', 'latin1').toString('utf8');
  return {
    raw,
    method: raw.method,
    status: raw.status,
    reason: raw.reason ?? '',
    body,
    h: (name) => {
      const v = raw.headers[name.toLowerCase()];
      return typeof v === 'string' ? v : v === undefined ? undefined : String(v);
    },
    toTag: raw.headers.to?.params['tag'] ?? undefined,
    fromTag: raw.headers.from?.params['tag'] ?? undefined,
    callId: String(raw.headers['call-id']),
    cseq: raw.headers.cseq?.seq ?? -1,
  };
}

export const rnd = (): string => randomBytes(6).toString('hex');

export interface Answer {
  status: number;
  toTag?: string;
  headers?: Record<string, string>;
}

export interface RequestOptions {
  from: string;
  fromTag?: string;
  to?: string;
  toTag?: string;
  callId?: string;
  cseq?: number;
  headers?: Record<string, string>;
  body?: string;
  contentType?: string;
  contact?: boolean;
}

export class TestUA {
  private readonly arrivals = new Arrivals<Msg>('request');
  readonly requests = this.arrivals.all;
  /** Requests answerWith chose not to answer. */
  readonly dropped: Msg[] = [];
  /**
   * How to answer incoming requests: a status code (default 200), a status with a To tag and headers
   * (a UAS that creates a dialog, e.g. a registrar answering SUBSCRIBE), 'drop' (no answer at all),
   * or 'hold' to answer 200 later with release().
   */
  answerWith: (m: Msg) => number | Answer | 'drop' | 'hold' = () => 200;
  private held: (() => void)[] = [];
  private readonly waiting = new Map<string, (m: Msg) => void>();
  private send!: (data: Buffer) => void;
  private closer!: () => void;
  localPort = 0;

  private constructor(readonly protocol: UaProtocol, readonly host: string, public port: number, private readonly clientCert?: { cert: Buffer; key: Buffer }, readonly localHost = '127.0.0.1') {}

  /**
   * `clientCert`: a TLS client certificate to present (peers trusted by TLS name). `localHost`: the
   * loopback address a UDP UA sends from (another source address: 127.0.0.2, …).
   */
  static async open(protocol: UaProtocol, host: string, port: number, clientCert?: { cert: Buffer; key: Buffer }, localHost?: string): Promise<TestUA> {
    const ua = new TestUA(protocol, host, port, clientCert, localHost);
    await ua.connect();
    return ua;
  }

  private async connect(): Promise<void> {
    if (this.protocol === 'udp') {
      const s = dgram.createSocket('udp4');
      s.on('message', (d) => this.onData(d));
      await new Promise<void>((r) => s.bind(0, this.localHost, () => r()));
      this.localPort = s.address().port;
      this.send = (d) => s.send(d, this.port, this.host);
      this.closer = () => s.close();
      return;
    }
    if (this.protocol === 'ws') {
      const ws = new WebSocket(`ws://${this.host}:${this.port}`, 'sip');
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      ws.on('message', (d: Buffer) => this.onData(Buffer.from(d)));
      this.localPort = (ws as unknown as { _socket: net.Socket })._socket.localPort ?? 0;
      this.send = (d) => ws.send(d.toString('utf8'));
      this.closer = () => ws.close();
      return;
    }
    const socket =
      this.protocol === 'tls'
        ? tls.connect({ host: this.host, port: this.port, rejectUnauthorized: false, ...(this.clientCert ?? {}) })
        : net.connect({ host: this.host, port: this.port });
    await new Promise<void>((resolve, reject) => {
      socket.once(this.protocol === 'tls' ? 'secureConnect' : 'connect', () => resolve());
      socket.once('error', reject);
    });
    this.localPort = socket.localPort ?? 0;
    let buf = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        const end = buf.indexOf('\r\n\r\n');
        if (end < 0) return;
        const m = /content-length\s*:\s*(\d+)/i.exec(buf.subarray(0, end).toString('latin1'));
        const len = m ? Number(m[1]) : 0;
        if (buf.length < end + 4 + len) return;
        this.onData(buf.subarray(0, end + 4 + len));
        buf = buf.subarray(end + 4 + len);
      }
    });
    socket.on('error', () => undefined);
    this.send = (d) => socket.write(d);
    this.closer = () => socket.destroy();
  }

  /**
   * UDP: sends (requests and answers) to another port from now on; for a UA opened before the
   * Herald it serves (a registrar or next hop whose address goes into Herald's config).
   */
  setPeer(port: number): void {
    this.port = port;
  }

  get transportParam(): string {
    return this.protocol === 'udp' ? '' : `;transport=${this.protocol}`;
  }

  get contactUri(): string {
    return `sip:ua@${this.localHost}:${this.localPort}${this.transportParam}`;
  }

  sendRaw(text: string | Buffer): void {
    this.send(typeof text === 'string' ? Buffer.from(text, 'utf8') : text);
  }

  private onData(d: Buffer): void {
    const raw = sip.parse(d.toString('latin1'));
    if (!raw) return;
    const m = wrap(raw);
    if (m.status !== undefined) {
      const branch = raw.headers.via?.[0]?.params['branch'];
      if (m.status >= 200 && branch) {
        const w = this.waiting.get(branch);
        if (w) {
          this.waiting.delete(branch);
          w(m);
        }
      }
      return;
    }
    const a = this.answerWith(m);
    if (a === 'drop') {
      this.dropped.push(m);
      return;
    }
    if (a === 'hold') {
      this.held.push(() => this.answer(raw, d, m, { status: 200 }));
      return;
    }
    this.answer(raw, d, m, typeof a === 'number' ? { status: a } : a);
  }

  /** Answers (200) every request held so far, in arrival order (retransmissions included). */
  release(): void {
    const held = this.held;
    this.held = [];
    for (const answer of held) answer();
  }

  private answer(raw: RawMessage, d: Buffer, m: Msg, a: Answer): void {
    const { status, toTag, headers = {} } = a;
    const res = [
      `SIP/2.0 ${status} ${status === 200 ? 'OK' : 'Test'}`,
      ...raw.headers.via!.map((v) => `Via: SIP/2.0/${v.protocol} ${v.host}${v.port ? `:${v.port}` : ''}${Object.entries(v.params).map(([k, x]) => (x === null ? `;${k}` : `;${k}=${x}`)).join('')}`),
      `From: ${this.rawHeader(d, 'from')}`,
      `To: ${this.rawHeader(d, 'to')}${toTag && !m.toTag ? `;tag=${toTag}` : ''}`,
      `Call-ID: ${m.callId}`,
      `CSeq: ${m.cseq} ${raw.headers.cseq!.method}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    this.sendRaw(res);
    if (status >= 200 && status < 300) {
      this.arrivals.add(m);
    }
  }

  private rawHeader(d: Buffer, name: string): string {
    const re = new RegExp(`^(?:${name}|${name[0]})\\s*:\\s*(.*)$`, 'im');
    return re.exec(d.toString('latin1'))?.[1]?.trim() ?? '';
  }

  /** Sends a request and resolves with its final response. */
  request(method: string, uri: string, o: RequestOptions, timeoutMs = 5000): Promise<Msg> {
    const branch = `z9hG4bK${rnd()}`;
    const via = `SIP/2.0/${this.protocol.toUpperCase()} ${this.localHost}:${this.localPort};branch=${branch};rport`;
    const body = o.body ? Buffer.from(o.body, 'utf8') : undefined;
    const lines = [
      `${method} ${uri} SIP/2.0`,
      `Via: ${via}`,
      'Max-Forwards: 70',
      `From: <${o.from}>;tag=${o.fromTag ?? rnd()}`,
      `To: <${o.to ?? uri}>${o.toTag ? `;tag=${o.toTag}` : ''}`,
      `Call-ID: ${o.callId ?? rnd()}`,
      `CSeq: ${o.cseq ?? 1} ${method}`,
      ...(o.contact === false ? [] : [`Contact: <${this.contactUri}>`]),
      ...Object.entries(o.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      ...(body ? [`Content-Type: ${o.contentType ?? 'application/pidf+xml'}`] : []),
      `Content-Length: ${body?.length ?? 0}`,
      '',
      '',
    ];
    const head = Buffer.from(lines.join('\r\n'), 'utf8');
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => {
        this.waiting.delete(branch);
        reject(new Error(`${method} ${uri}: no final response in ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(branch, (m) => {
        clearTimeout(t);
        resolve(m);
      });
      this.send(body ? Buffer.concat([head, body]) : head);
    });
  }

  /** Waits for an incoming request matching `pred` (already received ones count if not yet taken). */
  nextRequest(pred: (m: Msg) => boolean = () => true, timeoutMs = 5000, taken = new Set<Msg>()): Promise<Msg> {
    return this.arrivals.next(pred, timeoutMs, 0, taken);
  }

  /** Waits up to `ms` and returns requests that arrived (for checking that nothing came). */
  async quiet(ms: number): Promise<Msg[]> {
    const before = this.requests.length;
    await new Promise((r) => setTimeout(r, ms));
    return this.requests.slice(before);
  }

  close(): void {
    this.closer();
  }
}

export function pidf(entity: string, opts: { tuple?: string; basic?: 'open' | 'closed'; note?: string; extra?: string } = {}): string {
  return `<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}">
  <tuple id="${opts.tuple ?? 't1'}"><status><basic>${opts.basic ?? 'open'}</basic></status>${opts.note ? `<note>${opts.note}</note>` : ''}</tuple>${opts.extra ?? ''}
</presence>`;
}

/** Digest credentials computed independently of Herald's code (RFC 7616 §3.4.1). */
export function digestAuthorization(challenge: string, method: string, uri: string, username: string, password: string, nc = 1, overrideNonce?: string): string {
  const { createHash } = crypto;
  const get = (k: string) => new RegExp(`${k}="?([^",]+)"?`, 'i').exec(challenge)?.[1];
  const alg = (get('algorithm') ?? 'MD5').toUpperCase();
  const h = (s: string) => createHash(alg === 'SHA-256' ? 'sha256' : 'md5').update(s).digest('hex');
  const realm = get('realm')!;
  const nonce = overrideNonce ?? get('nonce')!;
  const cnonce = 'abcdef0123';
  const ncs = nc.toString(16).padStart(8, '0');
  const ha1 = h(`${username}:${realm}:${password}`);
  const ha2 = h(`${method}:${uri}`);
  const response = h(`${ha1}:${nonce}:${ncs}:${cnonce}:auth:${ha2}`);
  return `Digest username="${username}", realm="${realm}", nonce="${nonce}", uri="${uri}", response="${response}", algorithm=${alg}, qop=auth, nc=${ncs}, cnonce="${cnonce}"`;
}

/**
 * Sends a request and, when challenged (401), answers with digest credentials once, in the same
 * Call-ID with the next CSeq (RFC 3261 §22.2).
 */
export async function requestWithAuth(ua: TestUA, method: string, uri: string, o: RequestOptions, username: string, password: string): Promise<Msg> {
  const callId = o.callId ?? rnd();
  const fromTag = o.fromTag ?? rnd();
  const cseq = o.cseq ?? 1;
  const first = await ua.request(method, uri, { ...o, callId, fromTag, cseq });
  if (first.status !== 401) return first;
  const c = (first.raw.headers['www-authenticate'] as { nonce: string; realm: string; algorithm?: string }[])[0]!;
  const challenge = `Digest realm=${c.realm}, nonce=${c.nonce}, algorithm=${c.algorithm ?? 'MD5'}`;
  return ua.request(method, uri, { ...o, callId, fromTag, cseq: cseq + 1, headers: { ...(o.headers ?? {}), Authorization: digestAuthorization(challenge, method, uri, username, password) } });
}
