// Answers computed once per key and kept in a bounded table that is emptied when full: the keys a
// server sees repeat (a presentity's URIs, a domain, the element names of PIDF), and a hostile peer
// sending ever new ones only empties it again. Keys longer than `maxKeyLength` are computed, not kept.
//
// A key kept is a copy of its own: the parsers' strings are slices of a whole datagram's text, and a
// kept slice would keep the datagram (several hundred bytes per entry) for as long as the entry lives.
import { owned } from './intern.js';

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
    if (key.length > this.maxKeyLength) return this.compute(key);
    // Computed from the copy, so that an answer cut from the key (a URI's address of record) is a
    // slice of the copy, not of the datagram.
    const own = owned(key);
    const v = this.compute(own);
    if (this.table.size >= this.maxEntries) this.table.clear();
    this.table.set(own, v);
    return v;
  }
}
