// Counts per key that vanish at zero: what one source address holds (subscriptions, publications),
// so that the caps of [limits] are one map look-up and the map never keeps addresses that hold nothing.
export class Tally<K> {
  private readonly counts = new Map<K, number>();

  get(key: K): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: K): void {
    this.counts.set(key, this.get(key) + 1);
  }

  remove(key: K): void {
    const n = this.get(key) - 1;
    if (n <= 0) this.counts.delete(key);
    else this.counts.set(key, n);
  }

  /** Moves one count from one key to another (a refresh from a new address). */
  move(from: K, to: K): void {
    if (from === to) return;
    this.remove(from);
    this.add(to);
  }

  clear(): void {
    this.counts.clear();
  }
}
