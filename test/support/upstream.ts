// A scripted presence server for remote.test (a small UAS on node:dgram) that answers each SUBSCRIBE
// as a test says and sends NOTIFYs in its dialogs: the upstream of the presence B2BUA's tests
// (test/integration/sip-gateway.test.ts, cluster-upstream.test.ts).
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import sip, { type RawMessage } from 'sip';
import { Arrivals } from './arrivals.js';

const rnd = (): string => randomBytes(6).toString('hex');
export const BOB = 'sip:bob@remote.test';

export interface Req {
  raw: RawMessage;
  text: string;
  method: string;
  callId: string;
  cseq: number;
  fromTag: string | undefined;
  toTag: string | undefined;
  from: string;
  expires: number | undefined;
  at: number;
  h(name: string): string | undefined;
}

export type Answer = { status: number; reason?: string; headers?: Record<string, string>; expires?: number; notify?: boolean } | 'drop';

export interface Dialog {
  callId: string;
  fromTag: string;
  toTag: string;
  from: string;
  uri: string;
  target: { host: string; port: number };
  cseq: number;
}

export function pidf(entity: string, note: string, basic: 'open' | 'closed' = 'open'): string {
  return `<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="${entity}"><tuple id="t1"><status><basic>${basic}</basic></status><note>${note}</note></tuple></presence>`;
}

/** A scripted presence server for remote.test on a loopback UDP port. */
export class ScriptedUpstream {
  private readonly received = new Arrivals<Req>('SUBSCRIBE');
  /** Every SUBSCRIBE received (retransmissions left out), in order. */
  readonly subscribes = this.received.all;
  readonly dialogs = new Map<string, Dialog>();
  /** How to answer the n-th SUBSCRIBE (0-based, counted over all). Default: 200, Expires as asked, then NOTIFY active. */
  script: (r: Req, n: number) => Answer = () => ({ status: 200 });
  /** The PIDF note of the automatic NOTIFY after a 2xx. */
  note = 'hello';
  private readonly branches = new Map<string, string | undefined>();
  private pending = new Map<string, (status: number | undefined) => void>();
  private constructor(private readonly socket: dgram.Socket, readonly port: number) {}

  static async start(): Promise<ScriptedUpstream> {
    // A receive buffer as large as Herald's own (src/sip/transport.ts): the figures test sends it 1,000
    // SUBSCRIBEs at once, and the default buffer (~200 kB) dropped most of them, so the figure measured
    // Timer E retransmissions (12–20 s, past the test's bound on a loaded machine) rather than Herald.
    const s = dgram.createSocket({ type: 'udp4', recvBufferSize: 4 * 1024 * 1024 });
    await new Promise<void>((r) => s.bind(0, '127.0.0.1', () => r()));
    const up = new ScriptedUpstream(s, s.address().port);
    s.on('message', (d) => up.onData(d));
    return up;
  }

  close(): void {
    for (const finish of [...this.pending.values()]) finish(undefined);
    this.socket.close();
  }

  private send(text: string, host: string, port: number): void {
    this.socket.send(Buffer.from(text, 'utf8'), port, host);
  }

  private onData(d: Buffer): void {
    const text = d.toString('utf8');
    const raw = sip.parse(text);
    if (!raw) return;
    if (raw.status !== undefined) {
      const branch = raw.headers.via?.[0]?.params['branch'];
      if (branch && raw.status >= 200) this.pending.get(branch)?.(raw.status);
      return;
    }
    const get = (name: string): string | undefined => {
      const m = new RegExp(`^${name}\\s*:\\s*(.*)$`, 'im').exec(text.split('\r\n\r\n')[0]!);
      return m?.[1]?.trim();
    };
    const exp = get('Expires');
    const r: Req = {
      raw,
      text,
      method: raw.method!,
      callId: String(raw.headers['call-id']),
      cseq: raw.headers.cseq!.seq,
      fromTag: raw.headers.from?.params['tag'] ?? undefined,
      toTag: raw.headers.to?.params['tag'] ?? undefined,
      from: sip.stringifyUri(raw.headers.from!.uri!),
      expires: exp === undefined ? undefined : Number(exp),
      at: Date.now(),
      h: get,
    };
    if (r.method !== 'SUBSCRIBE') return;
    // A retransmission (same branch) gets the answer already given, or nothing (RFC 3261 §17.2.2).
    const branch = raw.headers.via?.[0]?.params['branch'] ?? '';
    if (this.branches.has(branch)) {
      const last = this.branches.get(branch);
      if (last) this.send(last, this.viaOf(r).host, this.viaOf(r).port);
      return;
    }
    this.branches.set(branch, undefined);
    const n = this.subscribes.length;
    this.received.add(r);
    const a = this.script(r, n);
    if (a === 'drop') return;
    this.answer(r, a);
  }

  private viaOf(r: Req): { host: string; port: number } {
    const v = r.raw.headers.via![0]!;
    const rport = v.params['rport'];
    return { host: v.params['received'] ?? v.host, port: rport ? Number(rport) : (v.port ?? 5060) };
  }

