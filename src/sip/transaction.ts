// Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2); Herald's methods are all non-INVITE.
//
// Why not the `sip` package's transaction layer: its Timer E doubles without the T2 cap, Timer J and
// Timer K run their full unreliable-transport length over TCP too (holding every response for 32 s),
// one setTimeout per server transaction, and branches carry only 20 bits of randomness. Here server
// transactions live in a FIFO (they all have the same lifetime) swept once a second.
import { randomBytes } from 'node:crypto';
import type { SipRequest } from './message.js';

export const T1 = 500;
export const T2 = 4000;
export const T4 = 5000;
const TIMER_J_UNRELIABLE = 64 * T1;

let branchCounter = 0;
const branchPrefix = `z9hG4bK${randomBytes(6).toString('hex')}`;

/** A branch unique across this process and (by its random prefix) across restarts (RFC 3261 §8.1.1.7). */
export function newBranch(): string {
  branchCounter = (branchCounter + 1) % Number.MAX_SAFE_INTEGER;
  return `${branchPrefix}.${branchCounter.toString(36)}`;
}

/** Whether a branch is one this process generated (a request that comes back through Herald: a loop). */
export function isOwnBranch(branch: string | null | undefined): boolean {
  return typeof branch === 'string' && branch.startsWith(`${branchPrefix}.`);
}

/** RFC 3261 §17.2.3: branch + sent-by + method identify a server transaction. */
export function serverKey(rq: SipRequest): string | undefined {
  const top = rq.via[0];
  const branch = top?.params['branch'];
  if (!top || !branch || !branch.startsWith('z9hG4bK')) {
    // RFC 2543 peers: fall back to the §17.2.3 tuple (From tag, Call-ID, CSeq, top Via).
    return top ? `${rq.from.params['tag'] ?? ''}|${rq.callId}|${rq.cseq.seq}|${top.host}:${top.port ?? ''}|${rq.method}` : undefined;
  }
  const method = rq.method === 'ACK' ? 'INVITE' : rq.method;
  return `${branch}|${top.host}:${top.port ?? ''}|${method}`;
}

interface ServerEntry {
  /** The last response sent, or undefined while the TU has not answered (Trying). */
  response: Buffer | undefined;
  final: boolean;
  resend: (data: Buffer) => void;
}

/** Server transactions: absorb retransmissions and replay the last response. */
export class ServerTransactions {
  private readonly live = new Map<string, ServerEntry>();
  private readonly expiry: { key: string; at: number; bytes: number }[] = [];
  private head = 0;
  private retainedBytes = 0;

  /**
   * Timer J keeps a final response for retransmissions only when it is at most `maxResponseBytes`
   * and all kept responses stay within `maxTotalBytes` (issue 16: 5,000 OPTIONS with 3,000-entry Via
   * lists held 600 MB for 32 s). A response not kept still lets the transaction absorb
   * retransmissions; they go unanswered, and the client's Timer F ends its wait.
   */
  constructor(
    private readonly maxResponseBytes = 16 * 1024,
    private readonly maxTotalBytes = 64 * 1024 * 1024,
  ) {}

  get size(): number {
    return this.live.size;
  }

  /** Returns true when the request is a retransmission (already handled; the caller must drop it). */
  absorb(key: string): boolean {
    const e = this.live.get(key);
    if (!e) return false;
    if (e.response) e.resend(e.response);
    return true;
  }

  open(key: string, resend: (data: Buffer) => void): void {
    this.live.set(key, { response: undefined, final: false, resend });
  }

  /** Records a response; a final one starts Timer J (0 for reliable transports). */
  respond(key: string, data: Buffer, final: boolean, reliable: boolean, now: number): void {
    const e = this.live.get(key);
    if (!e || e.final) return;
    e.final = final;
    if (!final) {
      e.response = data;
      return;
    }
    if (reliable) {
      this.live.delete(key);
      return;
    }
    const keep = data.length <= this.maxResponseBytes && this.retainedBytes + data.length <= this.maxTotalBytes;
    e.response = keep ? data : undefined;
    const bytes = keep ? data.length : 0;
    this.retainedBytes += bytes;
    this.expiry.push({ key, at: now + TIMER_J_UNRELIABLE, bytes });
  }

  sweep(now: number): void {
    while (this.head < this.expiry.length && this.expiry[this.head]!.at <= now) {
      const x = this.expiry[this.head]!;
      this.live.delete(x.key);
      this.retainedBytes -= x.bytes;
      this.head++;
    }
    if (this.head > 4096 && this.head * 2 > this.expiry.length) {
      this.expiry.splice(0, this.head);
      this.head = 0;
    }
  }

  clear(): void {
    this.live.clear();
    this.expiry.length = 0;
    this.head = 0;
    this.retainedBytes = 0;
  }
}

interface ClientEntry {
  onFinal: (r: unknown) => void;
  timerE: NodeJS.Timeout | undefined;
  timerF: NodeJS.Timeout;
  done: boolean;
}

/** Client transactions: retransmit over UDP (Timer E), time out (Timer F), match responses by branch. */
export class ClientTransactions<R> {
  private readonly live = new Map<string, ClientEntry>();

  get size(): number {
    return this.live.size;
  }

  start(key: string, send: () => void, reliable: boolean, onFinal: (r: R | undefined) => void): void {
    let interval = T1;
    const entry: ClientEntry = {
      onFinal: onFinal as (r: unknown) => void,
      timerE: undefined,
      timerF: setTimeout(() => this.finish(key, undefined), 64 * T1),
      done: false,
    };
    // Live before the first send: a send that fails at once finishes the transaction (and its timers).
    this.live.set(key, entry);
    send();
    if (!reliable && this.live.get(key) === entry) {
      const retransmit = () => {
        send();
        interval = Math.min(interval * 2, T2);
        if (this.live.get(key) === entry) entry.timerE = setTimeout(retransmit, interval);
      };
      entry.timerE = setTimeout(retransmit, interval);
    }
  }

  /** A provisional response: keep retransmitting at T2 (Proceeding). */
  provisional(key: string): void {
    const e = this.live.get(key);
    if (e?.timerE) {
      clearTimeout(e.timerE);
      e.timerE = undefined;
    }
  }

  /** Returns false when no transaction matched (stray response, dropped by the caller). */
  finish(key: string, response: R | undefined): boolean {
    const e = this.live.get(key);
    if (!e) return false;
    this.live.delete(key);
    if (e.timerE) clearTimeout(e.timerE);
    clearTimeout(e.timerF);
    // Completed state (Timer K) only absorbs retransmitted responses; a stray one finds no entry and
    // is dropped, which is the same outcome, so no entry is kept.
    e.onFinal(response);
    return true;
  }

  clear(): void {
    for (const [k] of this.live) this.finish(k, undefined);
  }
}
