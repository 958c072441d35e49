import type { CertificatePayload } from '../protocol/certificate.ts';
import type { Party } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import { SweepError } from '../errors.ts';
import type { TimerHandle } from '../clock.ts';
import { partyOf, type Call, type CallContext, type Timeline } from './call-context.ts';
import type { MediaHandle } from './ports.ts';
import { checkUpdate, NonceSet } from './sweep-rules.ts';

interface FarEndMove {
  sweepId: string;
  oldHolder: Party;
  oldCert: CertificatePayload | undefined;
  oldLink: Link | undefined;
  oldInstance: string | undefined;
  oldEpoch: number;
  newTransport: MediaHandle;
  timer: TimerHandle;
  timeline: Timeline;
}

/**
 * The far end's side of a sweep (E2; docs/protocol.md S6, S7, S9, S12, S13): checks each update,
 * moves the call make-before-break, tells the old holder `moved` once the newcomer is heard, and
 * undoes the move completely when it is not.
 */
export class FarEndRole {
  private move: FarEndMove | undefined;
  private readonly nonces = new NonceSet();

  constructor(
    private readonly ctx: CallContext,
    /** C5 for a call handed back to a holder whose link is gone. */
    private readonly startLossTimer: (call: Call) => void,
  ) {
    ctx.onEnded(() => this.close());
  }

  /** Whether a move is in flight (the call's party is changing, L6 must not mistake it). */
  get moving(): boolean {
    return this.move !== undefined;
  }

  /** The holder a move in flight may still hand back to (its link is in use, L3). */
  get oldHolder(): string | undefined {
    return this.move?.oldHolder.endpointId;
  }

  registerHandlers(link: Link): void {
    link.rpc.handle('sweep.update', (body) => this.onUpdate(link, body));
  }

  close(): void {
    if (this.move) this.ctx.opts.clock.clear(this.move.timer);
    this.move = undefined;
  }

  private activeCall(sessionId: string): Call {
    const call = this.ctx.call;
    if (!call || call.sessionId !== sessionId || call.state === 'ended') throw new SweepError('NOT_FOUND', `no call ${sessionId} here`);
    if (call.state !== 'active') throw new SweepError('BAD_STATE', `call is ${call.state}, not active`);
    return call;
  }

  /** S6, S7, S9. */
  private async onUpdate(link: Link, body: { sweepId: string; sessionId: string; epoch: number; grant: string | null }) {
    const { ctx } = this;
    const call = this.activeCall(body.sessionId);
    if (!call.peerCert) throw new SweepError('BAD_STATE', 'the holder of this call is not known');
    const holder = call.peerCert;
    const check = (): Parameters<typeof checkUpdate>[0] => ({
      sessionId: call.sessionId,
      currentEpoch: call.epoch,
      holder,
      // S9, L5: the holder is reachable while the link the call runs on is alive.
      holderReachable: ctx.liveLink(call) !== undefined,
      sender: link.peer!,
      update: body,
      now: ctx.opts.clock.now(),
      nonceSeen: (n) => this.nonces.has(n),
      crypto: ctx.opts.crypto,
    });
    const nonce = await checkUpdate(check());
    // S12: the signature check is asynchronous; another update may have won meanwhile. Exactly one
    // update per epoch: everything is checked again, now synchronously, before the call moves.
    if (this.activeCall(body.sessionId) !== call || call.peerCert !== holder) {
      throw new SweepError('STALE_EPOCH', `epoch ${body.epoch} refused: the call moved while this update was checked`);
    }
    if (body.epoch !== call.epoch + 1) throw new SweepError('STALE_EPOCH', `epoch ${body.epoch} refused: the session is at epoch ${call.epoch}, expected ${call.epoch + 1}`);
    if (nonce && this.nonces.has(nonce)) throw new SweepError('REPLAYED', 'grant was already used');
    if (nonce === null && ctx.liveLink(call)) throw new SweepError('UNAUTHORIZED', 'a grant from the holder is required while the holder is reachable');
    if (nonce) this.nonces.add(nonce);
    const holderLink = ctx.liveLink(call);
    const timeline = ctx.timeline(body.sweepId, 'farEnd');
    timeline.mark('updateAccepted');
    const move: FarEndMove = {
      sweepId: body.sweepId,
      oldHolder: call.peer,
      oldCert: call.peerCert,
      oldLink: call.link,
      oldInstance: call.peerInstance,
      oldEpoch: call.epoch,
      newTransport: link.media,
      timeline,
      timer: ctx.opts.clock.setTimeout(() => this.revert(move), ctx.sweepTimeoutMs),
    };
    if (this.move) ctx.opts.clock.clear(this.move.timer);
    this.move = move;
    call.epoch = body.epoch;
    call.peer = partyOf(link.peer!);
    call.peerCert = link.peer;
    ctx.bindLink(call, link);
    // S7: make before break — send to both, keep playing the old holder until the new one is heard.
    ctx.opts.media.attach(link.media);
    ctx.opts.media.setSendTargets(holderLink ? [holderLink.media, link.media] : [link.media]);
    ctx.opts.media.onFirstAudio(link.media, () => this.complete(move));
    ctx.emitState(call);
    return { sessionId: call.sessionId, epoch: call.epoch, doorRights: call.doorRights };
  }

  /** S7: the newcomer is heard; the old holder is told and dropped. */
  private complete(move: FarEndMove): void {
    const { ctx } = this;
    if (this.move !== move) return;
    ctx.opts.clock.clear(move.timer);
    this.move = undefined;
    move.timeline.mark('newHolderAudio');
    ctx.opts.media.setPlayback(move.newTransport);
    ctx.opts.media.setSendTargets(ctx.call?.muted ? [] : [move.newTransport]);
    const old = move.oldLink && !move.oldLink.isClosed ? move.oldLink : undefined;
    if (old && ctx.call) {
      old.rpc.notify('sweep.moved', { sessionId: ctx.call.sessionId, epoch: ctx.call.epoch, to: ctx.call.peer.endpointId });
      ctx.opts.links.touch(move.oldHolder.endpointId);
    }
    move.timeline.mark('moved');
    ctx.finish(move.sweepId, 'farEnd', 'completed', move.timeline);
  }

  /** S8, S13: the new holder's audio never came; the old holder keeps the call at its epoch. */
  private revert(move: FarEndMove): void {
    const { ctx } = this;
    if (this.move !== move || !ctx.call) return;
    this.move = undefined;
    const call = ctx.call;
    const newcomerLink = ctx.liveLink(call);
    call.peer = move.oldHolder;
    call.peerCert = move.oldCert;
    call.link = move.oldLink;
    call.peerInstance = move.oldInstance;
    // S13: the abandoned epoch is given back, so the holder's next grant (its epoch + 1) fits
    // again; the abandoned grant's nonce stays spent, so it cannot be replayed.
    call.epoch = move.oldEpoch;
    const old = ctx.liveLink(call);
    ctx.opts.media.setSendTargets(old ? [old.media] : []);
    newcomerLink?.rpc.request('call.hangup', { sessionId: call.sessionId, reason: 'no audio from you after the sweep' }).catch(() => undefined);
    move.timeline.mark('reverted');
    ctx.finish(move.sweepId, 'farEnd', 'rolledBack', move.timeline, new SweepError('TIMEOUT', 'no audio from the new holder'));
    ctx.emitState(call);
    if (!old) this.startLossTimer(call);
  }
}
