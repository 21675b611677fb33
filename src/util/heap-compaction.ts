// Has V8 compact its old generation after a storm, while traffic keeps it from doing so by itself.
//
// Why: a full GC evacuates only pages that are mostly empty (over ~70% free, and a few MB of live
// objects at most per GC); the rest stays where it is. A SUBSCRIBE storm promotes each server
// transaction (held for Timer J, 32 s over UDP) next to the subscription that outlives it, so once
// the transactions are gone the pages are about half full, below that threshold, and stay so. V8's
// memory reducer compacts harder, but only once the process is idle, which a server under steady
// traffic never is. Measured at 100,000 held after Timer J: old space 230 MB committed for 104 MB
// used, 1.3 KB per held subscription of pages holding nothing.
//
// So when the old space's free bytes pass a bound (and a quarter of what it uses), V8's
// --compact-on-every-full-gc is set until a later look finds the space compact: the next full GC,
// whenever V8 makes it, evacuates every page with free space. Such a GC costs about twice a normal
// one (measured, forced and synchronous: 72 → 160 ms at 54 MB live, 0.53 → 1.03 s at 387 MB live, the
// latter giving back 317 MB), hence only then, and off again afterwards. The bound's quarter of the
// space used keeps a large heap with modest free space from being copied whole for little.
// v8.setFlagsFromString after start is Node's documented way to change a V8 flag, "with care": this
// one is a plain switch V8 reads when it picks the pages to evacuate at the start of each full GC.
import v8 from 'node:v8';

export interface OldSpace {
  /** Bytes the old space has committed (pages) and bytes its objects use. */
  committed: number;
  used: number;
}

export function oldSpace(): OldSpace {
  const s = v8.getHeapSpaceStatistics().find((x) => x.space_name === 'old_space');
  return { committed: s?.space_size ?? 0, used: s?.space_used_size ?? 0 };
}

export function setFullCompaction(on: boolean): void {
  v8.setFlagsFromString(on ? '--compact-on-every-full-gc' : '--no-compact-on-every-full-gc');
}

export class OldSpaceCompactor {
  private on = false;
  /** Times a full compaction was asked for. */
  requests = 0;

  constructor(
    private readonly maxFreeBytes: number,
    private readonly space: () => OldSpace = oldSpace,
    private readonly setCompaction: (on: boolean) => void = setFullCompaction,
  ) {}

  /** Looks at the old space once: 'on' when a compaction is now asked for, 'off' when one is no longer needed. */
  check(): 'on' | 'off' | undefined {
    if (this.maxFreeBytes <= 0) return undefined;
    const { committed, used } = this.space();
    const free = committed - used;
    const bound = Math.max(this.maxFreeBytes, used / 4);
    if (!this.on && free >= bound) {
      this.toggle(true);
      this.requests++;
      return 'on';
    }
    if (this.on && free < bound / 2) {
      this.toggle(false);
      return 'off';
    }
    return undefined;
  }

  /** Leaves V8 as it was (a stopped server in a process that goes on, as in the tests). */
  stop(): void {
    if (this.on) this.toggle(false);
  }

  private toggle(on: boolean): void {
    this.on = on;
    this.setCompaction(on);
  }
}
