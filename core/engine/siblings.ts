import type { Link } from './ports.ts';
import type { TimerHandle } from '../clock.ts';
import type { CallContext } from './call-context.ts';

export interface SiblingCall {
  sessionId: string;
  farEnd: { account: string; endpointId: string; label: string };
  epoch: number;
}

interface KnownSiblingCall extends SiblingCall {
  /** Set while the sibling's link is down: the call is remembered for the C5 grace (S9). */
  lostTimer?: TimerHandle;
}

/**
 * Siblings' calls (docs/protocol.md S1, L3): each sibling tells its call with `presence.call`;
 * this endpoint links to that call's far end ahead of need, remembers a vanished sibling's call
 * for the C5 grace (so it can still be taken over, S9), and tells its own call to its siblings.
 */
export class Siblings {
  private readonly calls = new Map<string, KnownSiblingCall>();

  constructor(private readonly ctx: CallContext) {
    ctx.onActiveOrEnded(() => this.announce());
  }

  snapshot(): Array<{ endpointId: string } & SiblingCall> {
    return [...this.calls].map(([endpointId, c]) => ({ endpointId, sessionId: c.sessionId, farEnd: c.farEnd, epoch: c.epoch }));
  }

  get(endpointId: string): SiblingCall | undefined {
    return this.calls.get(endpointId);
  }

  has(endpointId: string): boolean {
    return this.calls.has(endpointId);
  }

  /** The first sibling known to hold a call, for a pull that names none. */
  firstHolder(): string | undefined {
    return this.calls.keys().next().value;
  }

  registerHandlers(link: Link): void {
    const { ctx } = this;
    link.rpc.onNote('presence.call', (body) => {
      if (link.peer?.account !== ctx.opts.self.account) return; // only siblings tell us their calls
      const prev = this.calls.get(link.peerId);
      if (prev?.lostTimer) ctx.opts.clock.clear(prev.lostTimer);
      if (body.call) {
        this.calls.set(link.peerId, { ...body.call });
        if (prev && prev.farEnd.endpointId !== body.call.farEnd.endpointId) ctx.opts.links.unpin(prev.farEnd.endpointId, `sibling:${link.peerId}`);
        // L3: link to the far end ahead of need while a sibling talks to it.
        if (body.call.farEnd.endpointId !== ctx.opts.self.endpointId) ctx.opts.links.pin(body.call.farEnd.endpointId, `sibling:${link.peerId}`);
      } else {
        this.calls.delete(link.peerId);
        ctx.opts.links.unpinAll(`sibling:${link.peerId}`);
      }
      ctx.opts.bus.emit('sibling.call', { endpointId: link.peerId, call: body.call });
    });
  }

  onLinkReady(link: Link): void {
    const { ctx } = this;
    if (link.peer?.account !== ctx.opts.self.account) return;
    const known = this.calls.get(link.peerId);
    if (known) {
      // The sibling is back: it will tell its call again (L3), whatever we remembered is stale.
      if (known.lostTimer) ctx.opts.clock.clear(known.lostTimer);
      this.forget(link.peerId);
    }
    // L3: a sibling learns our call as soon as we are linked.
    link.rpc.notify('presence.call', { call: this.ownCall() });
  }

  /** C5, S9: a sibling whose link died may have crashed holding its call; remember it for the grace. */
  onLinkClosed(peerId: string, link: Link): void {
    const { ctx } = this;
    const known = this.calls.get(peerId);
    if (!known || known.lostTimer || link.peer?.account !== ctx.opts.self.account) return;
    known.lostTimer = ctx.opts.clock.setTimeout(() => this.forget(peerId), ctx.linkLossGraceMs);
  }

  close(): void {
    for (const c of this.calls.values()) if (c.lostTimer) this.ctx.opts.clock.clear(c.lostTimer);
  }

  private forget(peerId: string): void {
    if (!this.calls.delete(peerId)) return;
    this.ctx.opts.links.unpinAll(`sibling:${peerId}`);
    this.ctx.opts.bus.emit('sibling.call', { endpointId: peerId, call: null });
  }

  private ownCall(): SiblingCall | null {
    const c = this.ctx.call;
    if (!c || (c.state !== 'active' && c.state !== 'sweeping')) return null;
    return { sessionId: c.sessionId, farEnd: c.peer, epoch: c.epoch };
  }

  /** L3: tell every linked sibling which far end we are in a call with (or none). */
  private announce(): void {
    const call = this.ownCall();
    for (const link of this.ctx.opts.links.links()) {
      if (link.peer?.account === this.ctx.opts.self.account) link.rpc.notify('presence.call', { call });
    }
  }
}
