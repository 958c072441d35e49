import { SweepError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/clock.ts';

export interface RateRule {
  /** Failures allowed inside the window; the next attempt is refused. */
  maxFailures: number;
  windowMs: number;
}

export interface LoginRateLimitOptions {
  perUsername?: RateRule;
  /** Higher than per-username: several people may share one NAT address. */
  perAddress?: RateRule;
  clock?: Clock;
  /** Keys tracked per rule at most; the oldest are forgotten first, so memory stays bounded. */
  maxKeys?: number;
}

export const DEFAULT_PER_USERNAME: RateRule = { maxFailures: 5, windowMs: 60_000 };
export const DEFAULT_PER_ADDRESS: RateRule = { maxFailures: 20, windowMs: 60_000 };

/** Failure timestamps per key inside a sliding window. */
class FailureWindow {
  private readonly failures = new Map<string, number[]>();
  constructor(
    readonly rule: RateRule,
    private readonly maxKeys: number,
  ) {}

  /** Ms until `key` may try again, or 0 if it may now. */
  retryAfterMs(key: string, now: number): number {
    const list = this.prune(key, now);
    if (list.length < this.rule.maxFailures) return 0;
    // The attempt is allowed again once enough failures have aged out of the window.
    const oldestThatMustExpire = list[list.length - this.rule.maxFailures] ?? now;
    return Math.max(1, oldestThatMustExpire + this.rule.windowMs - now);
  }

  record(key: string, now: number): void {
    const list = this.prune(key, now);
    list.push(now);
    this.failures.delete(key); // re-insert: Map order = least recently failed first
    this.failures.set(key, list);
    while (this.failures.size > this.maxKeys) {
      const oldest = this.failures.keys().next().value;
      if (oldest === undefined) break;
      this.failures.delete(oldest);
    }
  }

  clear(key: string): void {
    this.failures.delete(key);
  }

  /** Takes back one entry made at `at` (a reservation that turned out not to be a failure). */
  remove(key: string, at: number): void {
    const list = this.failures.get(key);
    const i = list?.lastIndexOf(at) ?? -1;
    if (!list || i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.failures.delete(key);
  }

  private prune(key: string, now: number): number[] {
    const list = (this.failures.get(key) ?? []).filter((t) => t > now - this.rule.windowMs);
    if (list.length === 0) this.failures.delete(key);
    else this.failures.set(key, list);
    return list;
  }
}

/**
 * One login attempt counted from the moment it starts (A11): until it ends it counts as a
 * failure, so parallel attempts cannot all pass the check before any of them fails.
 */
export interface Reservation {
  /** The credentials were right: the attempt is taken back and the username's count cleared. */
  succeeded(): void;
  /** The credentials were wrong: the attempt stays counted as a failure. */
  failed(): void;
  /** Nothing was checked (server busy, connection closed, internal error): the attempt is taken back. */
  release(): void;
}

/**
 * Login throttling by username and by remote address: after `maxFailures` failed logins within
 * `windowMs`, further attempts are refused RATE_LIMITED (before the password is even checked)
 * until old failures age out. Attempts in flight count as failures (A11: reserve, then verify).
 */
export class LoginRateLimiter {
  private readonly clock: Clock;
  private readonly byUser: FailureWindow;
  private readonly byAddress: FailureWindow;

  constructor(opts: LoginRateLimitOptions = {}) {
    this.clock = opts.clock ?? systemClock;
    const maxKeys = opts.maxKeys ?? 10_000;
    this.byUser = new FailureWindow(opts.perUsername ?? DEFAULT_PER_USERNAME, maxKeys);
    this.byAddress = new FailureWindow(opts.perAddress ?? DEFAULT_PER_ADDRESS, maxKeys);
  }

  /** Throws RATE_LIMITED stating the seconds to wait if either the username or the address is locked out. */
  check(username: string, address: string): void {
    const now = this.clock.now();
    const userWait = this.byUser.retryAfterMs(username, now);
    const addrWait = this.byAddress.retryAfterMs(address, now);
    const wait = Math.max(userWait, addrWait);
    if (wait === 0) return;
    const seconds = Math.ceil(wait / 1000);
    const what = userWait >= addrWait ? `username "${username}"` : `address ${address}`;
    throw new SweepError('RATE_LIMITED', `too many failed logins for ${what}; retry after ${seconds} s`);
  }

  /**
   * A11: checks, then counts this attempt at once as a failure until it ends; throws
   * RATE_LIMITED like `check`. Each reservation must end with exactly one of its three calls.
   */
  reserve(username: string, address: string): Reservation {
    this.check(username, address);
    const at = this.clock.now();
    this.byUser.record(username, at);
    this.byAddress.record(address, at);
    let open = true;
    const takeBack = (): void => {
      this.byUser.remove(username, at);
      this.byAddress.remove(address, at);
    };
    return {
      succeeded: () => {
        if (!open) return;
        open = false;
        takeBack();
        this.recordSuccess(username);
      },
      failed: () => {
        open = false;
      },
      release: () => {
        if (!open) return;
        open = false;
        takeBack();
      },
    };
  }

  recordFailure(username: string, address: string): void {
    const now = this.clock.now();
    this.byUser.record(username, now);
    this.byAddress.record(address, now);
  }

  /** A good password clears the username's count; the address keeps its count (one known account must not unlock guessing at others). */
  recordSuccess(username: string): void {
    this.byUser.clear(username);
  }
}
