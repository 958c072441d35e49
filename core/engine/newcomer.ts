import type { SessionState, SweepScope } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import { SweepError, toSweepError } from '../errors.ts';
import { withTimeout } from '../clock.ts';
import type { CallSnapshot } from '../session/events.ts';
import type { Call, CallContext } from './call-context.ts';
import type { Siblings } from './siblings.ts';
import { grantlessSession, holderGone, sendUpdate } from './takeover.ts';

/**
 * The newcomer's side of a sweep (E3; docs/protocol.md S3–S9): ask the holder, carry its session
 * to the far end with the grant, and hold the call once the far end's audio arrives; take a dead
 * holder's call over without a grant (S9). A push (S10) runs this same pull.
 */
export class Newcomer {
  constructor(
    private readonly ctx: CallContext,
    private readonly siblings: Siblings,
  ) {}

  /**
   * S3–S7 as the newcomer: pulls the call from a sibling. Resolves when the far end's audio
   * arrives here; rejects (and the holder keeps the call, S8) otherwise.
   */
  async pull(opts: { from?: string; sweepId?: string; scope?: SweepScope; startedAtMono?: number } = {}): Promise<CallSnapshot> {
    const { ctx } = this;
    if (ctx.call && ctx.call.state !== 'ended') throw new SweepError('BAD_STATE', `this endpoint already has a call (${ctx.call.state})`);
    if (ctx.newcomerSweepId) throw new SweepError('BUSY', 'a sweep is already in progress here');
    const holderId = opts.from ?? this.siblings.firstHolder();
    if (!holderId) throw new SweepError('NOT_FOUND', 'no endpoint of this account is in a call');
    const known = this.siblings.get(holderId);
    const sweepId = opts.sweepId ?? ctx.opts.crypto.randomId(9);
    const scope = opts.scope ?? 'session';
    const timeoutMs = ctx.sweepTimeoutMs;
    const timeline = ctx.timeline(sweepId, 'newcomer', opts.startedAtMono);
    ctx.newcomerSweepId = sweepId;
    const placeholder: Call = {
      sessionId: known?.sessionId ?? sweepId,
      state: 'idle',
      direction: 'in',
      peer: known?.farEnd ?? { account: ctx.opts.self.account, endpointId: holderId, label: '' },
      peerCert: undefined,
      link: undefined,
      peerInstance: undefined,
      epoch: known?.epoch ?? 0,
      startedAt: null,
      doorRights: false,
      muted: false,
      onHold: false,
    };
    ctx.call = placeholder;
    ctx.apply(placeholder, 'takeOver');
    let holderLink: Link | undefined;
    try {
      let session: SessionState;
      let grant: string | null;
      try {
        holderLink = await ctx.opts.links.get(holderId);
        timeline.mark('goAway');
        const info = await holderLink.rpc.request(
          'sweep.goAway',
          { sweepId, sessionId: known?.sessionId ?? sweepId, scope },
          { timeoutMs },
        );
        timeline.mark('sessionInfo');
        session = info.session;
        grant = info.grant;
        holderLink.rpc
          .request('sweep.ack', { sweepId }, { timeoutMs })
          .catch((err: unknown) => ctx.opts.log.debug({ err: toSweepError(err).message }, 'ack not delivered'));
      } catch (err) {
        const e = toSweepError(err);
        // S9: the holder is gone; take the call over without a grant if we know it.
        if (!known || !holderGone(e)) throw e;
        ctx.opts.log.warn({ sweepId, holder: holderId, reason: e.message }, 'holder unreachable: trying a takeover without grant (S9)');
        timeline.mark('holderLost');
        session = grantlessSession(known, ctx.opts.clock.now());
        grant = null;
      }
      placeholder.sessionId = session.sessionId;
      placeholder.peer = session.farEnd;
      placeholder.epoch = session.epoch;
      placeholder.startedAt = session.startedAt;
      placeholder.muted = session.muted;
      placeholder.onHold = session.onHold;
      placeholder.doorRights = session.doorRights;

      const farLink = await ctx.opts.links.get(session.farEnd.endpointId);
      if (farLink.peer?.account !== session.farEnd.account) {
        throw new SweepError('FORBIDDEN', `far end ${session.farEnd.endpointId} is not of account ${session.farEnd.account}`);
      }
      ctx.opts.media.attach(farLink.media);
      const firstAudio = new Promise<void>((resolve) => ctx.opts.media.onFirstAudio(farLink.media, resolve));
      timeline.mark('update');
      const update = { sweepId, sessionId: session.sessionId, epoch: session.epoch + 1, grant };
      const res = await sendUpdate(farLink.rpc, update, { clock: ctx.opts.clock, timeoutMs });
      timeline.mark('updateResponse');
      if (ctx.call !== placeholder) throw new SweepError('BAD_STATE', 'the call was ended during the sweep');
      placeholder.epoch = res.epoch;
      placeholder.doorRights = res.doorRights;
      placeholder.peerCert = farLink.peer;
      placeholder.link = farLink;
      placeholder.peerInstance = farLink.peerInstance;
      ctx.apply(placeholder, 'completed');
      await ctx.startMedia(farLink.media);
      await withTimeout(ctx.opts.clock, firstAudio, timeoutMs, 'no audio from the far end after the sweep');
      timeline.mark('firstFarEndAudio');
      ctx.finish(sweepId, 'newcomer', 'completed', timeline);
      return ctx.snapshot()!;
    } catch (err) {
      const e = toSweepError(err);
      timeline.mark('failed');
      if (holderLink && !holderLink.isClosed) {
        holderLink.rpc
          .request('sweep.cancel', { sweepId, reason: `${e.code}: ${e.message}` })
          .catch((cancelErr: unknown) => ctx.opts.log.debug({ err: toSweepError(cancelErr).message }, 'cancel not delivered'));
      }
      if (ctx.call === placeholder && placeholder.state === 'sweeping') ctx.apply(placeholder, 'abandon', `sweep failed: ${e.message}`);
      ctx.finish(sweepId, 'newcomer', 'refused', timeline, e);
      throw e;
    } finally {
      ctx.newcomerSweepId = undefined;
    }
  }
}
