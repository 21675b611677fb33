// Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2); Herald's methods are all non-INVITE.
//
// Why not the `sip` package's transaction layer: its Timer E doubles without the T2 cap, Timer J and
// Timer K run their full unreliable-transport length over TCP too (holding every response for 32 s),
// one setTimeout per server transaction, and branches carry only 20 bits of randomness. Here server
// transactions live in a FIFO (they all have the same lifetime) swept once a second.
import { randomBytes } from 'node:crypto';
import type { Flow, SipRequest } from './message.js';
import { owned } from '../util/intern.js';

export const T1 = 500;
export const T2 = 4000;
export const T4 = 5000;
const TIMER_J_UNRELIABLE = 64 * T1;

let branchCounter = 0;
const branchPrefix = `z9hG4bK${randomBytes(6).toString('hex')}`;
const ownPrefix = `${branchPrefix}.`;

/**
 * A new client transaction's number. Its branch (branchOf) is unique across this process and, by
 * its random prefix, across restarts (RFC 3261 §8.1.1.7); the number is the transaction's key, so a
 * response is matched on a small integer, not on a string built per request and per response.
 */
export function newTransactionId(): number {
  branchCounter = (branchCounter + 1) % Number.MAX_SAFE_INTEGER;
  return branchCounter;
}

/** The branch of a client transaction of this process. */
export function branchOf(id: number): string {
  return `${ownPrefix}${id.toString(36)}`;
}

