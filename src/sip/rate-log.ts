// A warning that the network can trigger at will (a malformed message, an address it made up) is
// written at most `perSecond` times a second; the rest are counted and reported once per window, so
// a flood cannot turn the log into the bottleneck.
import type { Logger } from 'pino';

export class RateLimitedLog {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly log: Logger,
    private readonly message: string,
    private readonly perSecond = 10,
  ) {}

  report(fields: Record<string, unknown>): void {
    const now = Date.now();
    if (now - this.windowStart >= 1000) {
      if (this.suppressed > 0) this.log.warn({ suppressed: this.suppressed }, `${this.message} (more, not logged)`);
      this.windowStart = now;
      this.inWindow = 0;
      this.suppressed = 0;
    }
    if (++this.inWindow <= this.perSecond) this.log.warn(fields, this.message);
    else this.suppressed++;
  }
}
