// Answers computed once per key and kept in a bounded table that is emptied when full: the keys a
// server sees repeat (a presentity's URIs, a domain, the element names of PIDF), and a hostile peer
// sending ever new ones only empties it again. Keys longer than `maxKeyLength` are computed, not kept.
export class BoundedMemo<V> {
  private readonly table = new Map<string, V>();

  constructor(
    private readonly compute: (key: string) => V,
    private readonly maxEntries = 4096,
    private readonly maxKeyLength = 256,
  ) {}

  get(key: string): V {
    const known = this.table.get(key);
    if (known !== undefined || this.table.has(key)) return known as V;
    const v = this.compute(key);
    if (key.length <= this.maxKeyLength) {
      if (this.table.size >= this.maxEntries) this.table.clear();
      this.table.set(key, v);
    }
    return v;
  }
}