/** The transaction number a branch of this process carries; -1 for any other branch. */
export function transactionIdOf(branch: string | null | undefined): number {
  if (typeof branch !== 'string' || !branch.startsWith(ownPrefix) || branch.length > ownPrefix.length + 11) return -1;
  const digits = branch.slice(ownPrefix.length);
  const id = parseInt(digits, 36);
  // parseInt stops at the first non-digit: only the exact text branchOf() writes is ours.
  return Number.isSafeInteger(id) && id.toString(36) === digits ? id : -1;
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

/**
 * What a server transaction keeps: the serialized last response and where it went, nothing of the
 * request (a held subscription's SUBSCRIBE would otherwise live on through Timer J).
 */
interface ServerEntry {
  /** The transaction's key, an own copy: the caller's is cut from the request's text. */
  key: string;
  /**
   * The last response sent (its bytes as a latin1 string: byte for byte, on V8's heap), or undefined
   * while the TU has not answered (Trying). Not the Buffer: a small Buffer is a slice of an 8 KB pool
   * slab, and thousands kept 32 s each leave the C allocator's arena grown after a storm.
   */
  response: string | undefined;
  final: boolean;
  flow: Flow | undefined;
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
    /** Sends a retransmitted response. */
    private readonly send: (flow: Flow, data: Buffer) => void,
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
    if (e.response !== undefined && e.flow) this.send(e.flow, Buffer.from(e.response, 'latin1'));
    return true;
  }

  open(key: string): void {
    const own = owned(key);
    this.live.set(own, { key: own, response: undefined, final: false, flow: undefined });
  }

  /** Records a response sent to `flow`; a final one starts Timer J (0 for reliable transports). */
  respond(key: string, data: Buffer, final: boolean, reliable: boolean, now: number, flow: Flow): void {
    const e = this.live.get(key);
    if (!e || e.final) return;
    e.final = final;
    e.flow = flow;
    if (!final) {
      e.response = data.toString('latin1');
      return;
    }
    if (reliable) {
      this.live.delete(key);
      return;
    }
    const keep = data.length <= this.maxResponseBytes && this.retainedBytes + data.length <= this.maxTotalBytes;
    e.response = keep ? data.toString('latin1') : undefined;
    const bytes = keep ? data.length : 0;
    this.retainedBytes += bytes;
    this.expiry.push({ key: e.key, at: now + TIMER_J_UNRELIABLE, bytes });
  }

  sweep(now: number): void {
    while (this.head < this.expiry.length && this.expiry[this.head]!.at <= now) {
      const x = this.expiry[this.head]!;
      this.live.delete(x.key);
      this.retainedBytes -= x.bytes;
      this.head++;
    }
    // Compacted once half is spent: an entry past its time keeps its key (and the request text the
    // key's pieces were cut from) until then.
    if (this.head > 64 && this.head * 2 > this.expiry.length) {
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
  key: number;
  /** The request's method: a response matches on the branch and the CSeq method (RFC 3261 §17.1.3). */
  method: string;
  send: () => void;
  onFinal: (r: unknown) => void;
  /** Timer E's current interval, 0 once it no longer runs (reliable transport, or Proceeding). */
  interval: number;
  /** When Timer E fires next (ms). */
  nextAt: number;
  /** Timer F (ms). */
  deadline: number;
  done: boolean;
}

/** What a finished entry keeps in place of its request and caller (see finish()). */
const NOTHING = (): void => undefined;

/** Granularity of the client transactions' timer wheel (Timer E may fire up to this much late). */
const WHEEL_TICK_MS = 50;

/**
 * Client transactions: retransmit over UDP (Timer E), time out (Timer F), match responses by branch.
 * Timers E and F of every transaction live in one wheel of 50 ms slots driven by one interval timer
 * while any transaction is open: a NOTIFY costs an array slot, not two setTimeouts and their clears.
 */
export class ClientTransactions<R> {
  private readonly live = new Map<number, ClientEntry>();
  /** Slot number (time / WHEEL_TICK_MS) → the entries to look at then; finished ones are skipped. */
  private readonly wheel = new Map<number, ClientEntry[]>();
  private lastSlot = 0;
  private ticker: NodeJS.Timeout | undefined;

  get size(): number {
    return this.live.size;
  }

  start(key: number, method: string, send: () => void, reliable: boolean, onFinal: (r: R | undefined) => void): void {
    const now = Date.now();
    const entry: ClientEntry = { key, method, send, onFinal: onFinal as (r: unknown) => void, interval: reliable ? 0 : T1, nextAt: now + T1, deadline: now + 64 * T1, done: false };
    this.live.set(key, entry);
    this.schedule(entry, reliable ? entry.deadline : entry.nextAt, now);
    // After the entry exists: a send that fails at once finishes the transaction.
    this.transmit(entry);
  }

  /** Sends (or resends); a send that throws (a closed socket) ends the transaction like a failed one. */
  private transmit(e: ClientEntry): void {
    try {
      e.send();
    } catch {
      this.finish(e.key, undefined);
    }
  }

  /** Returns whether a transaction with this key and method is open. */
  has(key: number, method: string): boolean {
    return this.live.get(key)?.method === method;
  }

  /** A provisional response: Timer E stops, Timer F still runs (Proceeding). */
  provisional(key: number): void {
    const e = this.live.get(key);
    if (e) e.interval = 0;
  }

  /** Returns false when no transaction matched (stray response, dropped by the caller). */
  finish(key: number, response: R | undefined): boolean {
    const e = this.live.get(key);
    if (!e) return false;
    this.live.delete(key);
    e.done = true;
    // Nothing open: the wheel's leftovers are all finished, and no timer should outlive them.
    if (this.live.size === 0) this.stopWheel();
    // Completed state (Timer K) only absorbs retransmitted responses; a stray one finds no entry and
    // is dropped, which is the same outcome, so no entry is kept.
    const onFinal = e.onFinal;
    // The wheel holds a finished entry until its slot comes (Timer E: T1 later over UDP). Without
    // what it sends and whom it tells, it is a few bytes: with them (the request's bytes, its
    // encoder, the caller's promise) every NOTIFY outlived a scavenge or two and was promoted to the
    // old generation (issue 9: ~1.5 kB per NOTIFY, the half-load p99's GC pauses).
    e.send = NOTHING;
    e.onFinal = NOTHING;
    onFinal(response);
    return true;
  }

  clear(): void {
    for (const [k] of this.live) this.finish(k, undefined);
    this.stopWheel();
  }

  private stopWheel(): void {
    this.wheel.clear();
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }

  private schedule(e: ClientEntry, at: number, now: number): void {
    if (!this.ticker) {
      this.lastSlot = Math.floor(now / WHEEL_TICK_MS);
      this.ticker = setInterval(() => this.tick(Date.now()), WHEEL_TICK_MS);
    }
    const slot = Math.max(Math.ceil(at / WHEEL_TICK_MS), this.lastSlot + 1);
    const list = this.wheel.get(slot);
    if (list) list.push(e);
    else this.wheel.set(slot, [e]);
  }

  private tick(now: number): void {
    const upTo = Math.floor(now / WHEEL_TICK_MS);
    if (upTo - this.lastSlot > 1000) {
      // After a long stall (or a clock jump): every slot due, from what the wheel holds.
      for (const [slot, list] of this.wheel) if (slot <= upTo) this.fire(list, now, slot);
    } else {
      for (let slot = this.lastSlot + 1; slot <= upTo; slot++) {
        const list = this.wheel.get(slot);
        if (list) this.fire(list, now, slot);
      }
    }
    this.lastSlot = upTo;
    if (this.live.size === 0) this.stopWheel();
  }

  private fire(list: ClientEntry[], now: number, slot: number): void {
    this.wheel.delete(slot);
    for (const e of list) {
      if (e.done) continue;
      if (now >= e.deadline) {
        this.finish(e.key, undefined); // Timer F
        continue;
      }
      if (e.interval > 0 && now >= e.nextAt) {
        this.transmit(e); // Timer E: retransmit, doubling up to T2
        if (e.done) continue; // the send failed and finished it
        e.interval = Math.min(e.interval * 2, T2);
        e.nextAt = now + e.interval;
      }
      this.schedule(e, e.interval > 0 ? Math.min(e.nextAt, e.deadline) : e.deadline, now);
    }
  }
}
