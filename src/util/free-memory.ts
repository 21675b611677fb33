// Gives the C heap's free memory back to the system once glibc keeps more of it than a bound
// (glibc's malloc_trim(3)).
//
// Why: glibc hands freed memory back to the kernel only from the top of a heap. Node's UDP receive
// path allocates libuv's suggested 64 KB for every datagram and frees it once the datagram has been
// copied out; during a storm (a restart, a site of phones subscribing at once) small allocations
// that live on settle between those blocks, and afterwards glibc keeps tens of megabytes free that it
// can never trim from the top. Measured at 100,000 held subscriptions: 52 of the main arena's 66 MB
// were free chunks, about 380 B per held subscription, more than a third of the 1 KB a subscription
// may cost (issue 9). malloc_trim(0) gives back every whole free page inside every arena (madvise
// MADV_DONTNEED) and keeps the chunks for reuse; a page touched again costs one page fault.
//
// malloc_trim releases free pages inside every arena but the top of a thread's arena (the malloc heaps
// of V8's and SQLite's threads); glibc trims those tops itself on free() past M_TRIM_THRESHOLD, a bound
// it raises as large blocks come and go (up to 64 MB). Loading the allocator fixes it at glibc's own
// starting value (128 KB, which also fixes the mmap threshold at its 128 KB default): at 100,000 held
// the thread arenas then grew 2 MB in the second half instead of 11 MB (220 B per subscription).
//
// Node has no foreign-function interface of its own and no package exports malloc_trim, so koffi (a
// maintained FFI whose npm packages carry prebuilt binaries) calls it. koffi is an optional
// dependency: where it or glibc is missing (musl, macOS, Windows) nothing is trimmed and the start
// says so once.
import type * as Koffi from 'koffi';

/** The two glibc calls the returner needs. */
export interface Allocator {
  /** Bytes in free chunks over all arenas (mallinfo2's fordblks), resident or not. */
  freeBytes(): number;
  /** malloc_trim(0): true when some memory was given back. */
  trim(): boolean;
}

/** M_TRIM_THRESHOLD (malloc.h) and the value it is fixed at: glibc's own default, without the rises. */
const M_TRIM_THRESHOLD = -1;
const TRIM_THRESHOLD = 128 * 1024;

/** glibc's allocator through koffi (its trim threshold fixed, see above), or why it cannot be had here. */
export async function glibcAllocator(): Promise<Allocator | string> {
  if (process.platform !== 'linux') return `not Linux (${process.platform})`;
  let koffi: typeof Koffi;
  try {
    koffi = await import('koffi');
  } catch (e) {
    return `the optional package koffi cannot be loaded (${(e as Error).message})`;
  }
  try {
    const libc = koffi.load('libc.so.6');
    // struct mallinfo2 (glibc ≥ 2.33): ten size_t fields, in this order.
    const fields = ['arena', 'ordblks', 'smblks', 'hblks', 'hblkhd', 'usmblks', 'fsmblks', 'uordblks', 'fordblks', 'keepcost'];
    const info = koffi.struct('mallinfo2', Object.fromEntries(fields.map((f) => [f, 'size_t'])));
    const mallinfo2 = libc.func('mallinfo2', info, []);
    const mallocTrim = libc.func('int malloc_trim(size_t pad)');
    const mallopt = libc.func('int mallopt(int param, int value)');
    mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD);
    return {
      freeBytes: () => Number((mallinfo2() as { fordblks: number | bigint }).fordblks),
      trim: () => mallocTrim(0) === 1,
    };
  } catch (e) {
    return `glibc's mallinfo2/malloc_trim not found (${(e as Error).message})`;
  }
}

export interface TrimReport {
  /** Free bytes glibc held when the trim was decided. */
  free: number;
  /** Resident bytes the process gave back (RSS before − after; can be 0 when the pages were already out). */
  returned: number;
}

/** After this many checks with no new free memory, trim all the same (a storm may have reused and freed the same chunks). */
const FORCE_AFTER_CHECKS = 30;

/**
 * Decides when to trim: when glibc holds at least `maxFreeBytes` free and a quarter of that has been
 * freed since the lowest point seen since the last trim (new free pages, likely resident), or every
 * FORCE_AFTER_CHECKS checks while it holds that much. One check costs a mallinfo2 walk of the bins;
 * a trim a walk plus madvise calls, a few milliseconds for a heap of tens of megabytes.
 */
export class FreeMemoryReturner {
  private low = 0;
  private checksSinceTrim = 0;
  /** Resident bytes given back so far (herald_free_memory_returned_bytes_total). */
  returnedBytes = 0;

  constructor(
    private readonly allocator: Allocator,
    private readonly maxFreeBytes: number,
    private readonly rss: () => number = process.memoryUsage.rss,
  ) {}

  /** Looks at the allocator once; trims if it is time, and says what that gave back. */
  check(): TrimReport | undefined {
    const free = this.allocator.freeBytes();
    this.low = Math.min(this.low, free);
    this.checksSinceTrim++;
    if (this.maxFreeBytes <= 0 || free < this.maxFreeBytes) return undefined;
    if (free - this.low < this.maxFreeBytes / 4 && this.checksSinceTrim < FORCE_AFTER_CHECKS) return undefined;
    const before = this.rss();
    this.allocator.trim();
    const returned = Math.max(0, before - this.rss());
    this.low = free;
    this.checksSinceTrim = 0;
    this.returnedBytes += returned;
    return { free, returned };
  }
}
