// Expiry by the second: keys are bucketed by the second they expire in and swept once a second.
// O(1) to add, move and remove, and no timer per subscription or publication, so a hundred thousand
// of them cost a hundred thousand map entries and nothing more.
export class ExpiryWheel<K> {
  private readonly buckets = new Map<number, Set<K>>();
  private readonly slotOf = new Map<K, number>();
  /** The last second swept; undefined before the first sweep (the wheel follows the caller's clock). */
  private lastSwept: number | undefined;

  /** Schedules (or moves) a key to expire at `atMs`. */
  set(key: K, atMs: number): void {
    this.delete(key);
    // A time already past goes into the next sweep, never into a bucket the sweep has passed.
    const slot = Math.max(Math.ceil(atMs / 1000), (this.lastSwept ?? -Infinity) + 1);
    let b = this.buckets.get(slot);
    if (!b) {
      b = new Set();
      this.buckets.set(slot, b);
    }
    b.add(key);
    this.slotOf.set(key, slot);
  }

  delete(key: K): void {
    const slot = this.slotOf.get(key);
    if (slot === undefined) return;
    this.slotOf.delete(key);
    const b = this.buckets.get(slot);
    b?.delete(key);
    if (b && b.size === 0) this.buckets.delete(slot);
  }

  /** Removes and returns the keys whose time has come. */
  due(nowMs: number): K[] {
    const now = Math.floor(nowMs / 1000);
    const out: K[] = [];
    // Normally one bucket a second; after a long pause (or a clock jump) sweep what the map holds.
    if (this.lastSwept === undefined || now - this.lastSwept > 3600) {
      for (const [slot, b] of this.buckets) if (slot <= now) this.take(slot, b, out);
    } else {
      for (let s = this.lastSwept + 1; s <= now; s++) {
        const b = this.buckets.get(s);
        if (b) this.take(s, b, out);
      }
    }
    this.lastSwept = now;
    return out;
  }

  private take(slot: number, b: Set<K>, out: K[]): void {
    for (const k of b) {
      out.push(k);
      this.slotOf.delete(k);
    }
    this.buckets.delete(slot);
  }

  get size(): number {
    return this.slotOf.size;
  }
}

/**
 * Expiry by the second for records that carry their own slot (`expirySlot`): filed in one array per
 * second and checked when their second comes, with no map from record to slot. Moving a record files
 * it again; the stale entry is skipped then (its slot no longer matches), so a record costs one array
 * entry per (re)scheduling, not a Map entry and a Set entry.
 */
export class ExpiryBuckets<T extends { expirySlot: number }> {
  private readonly buckets = new Map<number, T[]>();
  private lastSwept: number | undefined;

  /** Schedules (or moves) a record to expire at `atMs`. */
  set(item: T, atMs: number): void {
    const slot = Math.max(Math.ceil(atMs / 1000), (this.lastSwept ?? -Infinity) + 1);
    if (item.expirySlot === slot) return;
    item.expirySlot = slot;
    const b = this.buckets.get(slot);
    if (b) b.push(item);
    else this.buckets.set(slot, [item]);
  }

  /** Unschedules a record (its entry stays until its second, then is skipped). */
  delete(item: T): void {
    item.expirySlot = 0;
  }

  /** Removes and returns the records whose time has come. */
  due(nowMs: number): T[] {
    const now = Math.floor(nowMs / 1000);
    const out: T[] = [];
    const take = (slot: number, b: T[]) => {
      for (const item of b) {
        if (item.expirySlot !== slot) continue;
        item.expirySlot = 0;
        out.push(item);
      }
      this.buckets.delete(slot);
    };
    // Normally one bucket a second; after a long pause (or a clock jump) sweep what the map holds.
    if (this.lastSwept === undefined || now - this.lastSwept > 3600) {
      for (const [slot, b] of this.buckets) if (slot <= now) take(slot, b);
    } else {
      for (let s = this.lastSwept + 1; s <= now; s++) {
        const b = this.buckets.get(s);
        if (b) take(s, b);
      }
    }
    this.lastSwept = now;
    return out;
  }
}

/** Per-key promise chains: operations on one key run in order, others in parallel (RFC 3903 §6). */
export class KeyedQueue {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, op: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(op, op);
    const tail = next.catch(() => undefined);
    this.tails.set(key, tail);
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
