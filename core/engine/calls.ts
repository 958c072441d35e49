import type { CertificatePayload } from '../protocol/certificate.ts';
import type { Link } from './ports.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { CallSnapshot } from '../session/events.ts';
import { partyOf, sameParty, type Call, type CallContext } from './call-context.ts';
import type { RingIn } from './ring-in.ts';
import type { RingOut } from './ring-out.ts';

/**
 * Calls (docs/protocol.md C1–C5) and the life of a call's link: a peer's new instance (L6), a
 * reloaded page reclaiming its call (L7), the grace after the link died (C5).
 */
export class Calls {
  constructor(
    private readonly ctx: CallContext,
    /** Whether the far end is moving the call (S7): the party changes then, not its instance. */
    private readonly moving: () => boolean,
    /** A household call's answers and declines go to its ring (H2–H4); a lost answer ends ours (H3). */
    private readonly ring: { out: RingOut; in: RingIn },
  ) {}

  /** C1: calls `peerId`; resolves once it rings there. */
  async placeCall(peerId: string, opts: { doorRights?: boolean } = {}): Promise<CallSnapshot> {
    const { ctx } = this;
    ctx.assertNoCall();
    const link = await ctx.opts.links.get(peerId);
    const cert = link.peer!;
    ctx.assertNoCall();
    const call = newCall(ctx.opts.crypto.randomId(9), 'out', cert, link, opts.doorRights ?? false);
    ctx.call = call;
    ctx.apply(call, 'invite');
    try {
      await link.rpc.request('call.invite', { sessionId: call.sessionId, doorRights: call.doorRights });
    } catch (err) {
      const e = toSweepError(err);
      if (ctx.call === call && call.state === 'ringing') ctx.apply(call, 'reject', `refused: ${e.code} ${e.message}`);
      throw e;
    }
    call.lossTimer = ctx.opts.clock.setTimeout(() => {
      delete call.lossTimer;
      if (ctx.call === call && call.state === 'ringing') {
        this.hangup('no answer').catch((err: unknown) => ctx.opts.log.debug({ err: toSweepError(err).message }, 'no-answer hangup failed'));
      }
    }, ctx.opts.ringTimeoutMs ?? 60_000);
    return ctx.snapshot()!;
  }

