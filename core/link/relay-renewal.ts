import type { Clock, TimerHandle } from '../clock.ts';
import type { Logger } from '../log.ts';
import type { PeerLink } from './peer-link.ts';

export interface RelayRenewalOptions<L extends PeerLink> {
  /** The ready links now. */
  links: () => L[];
  /** Whether the link's chosen path runs through this endpoint's own TURN relay. */
  relayed: (link: L) => boolean | Promise<boolean>;
  /** Whether a call or sweep uses the link to this peer now. */
  inUse: (peerId: string) => boolean;
  clock: Clock;
  log: Logger;
  /** How often a link kept for its call is looked at again. */
  checkEveryMs?: number;
}

export const RENEWED_REASON = 'TURN credentials renewed (L9)';

/**
 * L9: a relayed link keeps the TURN credentials it was made with, and the relay refuses to
 * refresh its allocation once they expire. So when fresh credentials arrive (A13 `ice` note),
 * relayed links are closed and remade with them: at once when no call uses them (links kept
 * ahead of need are rebuilt at once, L4), and a call's link as soon as its call ends.
 */
export class RelayRenewal<L extends PeerLink> {
  private readonly stale = new Set<L>();
  private timer: TimerHandle | undefined;

  constructor(private readonly opts: RelayRenewalOptions<L>) {}

  /** Fresh credentials arrived: every link relayed now is remade as soon as no call needs it. */
  async renew(): Promise<void> {
    for (const link of this.opts.links()) {
      const relayed = await Promise.resolve(this.opts.relayed(link)).catch(() => false);
      if (relayed && !link.isClosed) this.stale.add(link);
    }
    this.closeFree();
    if (this.stale.size > 0 && !this.timer) this.timer = this.opts.clock.setInterval(() => this.closeFree(), this.opts.checkEveryMs ?? 2000);
  }

  close(): void {
    if (this.timer) this.opts.clock.clear(this.timer);
    this.timer = undefined;
    this.stale.clear();
  }

  private closeFree(): void {
    for (const link of [...this.stale]) {
      if (!link.isClosed && this.opts.inUse(link.peerId)) continue;
      this.stale.delete(link);
      if (link.isClosed) continue;
      this.opts.log.info({ peer: link.peerId }, 'relayed link remade with fresh TURN credentials (L9)');
      link.close(RENEWED_REASON);
    }
    if (this.stale.size === 0 && this.timer) {
      this.opts.clock.clear(this.timer);
      this.timer = undefined;
    }
  }
}
