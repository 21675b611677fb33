// The seam where presence authorization plugs in: the front end asks the authorizer before a watcher
// sees anything, and applies the decision's transformation to the document per watcher.
import type { PidfDocument } from '../formats/pidf.js';
import type { SubHandling } from '../formats/pres-rules.js';

export interface Decision {
  subHandling: SubHandling;
  /** A stable key naming what this watcher may see: watchers with equal keys share one rendered body. */
  view: string;
  /** The watcher's view of the presentity's document (RFC 5025 transformations). */
  transform: (doc: PidfDocument) => PidfDocument;
}

export interface Authorizer {
  /** Loads what decide() needs for a presentity (its rules); decide() is synchronous. */
  prepare?(presentity: string): Promise<void>;
  /**
   * `watcher` is the authenticated address of record, or the anonymous watcher's URI; `sphere` the
   * presentity's current sphere (RFC 5025 §3.1.2), when its document states one.
   */
  decide(watcher: string, presentity: string, sphere?: string): Decision;
  /** Registers a listener for changes of a presentity's rules (the front end re-evaluates its watchers). */
  onChange?(listener: (presentity: string) => void): void;
}

const identity = (d: PidfDocument): PidfDocument => d;

export const allowAll: Authorizer = {
  decide: () => ({ subHandling: 'allow', view: 'full', transform: identity }),
};
