// Many watchers at once, for tests that need thousands of subscription dialogs (TestUA keeps a full
// parse and a socket per UA): a few UDP sockets, SUBSCRIBEs from the bench's string templates with a
// bounded window and retransmission, every NOTIFY answered 200 and recorded per dialog (Call-ID).
import dgram from 'node:dgram';
import { randomBytes } from 'node:crypto';
import { openConnectedSockets } from '../../bench/udp.js';
import { okFor, receive, pidfBody, publishRequest, subscribeRequest } from '../../bench/sip.js';

export interface SeenNotify {
  cseq: number;
  /** Herald's tag (the NOTIFY's From tag) and the watcher's (its To tag). */
  fromTag: string;
  toTag: string;
  body: string;
}

interface Outstanding {
  data: Buffer;
  sock: number;
  sentAt: number;
  tries: number;
  done: (status: number, msg: string) => void;
}

function headerValue(msg: string, name: RegExp): string {
  const m = name.exec(msg);
  return m ? m[1]!.trim() : '';
}

function tagOf(value: string): string {
  return /;\s*tag=([^;\s>]+)/i.exec(value)?.[1] ?? '';
}

export class BulkWatchers {
  /** Every NOTIFY received (retransmissions once), by Call-ID, in arrival order. */
  readonly notifies = new Map<string, SeenNotify[]>();
  private readonly pending = new Map<string, Outstanding>();
  private readonly seenBranches = new Set<string>();
  private readonly id = randomBytes(3).toString('hex');
  private seq = 0;
  private readonly timer: NodeJS.Timeout;

  private readonly sockets: dgram.Socket[];
  private readonly sentBy: string[];

  private constructor(udp: { sockets: dgram.Socket[]; sentBy: string[] }, readonly domain: string) {
    this.sockets = udp.sockets;
    this.sentBy = udp.sentBy;
    this.sockets.forEach((s, i) => s.on('message', (d) => this.onMessage(i, d)));
    // RFC 3261 Timer E, simplified: resend after a second, five tries at most.
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const [branch, p] of this.pending) {
        if (now - p.sentAt < 1000) continue;
        if (p.tries >= 5) {
          this.pending.delete(branch);
          p.done(0, '');
          continue;
        }
        p.tries++;
        p.sentAt = now;
        this.sockets[p.sock]!.send(p.data);
      }
    }, 200);
  }

  static async open(port: number, sockets = 4, domain = 'example.test'): Promise<BulkWatchers> {
    return new BulkWatchers(await openConnectedSockets('127.0.0.1', port, sockets), domain);
  }

  close(): void {
    clearInterval(this.timer);
    for (const s of this.sockets) s.close();
  }

  private next(): string {
    return `${this.id}${(this.seq++).toString(36)}`;
  }

  private onMessage(sock: number, d: Buffer): void {
    const r = receive(d, this.pending);
    if (!r) return;
    const { p, msg } = r;
    if (r.waiting) {
      r.waiting.done(p.status, msg);
      return;
    }
    if (p.method !== 'NOTIFY') return;
    this.sockets[sock]!.send(Buffer.from(okFor(p), 'latin1'));
    if (this.seenBranches.has(p.branch)) return;
    this.seenBranches.add(p.branch);
    const callId = headerValue(msg, /^(?:Call-ID|i)\s*:(.*)$/im);
    const list = this.notifies.get(callId) ?? [];
    list.push({
      cseq: Number(headerValue(msg, /^CSeq\s*:\s*(\d+)/im)),
      fromTag: tagOf(headerValue(msg, /^(?:From|f)\s*:(.*)$/im)),
      toTag: tagOf(headerValue(msg, /^(?:To|t)\s*:(.*)$/im)),
      body: msg.slice(p.bodyStart),
    });
    this.notifies.set(callId, list);
  }

  private send(sock: number, branch: string, text: string): Promise<{ status: number; msg: string }> {
    return new Promise((resolve) => {
      const data = Buffer.from(text, 'latin1');
      this.pending.set(branch, { data, sock, sentAt: Date.now(), tries: 1, done: (status, msg) => resolve({ status, msg }) });
      this.sockets[sock]!.send(data);
    });
  }

  /**
   * Sends a request built anew (new branch, new dialog) for each try: overload control may answer 503
   * on a busy machine, and it is tried again after a pause, as a client honouring Retry-After would, a
   * bounded number of times.
   */
  private async sendPersistently(sock: number, build: (branch: string) => string): Promise<{ status: number; msg: string }> {
    let r = { status: 0, msg: '' };
    for (let attempt = 0; attempt < 20; attempt++) {
      if (attempt > 0) await new Promise((res) => setTimeout(res, 250));
      const branch = `z9hG4bK${this.next()}`;
      r = await this.send(sock, branch, build(branch));
      if (r.status !== 503) break;
    }
    return r;
  }

  /**
   * `watchersPer` watchers subscribe to each of `presentities` (sip:<prefix><i>@domain), `window` at a
   * time. Resolves with the Call-IDs of the dialogs answered 2xx; the others are counted as failed.
   */
  async subscribe(prefix: string, presentities: number, watchersPer: number, window = 200, expires = 600): Promise<{ callIds: string[]; failed: number }> {
    const total = presentities * watchersPer;
    const callIds: string[] = [];
    let failed = 0;
    let k = 0;
    const worker = async (): Promise<void> => {
      while (k < total) {
        const n = k++;
        const i = Math.floor(n / watchersPer);
        const sock = n % this.sockets.length;
        const user = `w${n % watchersPer}x${prefix}${i}`;
        let callId = '';
        const r = await this.sendPersistently(sock, (branch) => {
          callId = `${this.next()}@bulk`;
          return subscribeRequest({ via: { sentBy: this.sentBy[sock]!, branch }, presentity: `sip:${prefix}${i}@${this.domain}`, watcher: `sip:${user}@${this.domain}`, fromTag: this.next(), callId, contact: `sip:${user}@${this.sentBy[sock]!}`, expires });
        });
        if (r.status >= 200 && r.status < 300) callIds.push(callId);
        else failed++;
      }
    };
    await Promise.all(Array.from({ length: window }, worker));
    return { callIds, failed };
  }

  /** One PUBLISH (initial, no entity-tag) per presentity, with `note`; resolves with the statuses. */
  async publishEach(prefix: string, presentities: number, note: string): Promise<number[]> {
    const out: number[] = [];
    for (let i = 0; i < presentities; i++) {
      const sock = i % this.sockets.length;
      const presentity = `sip:${prefix}${i}@${this.domain}`;
      const r = await this.sendPersistently(sock, (branch) => publishRequest({ via: { sentBy: this.sentBy[sock]!, branch }, presentity, fromTag: this.next(), callId: `${this.next()}@bulk`, cseq: 1, etag: undefined, expires: 600, body: pidfBody(presentity, note, 'open') }));
      out.push(r.status);
    }
    return out;
  }

  /** Waits until `ok(notifies)` holds or `timeoutMs` passes (bounded polling). */
  async until(ok: () => boolean, timeoutMs: number): Promise<boolean> {
    const end = Date.now() + timeoutMs;
    while (Date.now() < end) {
      if (ok()) return true;
      await new Promise((r) => setTimeout(r, 100));
    }
    return ok();
  }
}
