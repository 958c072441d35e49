import { SweepError } from '../core/errors.ts';

export interface LoginGateOptions {
  /** Logins in progress at once; default 32 (a PostgreSQL pool holds 10 connections). */
  concurrency?: number;
  /** Logins allowed to wait at most (memory); default 4096. */
  queue?: number;
  /**
   * A newcomer is refused while the longest-waiting login has waited this long; default 5 s,
   * half a device's request timeout, so a login that is let in is answered before its client
   * gives up.
   */
  maxWaitMs?: number;
  /**
   * A refused login is asked back while this many ms of logins are still ahead of its slot;
   * default half of `maxWaitMs`. It waits in the queue for its turn (the queue takes up to
   * `maxWaitMs` of them), so the node has work in hand when the crowd returns even where it
   * measured its pace low; asked back for the moment the backlog ran out, it idled.
   */
  returnAheadMs?: number;
  /** Monotonic ms (performance.now; a test passes its own). */
  now?: () => number;
  /** Ms the event loop has been busy so far (its utilization's active time; a test passes its own). */
  busyMs?: () => number;
  /** From 0 to 1, spreads the waits a refusal asks for (a test passes its own). */
  random?: () => number;
  /**
   * While logins are refused, at most once per REPORT_MS: how many since the last report, the
   * pace the refused are scheduled at, and the longest wait asked for (for the node's log).
   */
  onRefusals?: (report: RefusalReport) => void;
}

export interface RefusalReport {
  refused: number;
  loginsPerS: number;
  inProgress: number;
  waiting: number;
  maxRetryAfterMs: number;
}

/** Refusals are reported at most this often. */
const REPORT_MS = 1_000;

export const DEFAULT_LOGIN_GATE = { concurrency: 32, queue: 4096, maxWaitMs: 5_000 } as const;

/** The logins completed this long back give the rate a backlog is worked off at. */
const RATE_WINDOW_MS = 5_000;
/** The capacity is worked out again after this many ms at the earliest. */
const CAPACITY_MEMO_MS = 50;
/** Until two logins have completed, each slot is assumed to complete one login per this many ms. */
const PRIOR_LOGIN_MS = 100;
/**
 * A17: a refusal asks for at most this wait, and spreads its clients over up to a second more.
 * Short, because slots further ahead rest on the pace measured while the crowd was refused:
 * in a restart storm that was half the pace the node then worked at, and a 30 s schedule kept
 * the last of the crowd away long after the node could have taken them. A client asked back
 * too early is refused again at the handshake, at little cost, with a slot on a newer measure.
 */
export const MAX_RETRY_AFTER_MS = 10_000;
const SPREAD_MS = 1_000;
/**
 * Once the logins let in during one turn of the event loop have run this long, the next turn goes
 * first (logins let in before then, at most one per slot, still run in this turn).
 */
const TURN_BUDGET_MS = 50;

/**
 * A11: bounds the token and proof logins one node works on at once. The rest wait in turn,
 * unless the queue is full, its head has waited `maxWaitMs`, or at the rate logins complete the
 * newcomer would wait that long (behind a long queue it timed out before its turn, and came
 * back with a longer back-off, its work wasted): then the newcomer is refused at once
 * RATE_LIMITED ("server busy"), before any signature check or store access, and retries with
 * back-off. A restarted cluster node took its whole fleet's logins at once: their queries queued
 * in the PostgreSQL pool until they timed out (BUSY) or their clients gave up, and almost none
 * got through. On SQLite a login runs start to end without yielding, and a slot handed on ran the
 * next at once: one turn of the event loop worked through thousands of logins (13 s) while no
 * connection was accepted and handshakes timed out. So once the logins let in during one turn have
 * run TURN_BUDGET_MS, the rest wait for a later turn, and a crowd waits here, not in the kernel.
 *
 * A17: the refusal says when to come back (`retryAfterMs`): once the logins in progress and
 * waiting are through at the pace the node can work (capacityPerMs), each refused client a slot
 * later than the one refused before it (plus up to a second at random), so the refused crowd
 * returns at the pace the node works, not all at once after a fixed second; and `returnAheadMs`
 * before that slot, to wait for it in the queue rather than leave the node idle until it comes.
 */
export class LoginGate {
  private running = 0;
  private readonly waiting: Array<{ since: number; go: () => void }> = [];
  private busyCount = 0;
  /** Logins completed within RATE_WINDOW_MS, oldest first: when, the event loop's busy ms then, how long the work took. */
  private readonly done: Array<{ at: number; busy: number; took: number }> = [];
  /** The capacity worked out last (capacityPerMs), and when. */
  private capacity: { at: number; perMs: number } | undefined;
  /** The slots given to refused logins that are still ahead, earliest first (A17). */
  private readonly promised: number[] = [];
  /** When the last of the logins refused by refuseNow is due back (A17): until then, password logins wait. */
  private crowdDueBy = Number.NEGATIVE_INFINITY;
  /** When the first login of this turn of the event loop was let in; cleared by the next turn. */
  private turnFrom: number | undefined;
  private readonly concurrency: number;
  private readonly queue: number;
  private readonly maxWaitMs: number;
  private readonly returnAheadMs: number;
  private readonly now: () => number;
  private readonly busyMs: () => number;
  private readonly random: () => number;
  private readonly onRefusals: ((report: RefusalReport) => void) | undefined;
  /** Refusals since the last report, and the longest wait they asked for. */
  private unreported = { since: Number.NEGATIVE_INFINITY, refused: 0, maxRetryAfterMs: 0 };

