// Shared copies of what many long-lived records hold: a watcher's URI and Contact are the same in each
// of its subscriptions, a presentity's URI in each of its watchers', a phone's flow in all it made.
// A held subscription keeps a pointer instead of a copy of its own.
//
// Strings from the SIP parser are slices of the whole message's text: keeping one would keep the
// message. What is kept here (and what `owned` returns) is a copy of its own.

/** A copy of `s` that holds no reference to the text it was cut from. */
export function owned(s: string): string {
  return JSON.parse(JSON.stringify(s)) as string;
}

/**
 * A bounded pool of shared values by key. When full it starts over (values already handed out stay
 * valid and shared by whoever holds them; only later lookups make new ones), so it never grows past
 * `max` entries however many distinct values pass through.
 */
export class Interner<T> {
  private readonly pool = new Map<string, T>();

  constructor(private readonly max = 200_000) {}

  /** The shared value for `key`, made by `make` the first time. */
  get(key: string, make: () => T): T {
    const hit = this.pool.get(key);
    if (hit !== undefined) return hit;
    const v = make();
    if (this.pool.size >= this.max) this.pool.clear();
    this.pool.set(typeof v === 'string' ? v : owned(key), v);
    return v;
  }
}

/** A pool of strings: `intern(s)` is equal to `s`, shared, and owned (see `owned`). */
export class StringPool {
  private readonly pool: Interner<string>;

  constructor(max?: number) {
    this.pool = new Interner<string>(max);
  }

  intern(s: string): string;
  intern(s: string | undefined): string | undefined;
  intern(s: string | undefined): string | undefined {
    return s === undefined ? undefined : this.pool.get(s, () => owned(s));
  }
}
