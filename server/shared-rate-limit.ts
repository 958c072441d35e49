import pg from 'pg';
import { RateLimiterPostgres, RateLimiterRes } from 'rate-limiter-flexible';
import { SweepError } from '../core/errors.ts';
import { DEFAULT_PER_ADDRESS, DEFAULT_PER_USERNAME, type LoginRateLimiter, type RateRule, type Reservation } from './rate-limit.ts';

/**
 * A11 as every node sees it. The single server counts in its own memory (LoginRateLimiter,
 * sliding windows); a cluster counts in PostgreSQL (rate-limiter-flexible, fixed windows), so a
 * guesser gains nothing by spreading attempts over nodes.
 */
export interface LoginLimiter {
  /** Counts this attempt as a failure until it ends; rejects RATE_LIMITED stating the wait. */
  reserve(username: string, address: string): Promise<Reservation>;
  /** Rejects RATE_LIMITED if either key is locked out, without counting. */
  check(username: string, address: string): Promise<void>;
  recordFailure(username: string, address: string): Promise<void>;
  close(): Promise<void>;
}

/** The in-process limiter behind the shared interface (one node: SQLite). */
export function localLimiter(limiter: LoginRateLimiter): LoginLimiter {
  return {
    reserve: (u, a) => Promise.resolve().then(() => limiter.reserve(u, a)),
    check: (u, a) => Promise.resolve().then(() => limiter.check(u, a)),
    recordFailure: (u, a) => Promise.resolve().then(() => limiter.recordFailure(u, a)),
    close: () => Promise.resolve(),
  };
}

/** Login limits stored in PostgreSQL (the `login_limits` table of migration 003). */
export class PostgresLoginLimiter implements LoginLimiter {
  private readonly pool: pg.Pool;
  private readonly byUser: RateLimiterPostgres;
  private readonly byAddress: RateLimiterPostgres;

  constructor(url: string, rules: { perUsername?: RateRule; perAddress?: RateRule } = {}) {
    this.pool = new pg.Pool({ connectionString: url, max: 4, connectionTimeoutMillis: 5_000, query_timeout: 5_000 });
    this.pool.on('error', () => undefined);
    const make = (prefix: string, rule: RateRule): RateLimiterPostgres =>
      new RateLimiterPostgres({
        storeClient: this.pool,
        tableName: 'login_limits',
        tableCreated: true,
        clearExpiredByTimeout: false,
        keyPrefix: prefix,
        points: rule.maxFailures,
        duration: Math.max(1, Math.ceil(rule.windowMs / 1000)),
      });
    this.byUser = make('user', rules.perUsername ?? DEFAULT_PER_USERNAME);
    this.byAddress = make('addr', rules.perAddress ?? DEFAULT_PER_ADDRESS);
  }

  async reserve(username: string, address: string): Promise<Reservation> {
    await this.take(this.byUser, username, `username "${username}"`);
    try {
      await this.take(this.byAddress, address, `address ${address}`);
    } catch (err) {
      await this.byUser.reward(username, 1).catch(() => undefined);
      throw err;
    }
    let open = true;
    const giveBack = (clearUser: boolean): void => {
      if (!open) return;
      open = false;
      void Promise.all([clearUser ? this.byUser.delete(username) : this.byUser.reward(username, 1), this.byAddress.reward(address, 1)]).catch(() => undefined);
    };
    return {
      succeeded: () => giveBack(true),
      failed: () => {
        open = false;
      },
      release: () => giveBack(false),
    };
  }

  /** Both keys in one query (rate-limiter-flexible's `get` would take one each): every proof login checks. */
  async check(username: string, address: string): Promise<void> {
    const keys = [this.byUser.getKey(username), this.byAddress.getKey(address)];
    const now = Date.now();
    const found = await this.pool
      .query<{ key: string; points: number; expire: string | null }>({ name: 'sweep-limits-check', text: 'SELECT key, points, expire FROM login_limits WHERE key = ANY($1) AND (expire > $2 OR expire IS NULL)', values: [keys, now] })
      .catch((err: unknown) => unreachable(err));
    for (const [limiter, key, what] of [
      [this.byUser, keys[0], `username "${username}"`],
      [this.byAddress, keys[1], `address ${address}`],
    ] as const) {
      const row = found.rows.find((r) => r.key === key);
      if (row && row.points >= limiter.points) throw limited(what, row.expire === null ? -1 : Number(row.expire) - now);
    }
  }

  async recordFailure(username: string, address: string): Promise<void> {
    await Promise.all([this.byUser.penalty(username, 1), this.byAddress.penalty(address, 1)]).catch((err: unknown) => unreachable(err));
  }

  close(): Promise<void> {
    return this.pool.end();
  }

  private async take(limiter: RateLimiterPostgres, key: string, what: string): Promise<void> {
    try {
      await limiter.consume(key, 1);
    } catch (err) {
      if (err instanceof RateLimiterRes) throw limited(what, err.msBeforeNext);
      unreachable(err);
    }
  }
}

function limited(what: string, msBeforeNext: number): SweepError {
  return new SweepError('RATE_LIMITED', `too many failed logins for ${what}; retry after ${Math.max(1, Math.ceil(msBeforeNext / 1000))} s`);
}

function unreachable(err: unknown): never {
  throw new SweepError('BUSY', 'login: the account store (its login limits) is not reachable; retry in a few seconds', { cause: err });
}
