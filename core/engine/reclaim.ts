import type { Party } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import { SweepError } from '../errors.ts';
import type { CallSnapshot } from '../session/events.ts';
import { sameParty, type CallContext } from './call-context.ts';
import { newCall } from './calls.ts';

/**
 * L7, both sides: a restarted instance (a reloaded page) takes back the call it held, and the far
 * end, which kept the call for the C5 grace, hands it over to the same certified endpoint.
 */
export class Reclaim {
  constructor(
    private readonly ctx: CallContext,
    /** Whether the far end is moving the call (S7): no reclaim then. */
    private readonly moving: () => boolean,
  ) {}

  /** The reloaded side: its links say `resume` in hello; resolves once the call runs here again. */
  async resume(held: { sessionId: string; epoch: number; farEnd: Party; muted: boolean }): Promise<CallSnapshot> {
    const { ctx } = this;
    ctx.assertNoCall();
    const link = await ctx.opts.links.get(held.farEnd.endpointId);
    if (!sameParty(held.farEnd, link)) throw new SweepError('FORBIDDEN', `${held.farEnd.endpointId} is not of account ${held.farEnd.account}`);
    const res = await link.rpc.request('call.resume', { sessionId: held.sessionId, epoch: held.epoch });
    ctx.assertNoCall();
    const call = newCall(res.sessionId, 'in', link.peer!, link, res.doorRights);
    call.epoch = res.epoch;
    call.startedAt = res.startedAt;
    call.muted = held.muted;
    ctx.call = call;
    ctx.apply(call, 'resumed', 'resumed');
    await ctx.startMedia(link.media);
    return ctx.snapshot()!;
  }

  registerHandlers(link: Link): void {
    link.rpc.handle('call.resume', (body) => this.onResume(link, body.sessionId, body.epoch));
  }

  /** The far end: the same certified endpoint takes its own call back over its new link. */
  private onResume(link: Link, sessionId: string, epoch: number) {
    const { ctx } = this;
    const call = ctx.callWith(sessionId, link);
    if (call.state !== 'active' || this.moving()) throw new SweepError('BAD_STATE', `call is ${this.moving() ? 'moving' : call.state}, not active`);
    if (epoch !== call.epoch) throw new SweepError('STALE_EPOCH', `the call is at epoch ${call.epoch}, not ${epoch}: it moved meanwhile`);
    if (call.link && call.link !== link && !call.link.isClosed) call.link.close('the endpoint reclaimed its call over a new link (L7)');
    ctx.carryOn(call, link);
    ctx.opts.log.info({ sessionId, peer: link.peerId }, 'call resumed by a new instance of its party (L7)');
    ctx.emitState(call, 'resumed');
    return { sessionId, epoch: call.epoch, doorRights: call.doorRights, startedAt: call.startedAt };
  }
}
