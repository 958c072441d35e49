import { Backoff } from '../backoff.ts';
import type { Clock } from '../clock.ts';

/** Why links to one peer keep failing (issue 17): shown to the user, published by diagnostics. */
export interface LinkProblem {
  peerId: string;
  /** The last failure, in words (a timeout, no working path, the peer offline, a refused hello). */
  reason: string;
  /** Failed attempts in a row. */
  attempts: number;
  /** clock.now() of the first failure in this row. */
  since: number;
}

/**
 * Failed link set-ups per peer: the reason of the last one and how long to wait before the next
 * try (L4 with back-off: a random wait up to 1 s, its bound doubling up to 30 s), so an
 * unreachable peer is not retried every second forever. A link that becomes ready clears its
 * peer's row.
 */
export class LinkFailures {
  private readonly rows = new Map<string, { problem: LinkProblem; backoff: Backoff; delayMs: number }>();

  constructor(
    private readonly clock: Clock,
    private readonly backoff: { initialMs: number; maxMs: number } = { initialMs: 1000, maxMs: 30_000 },
  ) {}

  failed(peerId: string, reason: string): LinkProblem {
    let row = this.rows.get(peerId);
    if (!row) {
      row = { problem: { peerId, reason, attempts: 0, since: this.clock.now() }, backoff: new Backoff(this.backoff), delayMs: 0 };
      this.rows.set(peerId, row);
    }
    row.problem.reason = reason;
    row.problem.attempts += 1;
    row.delayMs = row.backoff.next();
    return { ...row.problem };
  }

  succeeded(peerId: string): void {
    this.rows.delete(peerId);
  }

  /** How long to wait before trying `peerId` again: 1 s after a link that worked, backed off after failures. */
  retryDelayMs(peerId: string): number {
    return this.rows.get(peerId)?.delayMs ?? this.backoff.initialMs;
  }

  problem(peerId: string): LinkProblem | undefined {
    const row = this.rows.get(peerId);
    return row && { ...row.problem };
  }

  problems(): LinkProblem[] {
    return [...this.rows.values()].map((r) => ({ ...r.problem }));
  }
}
