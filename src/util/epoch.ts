// Times kept by the hundred thousand (one per held subscription or watcher entry) are stored relative
// to the process's start: V8 keeps an integer below 2^31 unboxed in an object's field, while a
// Date.now() value (about 1.8·10^12) is a boxed number of its own, 16 bytes more per field. They stay
// small for about 24 days of uptime and stay correct after (boxed, like before).

/** The process's start, in Date.now() milliseconds. */
export const EPOCH = Date.now();
