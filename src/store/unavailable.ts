// The one error that means "the shared store cannot be reached now": the request is answered 500 with
// Retry-After (RFC 3261 §21.5.1, §20.33) instead of being acknowledged, and nothing is logged per
// request — the Redis link logs one line when it goes away and one when it is back.
export class StoreUnavailable extends Error {
  constructor(cause?: unknown) {
    super('the shared store is unreachable', cause === undefined ? undefined : { cause });
    this.name = 'StoreUnavailable';
  }
}

/** Whether an error (or its cause) says the shared store is unreachable. */
export function isStoreUnavailable(e: unknown): boolean {
  for (let x: unknown = e, depth = 0; x instanceof Error && depth < 4; x = x.cause, depth++) {
    if (x instanceof StoreUnavailable) return true;
  }
  return false;
}
