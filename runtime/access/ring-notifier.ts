import type { EventBus } from '../../core/bus.ts';
import { toSweepError } from '../../core/errors.ts';
import type { RingNotice } from '../../core/protocol/push.ts';
import type { EndpointEvents } from '../../core/session/events.ts';
import type { Logger } from '../../platform/log.ts';
import type { AccessClient } from './access-client.ts';

/**
 * A16: tells the access server how a household ring this endpoint makes goes (`ring.notify`), so
 * it can push to the household's phones whose page is closed: ringing (with the ring timeout as
 * the push's lifetime), then answered on …, missed or cancelled. Not kept for later: a ring
 * notice that cannot go now is worth nothing afterwards.
 */
export class RingNotifier {
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
      this.open.set(e.sessionId, this.send({ sessionId: e.sessionId, account: e.account, label: door, state: 'ringing', ttlMs: Math.min(600_000, Math.max(1000, ringTimeoutMs)) }));
    });
    bus.on(this, 'ring.answered', (e) => this.followUp({ sessionId: e.sessionId, account: e.account, label: door, state: 'answered', by: (e.by.label || e.by.endpointId).slice(0, 64) }));
    bus.on(this, 'ring.ended', (e) => {
      if (e.outcome !== 'answered') this.followUp({ sessionId: e.sessionId, account: e.account, label: door, state: e.outcome });
    });
  }

  close(): void {
    this.bus.removeOwner(this);
    this.open.clear();
  }

  private followUp(n: RingNotice): void {
    const ring = this.open.get(n.sessionId);
    if (!ring) return;
    this.open.delete(n.sessionId);
    void ring.then((pushedTo) => this.send(pushedTo.length > 0 ? { ...n, pushedTo } : n));
  }

  /** Resolves with the endpoints pushed to (none when the notice did not go). Never rejects. */
  private send(n: RingNotice): Promise<string[]> {
    return this.access.request('ring.notify', n).then(
      (r) => {
        this.log.debug({ sessionId: n.sessionId, state: n.state, pushed: r.pushed }, 'ring notice sent');
        return r.pushedTo ?? [];
      },
      (err: unknown) => {
        this.log.info({ sessionId: n.sessionId, state: n.state, code: toSweepError(err).code }, 'ring notice not sent');
        return [];
      },
    );
  }
}
