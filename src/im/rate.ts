// Messages per sender (a token bucket each): a sender may send `burst` at once and `rate` a second
// after that. Bounded: at most `maxSenders` buckets; a full bucket carries no information and is
// dropped first, so the table holds only senders who are sending now.

export interface RateOptions {
  /** Tokens added per second. */
  rate: number;
  /** Bucket size. */
  burst: number;
  maxSenders?: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class SenderRate {
  private readonly buckets = new Map<string, Bucket>();
  private readonly max: number;

  constructor(private readonly o: RateOptions) {
    this.max = o.maxSenders ?? 100_000;
  }

  /** Takes one token; returns 0 when allowed, else the seconds until one is there (for Retry-After). */
  take(sender: string, now = Date.now()): number {
    let b = this.buckets.get(sender);
    if (b) {
      b.tokens = Math.min(this.o.burst, b.tokens + ((now - b.at) / 1000) * this.o.rate);
      b.at = now;
      // Refreshed senders move to the end: the map's order is then least recently seen first.
      this.buckets.delete(sender);
    } else {
      if (this.buckets.size >= this.max) this.evict(now);
      b = { tokens: this.o.burst, at: now };
    }
    this.buckets.set(sender, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.o.rate));
  }

  private evict(now: number): void {
    for (const [k, b] of this.buckets) {
      // The least recently seen first; one that would be full again carries nothing.
      if (b.tokens + ((now - b.at) / 1000) * this.o.rate >= this.o.burst || this.buckets.size >= this.max) this.buckets.delete(k);
      if (this.buckets.size < this.max) return;
    }
  }

  get size(): number {
    return this.buckets.size;
  }
}