  /** C1: answers the ringing incoming call. */
  async answer(): Promise<CallSnapshot> {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state !== 'ringing' || call.direction !== 'in') throw new SweepError('BAD_STATE', 'no incoming call is ringing');
    const link = ctx.requireLink(call);
    const res = await link.rpc.request('call.answer', { sessionId: call.sessionId }).catch((err: unknown) => {
      throw this.ring.in.answerRefused(call, err);
    });
    if (ctx.call !== call || call.state !== 'ringing') throw new SweepError('BAD_STATE', 'the call ended while answering');
    call.startedAt = res.startedAt;
    ctx.apply(call, 'answer');
    await ctx.startMedia(link.media);
    return ctx.snapshot()!;
  }

  async reject(reason = 'rejected'): Promise<void> {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state !== 'ringing' || call.direction !== 'in') throw new SweepError('BAD_STATE', 'no incoming call is ringing');
    ctx.apply(call, 'reject', reason);
    await ctx
      .liveLink(call)
      ?.rpc.request('call.reject', { sessionId: call.sessionId, reason })
      .catch((err: unknown) => ctx.opts.log.debug({ err: toSweepError(err).message }, 'reject not delivered'));
  }

  /** C1: ends the call (any state but idle). */
  async hangup(reason = 'hung up'): Promise<void> {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state === 'ended') throw new SweepError('BAD_STATE', 'there is no call to hang up');
    ctx.apply(call, 'hangup', reason);
    await ctx
      .liveLink(call)
      ?.rpc.request('call.hangup', { sessionId: call.sessionId, reason })
      .catch((err: unknown) => ctx.opts.log.debug({ err: toSweepError(err).message }, 'hangup not delivered'));
  }

  /** D1: asks the other party of our call (the intercom) to open its door; D2–D4 are decided there. */
  async openDoor(): Promise<number> {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || (call.state !== 'active' && call.state !== 'sweeping')) throw new SweepError('BAD_STATE', 'there is no call, so no door to open');
    const res = await ctx.requireLink(call).rpc.request('door.open', { sessionId: call.sessionId });
    return res.pulseMs;
  }

  setMuted(muted: boolean): void {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || (call.state !== 'active' && call.state !== 'sweeping')) throw new SweepError('BAD_STATE', 'no call to mute');
    call.muted = muted;
    const link = ctx.liveLink(call);
    ctx.opts.media.setSendTargets(muted || !link ? [] : [link.media]);
    ctx.emitState(call);
  }

  registerHandlers(link: Link): void {
    const { ctx } = this;
    const rpc = link.rpc;
    rpc.handle('call.invite', (body) => {
      const from = link.peer!; // admitted only after hello (P2)
      if (ctx.doNotDisturb) throw new SweepError('DO_NOT_DISTURB', `${ctx.opts.self.endpointId} is set not to ring (H7)`);
      if (from.account !== ctx.opts.self.account && !ctx.opts.isBuddy(from.account)) {
        throw new SweepError('FORBIDDEN', `account ${from.account} is not a buddy of ${ctx.opts.self.account} (P5)`);
      }
      this.endOldInstanceCall(link);
      if (ctx.call && ctx.call.state !== 'ended') throw new SweepError('BUSY', `${ctx.opts.self.endpointId} is in a call (C2)`);
      const call = newCall(body.sessionId, 'in', from, link, body.doorRights);
      ctx.call = call;
      ctx.apply(call, 'invite');
      return {};
    });

    rpc.handle('call.answer', async (body) => {
      if (this.ring.out.rang(body.sessionId)) return this.ring.out.onAnswer(link, body.sessionId);
      const call = ctx.callWith(body.sessionId, link);
      if (call.state !== 'ringing' || call.direction !== 'out') throw new SweepError('BAD_STATE', `call is ${call.state}, not ringing out`);
      if (call.lossTimer) {
        ctx.opts.clock.clear(call.lossTimer); // the ring timer
        delete call.lossTimer;
      }
      call.startedAt = ctx.opts.clock.now();
      call.link = link;
      ctx.apply(call, 'answer');
      await ctx.startMedia(link.media);
      return { startedAt: call.startedAt };
    });

    rpc.handle('call.reject', (body) => {
      if (this.ring.out.rang(body.sessionId)) {
        this.ring.out.onDecline(link, body.sessionId, body.reason); // H4
        return {};
      }
      ctx.apply(ctx.callWith(body.sessionId, link), 'reject', `rejected: ${body.reason}`);
      return {};
    });

    rpc.handle('call.hangup', (body) => {
      // H4: a rung endpoint hanging up while it rings declines its own fork only.
      if (this.ring.out.rang(body.sessionId) && ctx.call?.state === 'ringing') {
        this.ring.out.onDecline(link, body.sessionId, body.reason);
        return {};
      }
      const call = ctx.callWith(body.sessionId, link);
      if (call.state !== 'ended') ctx.apply(call, 'hangup', `far end hung up: ${body.reason}`);
      return {};
    });

  }

  /**
   * L6: a ready link from the other party of our call. From a new instance of it, the party
   * restarted and our call with its old instance is over ("peer restarted"). From the same
   * instance, the link was rebuilt (L4): the call carries on over the new link.
   */
  endOldInstanceCall(link: Link): void {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state === 'ended' || !sameParty(call.peer, link) || link === call.link || this.moving()) return;
    if (call.peerInstance !== undefined && link.peerInstance !== call.peerInstance) {
      // L7: a new instance that says it carries this call on may reclaim it with call.resume.
      if (link.peerResume === call.sessionId) return;
      ctx.apply(call, call.state === 'ringing' ? 'linkLost' : 'hangup', 'peer restarted: its new instance does not know this call (L6)');
      return;
    }
    if (call.link && !call.link.isClosed) return;
    if (call.state === 'ringing') call.link = link;
    else ctx.carryOn(call, link);
    ctx.opts.log.info({ sessionId: call.sessionId, peer: link.peerId }, 'call continues over a rebuilt link (L4)');
  }

  /** C5: the link our call runs on died. */
  onLinkClosed(reason: string, link: Link): void {
    const { ctx } = this;
    const call = ctx.call;
    if (!call || call.state === 'ended' || call.link !== link) return;
    if (call.state === 'ringing') {
      ctx.apply(call, 'linkLost', `link lost: ${reason}`);
      return;
    }
    this.startLossTimer(call);
  }

  /** C5: the call outlives its link for a grace period, so a sibling can take it over (S9). */
  startLossTimer(call: Call): void {
    const { ctx } = this;
    if (call.lossTimer) return;
    const linkAtLoss = call.link;
    call.lossTimer = ctx.opts.clock.setTimeout(() => {
      delete call.lossTimer;
      // Still on the dead link: nobody took the call over and the link was not rebuilt (L6).
      if (ctx.call === call && call.state !== 'ended' && call.link === linkAtLoss && (!linkAtLoss || linkAtLoss.isClosed)) {
        ctx.apply(call, 'linkLost', 'link lost');
      }
    }, ctx.linkLossGraceMs);
  }
}

export function newCall(sessionId: string, direction: 'in' | 'out', cert: CertificatePayload, link: Link, doorRights: boolean): Call {
  return {
    sessionId,
    state: 'idle',
    direction,
    peer: partyOf(cert),
    peerCert: cert,
    link,
    peerInstance: link.peerInstance,
    epoch: 0,
    startedAt: null,
    doorRights,
    muted: false,
    onHold: false,
  };
}

/** H1: a call to a household: its endpoint is not known until one answers (H2): no link, an empty endpoint id. */
export function householdCall(sessionId: string, account: string, label: string, doorRights: boolean): Call {
  return { sessionId, state: 'idle', direction: 'out', peer: { account, endpointId: '', label }, peerCert: undefined, link: undefined, peerInstance: undefined, epoch: 0, startedAt: null, doorRights, muted: false, onHold: false };
}
