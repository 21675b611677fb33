// Messages a test peer has received, and the tests waiting for one: the one shape behind the UA's
// nextRequest() and the scripted upstream's next() (a test waits for "the next request matching X",
// which may already have come).

export class Arrivals<T> {
  /** Everything received, in order. */
  readonly all: T[] = [];
  private waiters: { pred: (m: T) => boolean; resolve: (m: T) => void }[] = [];

  constructor(private readonly what: string) {}

  /** Records a message and hands it to the first test waiting for one like it. */
  add(m: T): void {
    this.all.push(m);
    const i = this.waiters.findIndex((w) => w.pred(m));
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
  }

  /** The first message matching `pred` (from index `from`, not in `taken`), received already or within `timeoutMs`. */
  next(pred: (m: T) => boolean, timeoutMs: number, from = 0, taken?: Set<T>): Promise<T> {
    const fits = (m: T): boolean => pred(m) && !taken?.has(m);
    const have = this.all.slice(from).find(fits);
    if (have) return Promise.resolve(have);
    return new Promise((resolve, reject) => {
      const w = { pred: fits, resolve: (m: T) => (clearTimeout(t), resolve(m)) };
      const t = setTimeout(() => {
        this.waiters = this.waiters.filter((x) => x !== w);
        reject(new Error(`no matching ${this.what} in ${timeoutMs} ms (have ${this.all.length})`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }
}
