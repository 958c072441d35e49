import { Backoff } from './backoff.ts';
import type { Clock } from './clock.ts';
import { SweepError, toSweepError } from './errors.ts';
import type { Logger } from './log.ts';

/** Failures worth waiting out: the server is unreachable or slow, not refusing us. */
export const TRANSIENT_CODES = new Set(['OFFLINE', 'TIMEOUT', 'CLOSED', 'RATE_LIMITED']);

export interface RetryOptions {
  clock: Clock;
  log: Logger;
  what: string;
  initialMs?: number;
  maxMs?: number;
  random?: () => number;
  /** Stops retrying: the pending wait ends and `retry` rejects CLOSED. */
  signal?: AbortSignal;
  /** Which failures are worth waiting out; TRANSIENT_CODES by default. */
  retryable?: (e: SweepError) => boolean;
}

/**
 * Runs `attempt` until it succeeds, waiting with exponential back-off and full jitter between
 * transient failures (a fleet that lost its server must not return in step). A refusal such as
 * UNAUTHORIZED is final and rejects at once.
 */
export async function retry<T>(attempt: () => Promise<T>, opts: RetryOptions): Promise<T> {
  const backoff = new Backoff({ initialMs: opts.initialMs ?? 1000, maxMs: opts.maxMs ?? 60_000, ...(opts.random ? { random: opts.random } : {}) });
  for (let n = 1; ; n++) {
    if (opts.signal?.aborted) throw new SweepError('CLOSED', `${opts.what}: stopped`);
    try {
      return await attempt();
    } catch (err) {
      const e = toSweepError(err);
      if (!(opts.retryable ? opts.retryable(e) : TRANSIENT_CODES.has(e.code))) throw e;
      const waitMs = backoff.next();
      opts.log.warn({ attempt: n, code: e.code, reason: e.message, retryInMs: waitMs }, `${opts.what} failed; retrying`);
      await new Promise<void>((resolve) => {
        const timer = opts.clock.setTimeout(resolve, waitMs);
        opts.signal?.addEventListener(
          'abort',
          () => {
            opts.clock.clear(timer);
            resolve();
          },
          { once: true },
        );
      });
    }
  }
}
