import type { SweepScope } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { TimerHandle } from '../clock.ts';
import type { CallSnapshot } from '../session/events.ts';
import type { CallContext } from './call-context.ts';
import type { Newcomer } from './newcomer.ts';

interface PendingInvite {
  from: string;
  fromLabel: string;
  sessionId: string;
  scope: SweepScope;
  answer: (accepted: boolean, reason: string) => void;
  timer: TimerHandle;
}

/**
 * Push (docs/protocol.md S10): the holder asks a sibling to pull its call; the sibling pulls at
 * once ('auto') or rings its user and answers when the user accepts, declines or lets it ring out
 * ('ask'). One mechanism, two triggers: acceptance runs the newcomer's pull.
 */
export class PushRole {
  private readonly invites = new Map<string, PendingInvite>();

  constructor(
    private readonly ctx: CallContext,
    private readonly newcomer: Newcomer,
  ) {}

  pending(): Array<{ sweepId: string; from: string; fromLabel: string; sessionId: string }> {
    return [...this.invites].map(([sweepId, i]) => ({ sweepId, from: i.from, fromLabel: i.fromLabel, sessionId: i.sessionId }));
  }

  /** As the holder: asks a sibling to pull our call. Resolves when it accepted. */
  async push(opts: { to?: string; scope?: SweepScope } = {}): Promise<{ sweepId: string; to: string; startedAtMono: number }> {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state !== 'active') throw new SweepError('BAD_STATE', 'there is no active call to sweep');
    const to = opts.to ?? this.chooseTarget();
    const startedAtMono = ctx.opts.clock.mono();
    const sweepId = ctx.opts.crypto.randomId(9);
    const link = await ctx.opts.links.get(to);
    if (link.peer?.account !== ctx.opts.self.account) throw new SweepError('FORBIDDEN', `${to} is not an endpoint of this account`);
    const where = link.peer.label || to;
    ctx.emitStep(sweepId, 'holder', 'invite', 0);
    // The invitee may ring its user first ('ask'); it answers within its invite timeout.
    const timeoutMs = (ctx.opts.inviteTimeoutMs ?? 20_000) + 5000;
    let res;
    try {
      res = await link.rpc.request('sweep.invite', { sweepId, sessionId: call.sessionId, scope: opts.scope ?? 'session' }, { timeoutMs });
    } catch (err) {
      const e = toSweepError(err);
      if (e.code === 'TIMEOUT') throw new SweepError('REFUSED', `not answered on ${where}`);
      throw e;
    }
    if (!res.accepted) throw new SweepError('REFUSED', res.reason ? `${res.reason} on ${where}` : `declined on ${where}`);
    return { sweepId, to, startedAtMono };
  }

  /** The user takes the call sent here: the one named, or the only one ringing. */
  async accept(sweepId?: string): Promise<CallSnapshot> {
    const [id, inv] = this.invite(sweepId);
    inv.answer(true, 'accepted');
    return this.newcomer.pull({ from: inv.from, sweepId: id, scope: inv.scope });
  }

  /** The user declines a call sent here; the sender keeps it. */
  decline(sweepId?: string): void {
    this.invite(sweepId)[1].answer(false, 'declined');
  }

  registerHandlers(link: Link): void {
    const { ctx } = this;
    link.rpc.handle('sweep.invite', (body) => {
      const from = link.peer!; // admitted only after hello (P2)
      if (from.account !== ctx.opts.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may push a call here (S10)');
      if ((ctx.call && ctx.call.state !== 'ended') || ctx.newcomerSweepId) return { accepted: false, reason: 'busy' };
      if (this.invites.has(body.sweepId)) throw new SweepError('BUSY', `sweep ${body.sweepId} is already ringing here`);
      if ((ctx.opts.sweepInvites ?? 'ask') === 'auto') {
        // Answer first, then pull (the push is a pull triggered by the holder).
        ctx.opts.clock.setTimeout(() => {
          this.newcomer
            .pull({ from: link.peerId, sweepId: body.sweepId, scope: body.scope })
            .catch((err: unknown) => ctx.opts.log.warn({ err: toSweepError(err).message, sweepId: body.sweepId }, 'pushed sweep failed'));
        }, 0);
        return { accepted: true };
      }
      return this.ring(link, from.label, body.sweepId, body.sessionId, body.scope);
    });
  }

  close(): void {
    for (const inv of [...this.invites.values()]) inv.answer(false, 'endpoint closing');
  }

  /** 'ask': ring here; the answer goes back when the user accepts or declines, or the invite times out. */
  private ring(link: Link, fromLabel: string, sweepId: string, sessionId: string, scope: SweepScope): Promise<{ accepted: boolean; reason?: string }> {
    const { ctx } = this;
    return new Promise((resolve) => {
      const answer = (accepted: boolean, reason: string): void => {
        if (this.invites.get(sweepId) !== invite) return;
        this.invites.delete(sweepId);
        ctx.opts.clock.clear(invite.timer);
        ctx.opts.bus.emit('sweep.inviteEnded', { sweepId, reason });
        resolve(accepted ? { accepted } : { accepted, reason });
      };
      const invite: PendingInvite = {
        from: link.peerId,
        fromLabel,
        sessionId,
        scope,
        answer,
        timer: ctx.opts.clock.setTimeout(() => answer(false, 'not answered'), ctx.opts.inviteTimeoutMs ?? 20_000),
      };
      this.invites.set(sweepId, invite);
      link.onClosed(() => answer(false, 'sender gone'));
      ctx.opts.bus.emit('sweep.invited', { sweepId, from: link.peerId, fromLabel, sessionId });
    });
  }

  private invite(sweepId: string | undefined): [string, PendingInvite] {
    if (sweepId !== undefined) {
      const inv = this.invites.get(sweepId);
      if (!inv) throw new SweepError('NOT_FOUND', `no pending sweep invite ${sweepId}`);
      return [sweepId, inv];
    }
    const first = [...this.invites][0];
    if (!first) throw new SweepError('NOT_FOUND', 'no call is being sent here');
    return first;
  }

  private chooseTarget(): string {
    const { ctx } = this;
    const siblings = ctx.opts.links.links().filter((l) => l.peer?.account === ctx.opts.self.account).map((l) => l.peerId);
    for (const preferred of ctx.opts.pushPreference ?? []) if (siblings.includes(preferred)) return preferred;
    const first = siblings[0];
    if (!first) throw new SweepError('NOT_FOUND', 'no other endpoint of this account is online to take the call');
    return first;
  }
}
