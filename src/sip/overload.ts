// Overload control (RFC 3261 §21.5.4, in the spirit of RFC 6357 §5: refuse early and cheaply rather
// than queue without bound). Two measures of load: the event loop's delay (how late timers fire:
// everything Herald does waits behind it) and the queue depth (requests accepted and not yet given a
// final answer: work promised). Past either limit a new request is answered 503 with Retry-After by
// the SIP stack itself, before any handler parses its body or touches the store. OPTIONS is always
// served (monitors and load balancers must see the node alive and shedding, not dead); requests inside
// a dialog (refreshes, NOTIFYs from upstream: they keep existing state alive and cost little) are shed
// only at twice the queue limit.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';

export interface OverloadOptions {
  /** Event-loop delay (p99 over the last sample, ms) past which new requests are shed; 0: not measured. */
  maxEventLoopDelayMs: number;
  /** Requests in progress past which new ones are shed. */
  maxPendingRequests: number;
  /** Seconds put in Retry-After. */
  retryAfterSeconds: number;
}

export type Admission = 'admit' | 'shed';

const SAMPLE_MS = 250;

export class OverloadGuard {
  private pending = 0;
  private loopDelayMs = 0;
  private histogram: IntervalHistogram | undefined;
  private timer: NodeJS.Timeout | undefined;
  /** Requests answered 503 by the guard (for the bench and metrics). */
  shed = 0;

  constructor(readonly o: OverloadOptions) {}

  start(): void {
    if (this.o.maxEventLoopDelayMs <= 0) return;
    this.histogram = monitorEventLoopDelay({ resolution: 10 });
    this.histogram.enable();
    this.timer = setInterval(() => {
      this.loopDelayMs = this.histogram!.percentile(99) / 1e6;
      this.histogram!.reset();
    }, SAMPLE_MS);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.histogram?.disable();
  }

  /** The current load: the last event-loop delay sample and the queue depth. */
  get load(): { eventLoopDelayMs: number; pending: number } {
    return { eventLoopDelayMs: this.loopDelayMs, pending: this.pending };
  }

  admit(method: string, inDialog: boolean): Admission {
    if (method === 'OPTIONS') return 'admit';
    const limit = inDialog ? 2 * this.o.maxPendingRequests : this.o.maxPendingRequests;
    const slow = this.o.maxEventLoopDelayMs > 0 && this.loopDelayMs > (inDialog ? 2 : 1) * this.o.maxEventLoopDelayMs;
    if (this.pending >= limit || slow) {
      this.shed++;
      return 'shed';
    }
    return 'admit';
  }

  /** A request was accepted (its final answer will call `done`). */
  begin(): void {
    this.pending++;
  }

  done(): void {
    if (this.pending > 0) this.pending--;
  }
}
