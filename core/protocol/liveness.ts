import type { Clock, TimerHandle } from '../clock.ts';

/**
 * L5: every ready link says `link.alive` every `intervalMs`; a link that has heard nothing from
 * its peer for `deadAfterMs` is dead. libdatachannel alone notices a vanished peer only through
 * ICE consent freshness (~29 s), far too late for a takeover (S9) or a zombie call (C5).
 * Checked every `intervalMs / 2`, so a dead peer is known within deadAfterMs + intervalMs / 2.
 * Pure (no node:, no DOM): the device's links and the phone page's links both use it.
 */
export const LIVENESS = { intervalMs: 1000, deadAfterMs: 2500 } as const;

export interface LivenessOptions {
  clock: Clock;
  /** Sends one `link.alive`; may throw (a closing channel), which is ignored. */
  sendAlive: () => void;
  /** Called once when the peer has been silent too long. */
  onDead: (silentMs: number) => void;
  intervalMs?: number;
  deadAfterMs?: number;
}

export class Liveness {
  private lastHeard: number;
  private lastSent = -Infinity;
  private lastTick = 0;
  private timer: TimerHandle | undefined;
  private readonly intervalMs: number;
  private readonly deadAfterMs: number;

  constructor(private readonly opts: LivenessOptions) {
    this.intervalMs = opts.intervalMs ?? LIVENESS.intervalMs;
    this.deadAfterMs = opts.deadAfterMs ?? LIVENESS.deadAfterMs;
    this.lastHeard = opts.clock.mono();
  }

  /** Starts sending and watching; idempotent. */
  start(): void {
    if (this.timer) return;
    this.lastHeard = this.opts.clock.mono();
    this.lastTick = this.lastHeard;
    this.tick();
    this.timer = this.opts.clock.setInterval(() => this.tick(), this.intervalMs / 2);
  }

  /** Anything that arrived from the peer counts as a sign of life. */
  heard(): void {
    this.lastHeard = this.opts.clock.mono();
  }

  stop(): void {
    if (this.timer) this.opts.clock.clear(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const now = this.opts.clock.mono();
    // Our own event loop stalled: what the peer sent meanwhile is still queued behind this timer,
    // so the silence is ours, not the peer's. Give it a fresh window instead of a false death.
    if (now - this.lastTick > this.intervalMs) this.lastHeard = now;
    this.lastTick = now;
    const silent = now - this.lastHeard;
    if (silent >= this.deadAfterMs) {
      this.stop();
      this.opts.onDead(Math.round(silent));
      return;
    }
    if (now - this.lastSent >= this.intervalMs - 1) {
      this.lastSent = now;
      try {
        this.opts.sendAlive();
      } catch {
        // The channel is closing; its own close tells the link.
      }
    }
  }
}
