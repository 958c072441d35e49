/** Exponential back-off with full jitter, so a fleet that lost its server does not return in step. */
export interface BackoffOptions {
  initialMs: number;
  maxMs: number;
  random?: () => number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /**
   * Delay before the next attempt: anywhere from 0 to the doubling ceiling ("full jitter").
   * No floor: half jitter (ceiling/2 at least) keeps a restarted server's first second empty
   * and then packs the whole fleet into the second half of each window.
   */
  next(): number {
    const ceiling = Math.min(this.opts.maxMs, this.opts.initialMs * 2 ** this.attempt);
    this.attempt += 1;
    const random = this.opts.random ?? Math.random;
    return Math.round(random() * ceiling);
  }

  /**
   * A17: the wait a server that answered asked for (at most `maxMs`), plus up to `initialMs` of
   * jitter. It starts the doubling again: a server busy with a crowd is reachable, and waiting
   * out a ceiling grown towards `maxMs` would leave it idle once the crowd is through.
   */
  asked(retryAfterMs: number): number {
    this.attempt = 0;
    const random = this.opts.random ?? Math.random;
    return Math.min(this.opts.maxMs, Math.max(0, retryAfterMs)) + Math.round(random() * this.opts.initialMs);
  }

  reset(): void {
    this.attempt = 0;
  }
}