  private answer(r: Req, a: Exclude<Answer, 'drop'>): void {
    let d = r.toTag ? this.dialogs.get(r.callId) : undefined;
    const ok = a.status >= 200 && a.status < 300;
    const toTag = r.toTag ?? rnd();
    if (ok && !d) {
      const c = sip.parseUri(sip.stringifyUri((r.raw.headers.contact as { uri: string }[])[0]!.uri))!;
      d = { callId: r.callId, fromTag: r.fromTag!, toTag, from: r.from, uri: sip.stringifyUri(r.raw.headers.to!.uri!), target: { host: c.host, port: c.port ?? 5060 }, cseq: 0 };
      this.dialogs.set(r.callId, d);
    } else if (ok && d && r.raw.headers.contact) {
      // A refresh is a target refresh request (RFC 6665 §4.1.2.2).
      const c = sip.parseUri(sip.stringifyUri((r.raw.headers.contact as { uri: string }[])[0]!.uri))!;
      d.target = { host: c.host, port: c.port ?? 5060 };
    }
    const head = r.text.split('\r\n\r\n')[0]!.split('\r\n');
    const copy = head.filter((l) => /^(Via|From|Call-ID|CSeq)\s*:/i.test(l));
    const to = head.find((l) => /^To\s*:/i.test(l))!;
    const expires = a.expires ?? r.expires ?? 3600;
    const lines = [
      `SIP/2.0 ${a.status} ${a.reason ?? (ok ? 'OK' : 'Scripted')}`,
      ...copy,
      r.toTag ? to : `${to};tag=${toTag}`,
      ...(ok ? [`Expires: ${expires}`, `Contact: <sip:presence@127.0.0.1:${this.port}>`] : []),
      ...Object.entries(a.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      'Content-Length: 0',
      '',
      '',
    ];
    const via = this.viaOf(r);
    this.branches.set(r.raw.headers.via![0]!.params['branch'] ?? '', lines.join('\r\n'));
    this.send(lines.join('\r\n'), via.host, via.port);
    if (ok && d && a.notify !== false) {
      if (expires === 0) void this.notify(r.callId, 'terminated;reason=timeout');
      else void this.notify(r.callId, `active;expires=${expires}`, pidf(BOB, this.note));
    }
  }

  /**
   * Sends a NOTIFY in a dialog; resolves with the answer's status (undefined: none by Timer F, 32 s).
   * Resent as RFC 3261 §17.1.2.2 says for UDP (T1 = 500 ms, doubling up to T2 = 4 s) until answered:
   * on a loaded machine a datagram can be lost, and a NOTIFY sent once left the watcher with nothing.
   */
  notify(callId: string, subState: string, body?: string, opts: { toTag?: string; cseq?: number; event?: string } = {}): Promise<number | undefined> {
    const d = this.dialogs.get(callId);
    if (!d) throw new Error(`no dialog ${callId}`);
    d.cseq = opts.cseq ?? d.cseq + 1;
    const branch = `z9hG4bK${rnd()}`;
    const b = body ? Buffer.from(body, 'utf8') : undefined;
    const lines = [
      `NOTIFY sip:${d.target.host}:${d.target.port} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${this.port};branch=${branch};rport`,
      'Max-Forwards: 70',
      `From: <${d.uri}>;tag=${opts.toTag ?? d.toTag}`,
      `To: <${d.from}>;tag=${d.fromTag}`,
      `Call-ID: ${callId}`,
      `CSeq: ${d.cseq} NOTIFY`,
      `Contact: <sip:presence@127.0.0.1:${this.port}>`,
      `Event: ${opts.event ?? 'presence'}`,
      `Subscription-State: ${subState}`,
      ...(b ? ['Content-Type: application/pidf+xml'] : []),
      `Content-Length: ${b?.length ?? 0}`,
      '',
      '',
    ].join('\r\n');
    const data = b ? lines + b.toString('utf8') : lines;
    return new Promise((resolve) => {
      let interval = 500;
      let retransmit: NodeJS.Timeout | undefined;
      const send = () => {
        this.send(data, d.target.host, d.target.port);
        retransmit = setTimeout(send, interval);
        interval = Math.min(interval * 2, 4000);
      };
      const finish = (status: number | undefined) => {
        clearTimeout(timerF);
        clearTimeout(retransmit);
        this.pending.delete(branch);
        resolve(status);
      };
      const timerF = setTimeout(() => finish(undefined), 32_000);
      this.pending.set(branch, finish);
      send();
    });
  }

  /** A NOTIFY to Herald for a dialog that does not exist. */
  strayNotify(herald: { host: string; port: number }): Promise<number | undefined> {
    this.dialogs.set('stray', { callId: 'stray', fromTag: rnd(), toTag: rnd(), from: 'sip:x@example.test', uri: BOB, target: herald, cseq: 0 });
    return this.notify('stray', 'active;expires=60', pidf(BOB, 'stray'));
  }

  /** Waits for a SUBSCRIBE (already received ones after index `from` count). */
  next(pred: (r: Req) => boolean = () => true, timeoutMs = 5000, from = 0): Promise<Req> {
    return this.received.next(pred, timeoutMs, from);
  }
}

