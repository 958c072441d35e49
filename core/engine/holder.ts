import type { Link } from './ports.ts';
import type { SessionState, SweepScope } from '../protocol/peer.ts';
import { SweepError } from '../errors.ts';
import type { CallState } from '../session/call-state.ts';
import type { TimerHandle } from '../clock.ts';
import { sameParty, type CallContext, type Timeline } from './call-context.ts';
import { issueGrant } from './sweep-rules.ts';

interface HolderSweep {
  sweepId: string;
  sessionId: string;
  to: string;
  scope: SweepScope;
  timer: TimerHandle;
  timeline: Timeline;
}

/**
 * The holder's side of a sweep (E1; docs/protocol.md S3, S4, S7, S8, S11): one goAway per
 * session at a time, the grant, keeping the call until the far end says `moved`, and rolling back
 * by itself when it does not. A call's end drops the sweep in flight.
 */
export class HolderRole {
  private sweep: HolderSweep | undefined;

  constructor(private readonly ctx: CallContext) {
    ctx.onEnded((call) => {
      if (this.sweep?.sessionId !== call.sessionId) return;
      ctx.opts.clock.clear(this.sweep.timer);
      this.sweep = undefined;
    });
  }

  /** The sibling a sweep of ours is going to (its link is in use, L3). */
  get sweepingTo(): string | undefined {
    return this.sweep?.to;
  }

  registerHandlers(link: Link): void {
    const rpc = link.rpc;
    rpc.handle('sweep.goAway', (body) => this.onGoAway(link, body.sweepId, body.sessionId, body.scope));
    rpc.handle('sweep.ack', (body) => {
      if (this.sweep?.sweepId === body.sweepId) this.sweep.timeline.mark('ack');
      return {};
    });
    rpc.handle('sweep.cancel', (body) => {
      const hs = this.sweep;
      if (hs && hs.sweepId === body.sweepId && hs.to === link.peerId) this.rollback(`newcomer cancelled: ${body.reason}`);
      return {};
    });
    rpc.onNote('sweep.moved', (body) => this.onMoved(link, body.sessionId, body.epoch, body.to));
  }

  close(): void {
    if (this.sweep) this.ctx.opts.clock.clear(this.sweep.timer);
    this.sweep = undefined;
  }

  /** S3, S4. */
  private async onGoAway(link: Link, sweepId: string, sessionId: string, scope: SweepScope) {
    const { ctx } = this;
    const from = link.peer!;
    if (from.account !== ctx.opts.self.account) throw new SweepError('FORBIDDEN', 'only an endpoint of this account may take the call (S3)');
    const call = ctx.call;
    if (!call || call.sessionId !== sessionId || call.state === 'ended') throw new SweepError('NOT_FOUND', `no call ${sessionId} here`);
    if (call.state === 'sweeping' || this.sweep) throw new SweepError('BUSY', 'another sweep of this call is in progress (S12)');
    if (call.state !== 'active') throw new SweepError('BAD_STATE', `call is ${call.state}, not active`);
    const timeline = ctx.timeline(sweepId, 'holder');
    timeline.mark('goAway');
    // S3, S12: the call is given away before the (asynchronous) signature, so a second goAway
    // arriving meanwhile is refused BUSY.
    ctx.apply(call, 'giveAway');
    const sweep: HolderSweep = {
      sweepId,
      sessionId,
      to: link.peerId,
      scope,
      timeline,
      // S8: without `moved` in time the holder simply keeps the call.
      timer: ctx.opts.clock.setTimeout(() => this.rollback('no confirmation from the far end in time'), ctx.sweepTimeoutMs),
    };
    this.sweep = sweep;
    let token: string;
    try {
      ({ token } = await issueGrant(
        { sessionId, from: ctx.opts.self.endpointId, to: link.peerId, epoch: call.epoch + 1, now: ctx.opts.clock.now(), ttlMs: ctx.sweepTimeoutMs },
        ctx.opts.crypto,
      ));
    } catch (err) {
      if (this.sweep === sweep) this.rollback('the grant could not be signed');
      throw err;
    }
    // Whatever happened while signing (the call ended, the sweep was cancelled) wins.
    if (this.sweep !== sweep || ctx.call !== call || (call.state as CallState) !== 'sweeping') throw new SweepError('BAD_STATE', 'the call changed while the grant was signed');
    timeline.mark('sessionInfo');
    const session: SessionState = {
      sessionId,
      farEnd: call.peer,
      epoch: call.epoch,
      codec: 'opus/48000/1',
      startedAt: call.startedAt ?? ctx.opts.clock.now(),
      onHold: call.onHold,
      muted: call.muted,
      doorRights: call.doorRights,
    };
    return { sweepId, session, grant: token };
  }

  /** S7 at the old holder. */
  private onMoved(link: Link, sessionId: string, epoch: number, to: string): void {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.sessionId !== sessionId || !sameParty(call.peer, link) || epoch <= call.epoch) {
      ctx.opts.log.warn({ sessionId, from: link.peerId }, 'sweep.moved that does not match our call; ignored');
      return;
    }
    const hs = this.sweep;
    this.sweep = undefined;
    if (hs) {
      ctx.opts.clock.clear(hs.timer);
      hs.timeline.mark('moved');
    }
    ctx.apply(call, 'moved', `swept to ${to}`);
    if (hs) ctx.finish(hs.sweepId, 'holder', 'moved', hs.timeline);
    if (hs?.scope === 'login') ctx.opts.onLoginSwept?.(); // S11
  }

  /** S8: the holder keeps its call, never on hold. */
  private rollback(reason: string): void {
    const { ctx } = this;
    const hs = this.sweep;
    if (!hs) return;
    this.sweep = undefined;
    ctx.opts.clock.clear(hs.timer);
    hs.timeline.mark('rolledBack');
    const call = ctx.call;
    if (call && call.sessionId === hs.sessionId && call.state === 'sweeping') ctx.apply(call, 'rollback', reason);
    ctx.finish(hs.sweepId, 'holder', 'rolledBack', hs.timeline, new SweepError('REFUSED', reason));
  }
}