  constructor(opts: LoginGateOptions = {}) {
    this.concurrency = opts.concurrency ?? DEFAULT_LOGIN_GATE.concurrency;
    this.queue = opts.queue ?? DEFAULT_LOGIN_GATE.queue;
    this.maxWaitMs = opts.maxWaitMs ?? DEFAULT_LOGIN_GATE.maxWaitMs;
    this.returnAheadMs = opts.returnAheadMs ?? this.maxWaitMs / 2;
    this.now = opts.now ?? (() => performance.now());
    this.busyMs = opts.busyMs ?? (() => performance.eventLoopUtilization().active);
    this.random = opts.random ?? Math.random;
    this.onRefusals = opts.onRefusals;
    if (!Number.isInteger(this.concurrency) || this.concurrency < 1 || this.concurrency > 1024) {
      throw new SweepError('INVALID_CONFIG', `logins.concurrency: ${this.concurrency} is not a whole number from 1 to 1024`);
    }
    if (!Number.isInteger(this.queue) || this.queue < 0 || this.queue > 100_000) {
      throw new SweepError('INVALID_CONFIG', `logins.queue: ${this.queue} is not a whole number from 0 to 100000`);
    }
    if (!Number.isFinite(this.maxWaitMs) || this.maxWaitMs < 0) {
      throw new SweepError('INVALID_CONFIG', `logins.maxWaitMs: ${this.maxWaitMs} is not a number of ms (0 or more)`);
    }
    if (!Number.isFinite(this.returnAheadMs) || this.returnAheadMs < 0 || this.returnAheadMs > this.maxWaitMs) {
      throw new SweepError('INVALID_CONFIG', `logins.returnAheadMs: ${this.returnAheadMs} is not a number of ms from 0 to maxWaitMs (${this.maxWaitMs})`);
    }
  }

  /** Logins refused because the node was busy. */
  get refusedBusy(): number {
    return this.busyCount;
  }

  /**
   * Runs `work` when a slot is free; throws RATE_LIMITED at once if the node is too busy to get
   * to it in time, and CLOSED instead of working for a client that gave up meanwhile (`wanted`).
   */
  async run<T>(what: string, work: () => Promise<T>, wanted: () => boolean = () => true): Promise<T> {
    if (this.running < this.concurrency && this.waiting.length === 0 && this.turnLeft()) {
      this.running += 1;
    } else {
      const refusal = this.refuseNow();
      if (refusal) throw refusal;
      // Let in by a login that ends, or by the next turn.
      await new Promise<void>((go) => this.waiting.push({ since: this.now(), go }));
    }
    const startedAt = this.now();
    try {
      if (!wanted()) throw new SweepError('CLOSED', `${what}: the connection closed while the login waited`);
      return await work();
    } finally {
      const now = this.now();
      this.done.push({ at: now, busy: this.busyMs(), took: now - startedAt });
      this.forgetOld(now);
      this.running -= 1;
      this.letIn();
    }
  }

  /**
   * A17: the refusal a login arriving now gets (RATE_LIMITED with its `retryAfterMs`, counted
   * and given its slot), or undefined when it would run or wait its turn. The node asks before
   * the WebSocket handshake too (HTTP 503): refused there, each of a crowd costs it an HTTP
   * answer, not a handshake, a challenge and a proof, and the pace it measures while refusing is
   * nearer the pace it works at once the crowd has gone.
   */
  refuseNow(): SweepError | undefined {
    if (this.running < this.concurrency && this.waiting.length === 0) return undefined;
    const head = this.waiting[0];
    const now = this.now();
    const full = this.waiting.length >= this.queue || (head !== undefined && now - head.since >= this.maxWaitMs) || (this.running >= this.concurrency && (this.waiting.length + 1) / this.capacityPerMs(now) >= this.maxWaitMs);
    if (!full) return undefined;
    const refusal = this.refusal(now);
    this.crowdDueBy = Math.max(this.crowdDueBy, now + (refusal.retryAfterMs ?? 0));
    return refusal;
  }

  /**
   * A11: the refusal for a password login (counted and given its slot as refuseNow's) while every
   * slot is taken, or while logins refused earlier are still due back; undefined otherwise. One
   * Argon2 check costs the cores what twenty proofs do, and a restart storm's returning fleet goes
   * first: a lull while the crowd was away let a hundred checks in, and the storm's logins fell
   * by half for seconds. A refused password login does not prolong the crowd it waits for.
   */
  refuseWhileCrowded(): SweepError | undefined {
    const now = this.now();
    if (this.running >= this.concurrency) return this.refusal(now);
    if (now >= this.crowdDueBy) return undefined;
    return this.refusal(now, `server busy: logins it turned away are due back within ${Math.ceil((this.crowdDueBy - now) / 1000)} s`);
  }

