// The seam where presence authorization plugs in (RFC 5025 pres-rules arrive in a later issue).
// The SIP front end asks the authorizer before a watcher sees anything; until rules exist, every
// watcher is allowed, and that default lives here alone.

/** RFC 5025 §3.2.1 sub-handling values, in increasing order of permission. */
export type SubHandling = 'block' | 'confirm' | 'polite-block' | 'allow';

export interface Decision {
  subHandling: SubHandling;
  /** A stable key naming what this watcher may see: watchers with equal keys share one rendered body. */
  view: string;
}

export interface Authorizer {
  decide(watcher: string, presentity: string): Decision;
  /** Called when a presentity's rules change, so the front end can re-evaluate its watchers. */
  onChange?(listener: (presentity: string) => void): void;
}

export const allowAll: Authorizer = {
  decide: () => ({ subHandling: 'allow', view: 'full' }),
};
