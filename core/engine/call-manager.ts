import type { Party, SweepScope } from '../protocol/peer.ts';
import type { Link } from './ports.ts';
import type { CallSnapshot } from '../session/events.ts';
import { CallContext, type CallManagerOptions } from './call-context.ts';
import { Calls } from './calls.ts';
import { FarEndRole } from './far-end.ts';
import { HolderRole } from './holder.ts';
import { Newcomer } from './newcomer.ts';
import { PushRole } from './push.ts';
import { Reclaim } from './reclaim.ts';
import { RingIn } from './ring-in.ts';
import { RingOut } from './ring-out.ts';
import { Siblings, type SiblingCall } from './siblings.ts';

export type { CallManagerOptions, MediaPort } from './call-context.ts';

/**
 * Calls and sweeps on one endpoint (docs/protocol.md parts C and S), composed of one object per
 * rule family, each registering its own handlers on every link: calls (C1–C5, L6, L7), the
 * holder (S3, S4, S8, S11), the far end (S6, S7, S9, S13), the newcomer (S3–S9), push (S10) and
 * siblings' calls (S1, L3). One call at a time (C2); a call's end cascades to every role.
 */
export class CallManager {
  private readonly ctx: CallContext;
  private readonly calls: Calls;
  private readonly holder: HolderRole;
  private readonly farEnd: FarEndRole;
  private readonly siblings: Siblings;
  private readonly newcomer: Newcomer;
  private readonly pushes: PushRole;
  private readonly reclaim: Reclaim;
  private readonly ringOut: RingOut;
  private readonly ringIn: RingIn;
  private closed = false;

  constructor(opts: CallManagerOptions) {
    const ctx = new CallContext(opts);
    this.ctx = ctx;
    this.farEnd = new FarEndRole(ctx, (call) => this.calls.startLossTimer(call));
    this.ringOut = new RingOut(ctx);
    this.ringIn = new RingIn(ctx);
    this.calls = new Calls(ctx, () => this.farEnd.moving, { out: this.ringOut, in: this.ringIn });
    this.reclaim = new Reclaim(ctx, () => this.farEnd.moving);
    this.holder = new HolderRole(ctx);
    this.siblings = new Siblings(ctx);
    this.newcomer = new Newcomer(ctx, this.siblings);
    this.pushes = new PushRole(ctx, this.newcomer);
    opts.links.onLinkCreated((link) => {
      for (const role of [this.calls, this.reclaim, this.ringIn, this.holder, this.farEnd, this.pushes, this.siblings]) role.registerHandlers(link);
    });
    opts.links.onLinkReady((link) => this.onLinkReady(link));
    opts.links.onLinkClosed((peerId, reason, link) => this.onLinkClosed(peerId, reason, link));
  }

  // ---- queries ---------------------------------------------------------------------------

  snapshot(): CallSnapshot | null {
    return this.ctx.snapshot();
  }

  /** Siblings' calls as they told us (S1, L3). */
  siblingCallsSnapshot(): Array<{ endpointId: string } & SiblingCall> {
    return this.siblings.snapshot();
  }

  /** Pushed sweeps waiting for the user to accept them (S10, 'ask'). */
  pendingInvitesSnapshot(): Array<{ sweepId: string; from: string; fromLabel: string; sessionId: string }> {
    return this.pushes.pending();
  }

  /** The sibling this endpoint, as the holder, is giving its call to (S3–S7), if any. */
  sweepTarget(): string | undefined {
    return this.holder.sweepingTo;
  }

  /** Whether a call or sweep uses the link to `peerId` (idle links are closed, L3). */
  usesPeer(peerId: string): boolean {
    const call = this.ctx.call;
    if (call && call.state !== 'ended' && call.peer.endpointId === peerId) return true;
    if (this.holder.sweepingTo === peerId || this.farEnd.oldHolder === peerId || this.ringOut.uses(peerId)) return true;
    return this.siblings.has(peerId);
  }

  // ---- user actions ----------------------------------------------------------------------

  placeCall(peerId: string, opts: { doorRights?: boolean } = {}): Promise<CallSnapshot> {
    return this.calls.placeCall(peerId, opts);
  }

  /**
   * H1: calls a household: rings every online endpoint of `account` at once; the first answer
   * wins (H2). Resolves once one rings, or with the ended call when none could (H4, H7).
   */
  ringAccount(account: string, opts: { doorRights?: boolean; label?: string } = {}): Promise<CallSnapshot> {
    return this.ringOut.ringAccount(account, opts);
  }

  /** H7: do not disturb: invites are answered DO_NOT_DISTURB and a household ring skips this endpoint. */
  get doNotDisturb(): boolean {
    return this.ctx.doNotDisturb;
  }

  setDoNotDisturb(on: boolean): void {
    if (this.ctx.doNotDisturb === on) return;
    this.ctx.doNotDisturb = on;
    this.ctx.opts.bus.emit('dnd.changed', { on });
  }

  answer(): Promise<CallSnapshot> {
    return this.calls.answer();
  }

  reject(reason?: string): Promise<void> {
    return this.calls.reject(reason);
  }

  hangup(reason?: string): Promise<void> {
    return this.calls.hangup(reason);
  }

  setMuted(muted: boolean): void {
    this.calls.setMuted(muted);
  }

  /** L7: takes back the call this endpoint held before it restarted (a reloaded page). */
  resume(held: { sessionId: string; epoch: number; farEnd: Party; muted: boolean }): Promise<CallSnapshot> {
    return this.reclaim.resume(held);
  }

  /** D1: asks the other party of the call to open its door; resolves with the pulse length. */
  openDoor(): Promise<number> {
    return this.calls.openDoor();
  }

  pull(opts: { from?: string; sweepId?: string; scope?: SweepScope; startedAtMono?: number } = {}): Promise<CallSnapshot> {
    return this.newcomer.pull(opts);
  }

  push(opts: { to?: string; scope?: SweepScope } = {}): Promise<{ sweepId: string; to: string; startedAtMono: number }> {
    return this.pushes.push(opts);
  }

  /**
   * S10 when the user accepts a pushed sweep ('ask' mode): the one named, or the only one
   * pending (the panel's answer or sweep button, the lab's `a`, stdio `accept`).
   */
  acceptInvite(sweepId?: string): Promise<CallSnapshot> {
    return this.pushes.accept(sweepId);
  }

  declineInvite(sweepId?: string): void {
    this.pushes.decline(sweepId);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pushes.close();
    this.holder.close();
    this.farEnd.close();
    this.siblings.close();
    this.ringOut.close();
    const call = this.ctx.call;
    if (call?.lossTimer) this.ctx.opts.clock.clear(call.lossTimer);
    if (call && call.state !== 'ended') this.ctx.apply(call, 'hangup', 'endpoint closing');
  }

  private onLinkReady(link: Link): void {
    this.ctx.opts.bus.emit('link.state', { peerId: link.peerId, up: true });
    this.calls.endOldInstanceCall(link);
    this.siblings.onLinkReady(link);
  }

  private onLinkClosed(peerId: string, reason: string, link: Link): void {
    this.ctx.opts.bus.emit('link.state', { peerId, up: false, reason });
    this.siblings.onLinkClosed(peerId, link);
    this.calls.onLinkClosed(reason, link);
    this.ringOut.onLinkClosed(link, reason);
  }
}