  private refusal(now: number, why?: string): SweepError {
    this.busyCount += 1;
    const retryAfterMs = this.retryAfter();
    this.report(now, retryAfterMs);
    const busy = why ?? `server busy with logins (${this.running} in progress, ${this.waiting.length} waiting, none longer than ${this.maxWaitMs / 1000} s)`;
    return new SweepError('RATE_LIMITED', `${busy}; retry after ${Math.ceil(retryAfterMs / 1000)} s`, { retryAfterMs });
  }

  private report(now: number, retryAfterMs: number): void {
    const u = this.unreported;
    u.refused += 1;
    u.maxRetryAfterMs = Math.max(u.maxRetryAfterMs, retryAfterMs);
    if (!this.onRefusals || now - u.since < REPORT_MS) return;
    this.onRefusals({ refused: u.refused, loginsPerS: Math.round(this.capacityPerMs(now) * 1000), inProgress: this.running, waiting: this.waiting.length, maxRetryAfterMs: u.maxRetryAfterMs });
    this.unreported = { since: now, refused: 0, maxRetryAfterMs: 0 };
  }

  /** Starts waiting logins while slots are free and this turn's budget lasts. */
  private letIn(): void {
    while (this.running < this.concurrency && this.waiting.length > 0 && this.turnLeft()) {
      this.running += 1;
      this.waiting.shift()!.go();
    }
  }

  /** Whether the logins let in during this turn of the event loop have run less than TURN_BUDGET_MS. */
  private turnLeft(): boolean {
    const now = this.now();
    if (this.turnFrom === undefined) {
      this.turnFrom = now;
      setImmediate(() => {
        this.turnFrom = undefined;
        this.letIn();
      });
    }
    return now - this.turnFrom < TURN_BUDGET_MS;
  }

  /** Keeps only the completions of the rate window. */
  private forgetOld(now: number): void {
    while (this.done.length > 0 && now - this.done[0]!.at > RATE_WINDOW_MS) this.done.shift();
  }

  /**
   * Logins per ms the node can complete: those completed lately per ms the event loop was busy
   * meanwhile, not per ms of clock. A node that sent its crowd away completes few while it waits
   * for them, and asked by that rate it sent the next ones away for longer still: it idled through
   * a restart storm. Bounded by the slots over the work's duration, for logins that wait on a
   * store (a busy PostgreSQL) rather than on this loop: its 10th percentile, not its mean, since
   * a few seconds of slow logins (a burst of Argon2 checks on the same cores) dragged the mean
   * down, and the slots given meanwhile kept the crowd away for as long again once they had passed.
   * Worked out at most once per CAPACITY_MEMO_MS: a crowd refused at once asks it thousands of times.
   */
  private capacityPerMs(now: number): number {
    if (this.capacity && now - this.capacity.at < CAPACITY_MEMO_MS && now >= this.capacity.at) return this.capacity.perMs;
    this.forgetOld(now);
    const n = this.done.length;
    if (n < 2) return this.concurrency / PRIOR_LOGIN_MS;
    const first = this.done[0]!;
    const perBusyMs = (n - 1) / Math.max(1, Math.min(now - first.at, this.busyMs() - first.busy));
    const took = this.done.map((d) => d.took).sort((a, b) => a - b)[Math.floor(n / 10)]!;
    const perMs = Math.min(perBusyMs, this.concurrency / Math.max(1, took));
    this.capacity = { at: now, perMs };
    return perMs;
  }

  /**
   * A17: the wait for one refused login: once the logins in progress, those waiting and those
   * told to come back before it (whose slots are still ahead) are through. Counted from the slots
   * still ahead, not after the last slot ever given: a client back at its slot and refused again
   * (others took it) would otherwise push the schedule on twice, and a schedule pushed far ahead
   * while the capacity measured low left the node idle once the capacity was back.
   */
  private retryAfter(): number {
    const now = this.now();
    const perMs = this.capacityPerMs(now);
    let due = 0;
    while (due < this.promised.length && this.promised[due]! <= now) due += 1;
    this.promised.splice(0, due);
    const drained = Math.min(now + (this.running + this.waiting.length) / perMs, now + MAX_RETRY_AFTER_MS);
    const slot = drained + this.promised.length / perMs;
    if (slot <= now + MAX_RETRY_AFTER_MS) {
      this.promised.splice(insertionPoint(this.promised, slot), 0, slot);
      return Math.round(Math.max(0, slot - this.returnAheadMs - now) + this.random() * SPREAD_MS);
    }
    // More refused than the node gets through by the longest wait: anywhere from the drain to it,
    // at random, not all at the longest wait (they came back in one clump, the node idle before).
    const from = Math.max(0, drained - this.returnAheadMs - now);
    return Math.round(from + this.random() * (MAX_RETRY_AFTER_MS - from + SPREAD_MS));
  }
}

/** Where `value` goes in the ascending `sorted` (after equal values). */
function insertionPoint(sorted: readonly number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid]! <= value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
