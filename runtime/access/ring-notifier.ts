import type { EventBus } from '../../core/bus.ts';
import { toSweepError } from '../../core/errors.ts';
import type { RingNotice } from '../../core/protocol/push.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { Logger } from '../../platform/log.ts';
import type { AccessClient } from './access-client.ts';

/**
 * A16: tells the access server how a household ring this endpoint makes goes (`ring.notify`), so
 * it can push to the household's phones whose page is closed: ringing (with the ring timeout as
 * the push's lifetime), then answered on …, missed or cancelled. A ring notice that cannot go
 * now is worth nothing afterwards; a follow-up is: it clears a closed phone's "ringing"
 * notification, so one that could not go (the access server out of reach, its node gone) goes
 * when the connection is back, for a while.
 */
/** Follow-ups kept for a connection that is back; older ones are dropped (the phone's notification stays). */
const MAX_WAITING = 20;
const WAIT_MS = 10 * 60_000;
/** Refusals that trying again cannot fix. */
const FINAL = new Set(['FORBIDDEN', 'INVALID_MESSAGE', 'UNKNOWN_TYPE', 'TOO_LARGE']);

export class RingNotifier {
  private waiting: Array<{ notice: RingNotice; since: number }> = [];
  /**
   * Sessions rung and not yet followed up (an answered call's later end sends nothing more), with
   * where the ring push went: the follow-up names them, so any node can send it (A16).
   */
  private readonly open = new Map<string, Promise<string[]>>();

  constructor(
    private readonly bus: EventBus<EndpointEvents>,
    private readonly access: Pick<AccessClient, 'request'>,
    private readonly door: string,
    private readonly ringTimeoutMs: number,
    private readonly log: Logger,
  ) {
    bus.on(this, 'ring.started', (e) => {
      const ring = { sessionId: e.sessionId, account: e.account, label: door, state: 'ringing' as const, ttlMs: Math.min(600_000, Math.max(1000, ringTimeoutMs)) };
      this.open.set(e.sessionId, this.send(ring).catch(() => []));
    });
    bus.on(this, 'ring.answered', (e) => this.followUp({ sessionId: e.sessionId, account: e.account, label: door, state: 'answered', by: (e.by.label || e.by.endpointId).slice(0, 64) }));
    bus.on(this, 'ring.ended', (e) => {
      if (e.outcome !== 'answered') this.followUp({ sessionId: e.sessionId, account: e.account, label: door, state: e.outcome });
    });
    bus.on(this, 'access.state', (e) => {
      if (e.connected) this.resend();
    });
  }

  close(): void {
    this.bus.removeOwner(this);
    this.open.clear();
    this.waiting = [];
  }

  private followUp(n: RingNotice): void {
    const ring = this.open.get(n.sessionId);
    if (!ring) return;
    this.open.delete(n.sessionId);
    void ring.then((pushedTo) => this.sendFollowUp(pushedTo.length > 0 ? { ...n, pushedTo } : n));
  }

  private async sendFollowUp(n: RingNotice): Promise<void> {
    const retry = await this.send(n).then(() => false, (err: unknown) => !FINAL.has(toSweepError(err).code));
    if (!retry) return;
    this.waiting.push({ notice: n, since: Date.now() });
    if (this.waiting.length > MAX_WAITING) this.waiting.shift();
  }

  private resend(): void {
    const now = Date.now();
    const due = this.waiting.filter((w) => now - w.since < WAIT_MS);
    this.waiting = [];
    for (const w of due) void this.sendFollowUp(w.notice);
  }

  /** Resolves with the endpoints pushed to; rejects (logged) when the notice did not go. */
  private send(n: RingNotice): Promise<string[]> {
    return this.access.request('ring.notify', n).then(
      (r) => {
        this.log.debug({ sessionId: n.sessionId, state: n.state, pushed: r.pushed }, 'ring notice sent');
        return r.pushedTo ?? [];
      },
      (err: unknown) => {
        this.log.info({ sessionId: n.sessionId, state: n.state, code: toSweepError(err).code }, 'ring notice not sent');
        throw err;
      },
    );
  }
}
