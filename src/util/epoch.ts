// Times kept by the hundred thousand (one per held subscription or watcher entry) are stored relative
// to the process's start: V8 keeps a small integer (a Smi) in an object's field as it is, while a
// Date.now() value (about 1.8·10^12) is a boxed number of its own, 16 bytes more per field. They stay
// small for about 12 days of uptime and stay correct after (boxed, like before).

/** The process's start, in Date.now() milliseconds. */
export const EPOCH = Date.now();

/** 2^30 − 1: the largest integer every V8 build keeps unboxed (31-bit Smis with pointer compression). */
const SMI_MAX = 0x3fff_ffff;

/**
 * `ms` (Date.now() milliseconds) relative to EPOCH, as a small integer while it is one: the
 * difference of two boxed numbers is a boxed number even when it is small, and one boxed value stored
 * into a field makes V8 box that field in every object of its shape — `| 0` gives V8 an int32.
 */
export function sinceEpoch(ms: number): number {
  const d = ms - EPOCH;
  return d >= -SMI_MAX && d <= SMI_MAX && Number.isInteger(d) ? d | 0 : d;
}
