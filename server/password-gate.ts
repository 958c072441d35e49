import { availableParallelism } from 'node:os';
import { SweepError } from '../core/errors.ts';
import { verifyPassword } from './passwords.ts';

export interface PasswordCheckOptions {
  /** Argon2id verifications running at once; default defaultPasswordConcurrency() (each takes ~24 ms of one core). */
  concurrency?: number;
  /** Verifications allowed to wait for a turn; beyond this a login is refused RATE_LIMITED. Default 16. */
  queue?: number;
  /** From 0 to 1, spreads the waits a refusal asks for (a test passes its own). */
  random?: () => number;
  /** Monotonic ms for timing the checks (performance.now; a test passes its own), as LoginGate. */
  now?: () => number;
  /**
   * Asked as each check is about to start (at once or after its wait): a refusal means cheaper
   * logins need the cores now (LoginGate.refuseWhileCrowded), and the check does not run.
   */
  yieldTo?: () => SweepError | undefined;
}

/**
 * Argon2 checks at once by default: one fewer than the cores, at least 1 and at most 2, so one
 * core is left to the event loop. On two cores, two checks at once halved the logins a restart
 * storm's node completed while a burst of password logins ran.
 */
export function defaultPasswordConcurrency(cores = availableParallelism()): number {
  return Math.max(1, Math.min(2, cores - 1));
}

export const DEFAULT_PASSWORD_CHECKS = { concurrency: defaultPasswordConcurrency(), queue: 16 } as const;

/**
 * A11: bounds the Argon2 work of logins. At most `concurrency` verifications run and `queue`
 * wait; any more is refused at once with RATE_LIMITED ("server busy"), so a burst of logins can
 * neither pile up CPU work nor push a legitimate login minutes back. The refusal asks for the
 * time the checks in hand take (A17: `retryAfterMs`, from their mean duration so far, plus up to
 * a second at random), not a fixed second for everyone.
 */
export class PasswordGate {
  private running = 0;
  private readonly waiting: Array<() => void> = [];
  private checkedCount = 0;
  private busyCount = 0;
  /** Mean duration of a check (ms), moving; 50 until the first is timed. */
  private meanMs = 50;
  private readonly concurrency: number;
  private readonly queue: number;
  private readonly random: () => number;
  private readonly now: () => number;
  private readonly yieldTo: () => SweepError | undefined;

  constructor(
    opts: PasswordCheckOptions = {},
    private readonly check: (hash: string, password: string) => Promise<boolean> = verifyPassword,
  ) {
    this.concurrency = opts.concurrency ?? DEFAULT_PASSWORD_CHECKS.concurrency;
    this.queue = opts.queue ?? DEFAULT_PASSWORD_CHECKS.queue;
    this.random = opts.random ?? Math.random;
    this.now = opts.now ?? (() => performance.now());
    this.yieldTo = opts.yieldTo ?? (() => undefined);
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 64) {
      throw new SweepError('INVALID_CONFIG', `passwordChecks.concurrency: ${this.concurrency} is not a whole number from 1 to 64`);
    }
    if (!Number.isInteger(this.queue) || this.queue < 0 || this.queue > 10_000) {
      throw new SweepError('INVALID_CONFIG', `passwordChecks.queue: ${this.queue} is not a whole number from 0 to 10000`);
    }
  }

  /** Password verifications run so far. */
  get checked(): number {
    return this.checkedCount;
  }

  /** Logins refused because the queue was full. */
  get refusedBusy(): number {
    return this.busyCount;
  }

  /** Verifies when a slot is free; throws RATE_LIMITED at once if the queue is full. */
  async verify(hash: string, password: string): Promise<boolean> {
    if (this.running >= this.concurrency) {
      if (this.waiting.length >= this.queue) {
        this.busyCount += 1;
        const retryAfterMs = Math.round(((this.running + this.waiting.length) * this.meanMs) / this.concurrency + this.random() * 1000);
        throw new SweepError('RATE_LIMITED', `server busy: ${this.running + this.waiting.length} password checks in progress (at most ${this.concurrency} at once, ${this.queue} waiting); retry after ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else {
      this.running += 1;
    }
    try {
      // A check admitted while the node was quiet may come up in a restart storm's crowd.
      const busy = this.yieldTo();
      if (busy) throw busy;
      this.checkedCount += 1;
      const started = this.now();
      const ok = await this.check(hash, password);
      this.meanMs += (this.now() - started - this.meanMs) / 8;
      return ok;
    } finally {
      // The slot passes straight to the next in line, or is freed.
      const next = this.waiting.shift();
      if (next) next();
      else this.running -= 1;
    }
  }
}
