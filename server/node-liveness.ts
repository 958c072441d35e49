import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';
import type { Bus } from './bus/bus.ts';
import type { AccountStore, OnlineRow } from './store.ts';

export interface LivenessOptions {
  /** How often the lease is renewed and the reaper runs; default 2 s. */
  renewMs?: number;
  /**
   * How long a lease lasts without renewal; default 8 s (four renewals). A node silent this long
   * is dead; with the reaper running every renewal, the others see it within 10 s of its death.
   */
  ttlMs?: number;
}

export interface LivenessHooks {
  /** Close every socket: this node's logins may be served elsewhere already. */
  fence(reason: string): void;
  /** The reaper removed a dead node's logins: tell their followers they are offline. */
  reaped(rows: OnlineRow[]): void;
  /** The lease was renewed: the store answers, so writes that waited for it may go now. */
  renewed?(): void;
}

/**
 * Node liveness without split brain (DESIGN.md §7). The node renews a lease row every `renewMs`
 * while it reaches both the store and the bus. The reaper (every node tries; an advisory lock
 * lets one run at a time) removes the online rows of nodes whose lease expired, but only on a
 * node that has been healthy for a whole lease time, so nothing is reaped because of a store or
 * bus outage that every node saw. A node fences itself (closes its sockets, so its endpoints
 * log in elsewhere) when its lease was reaped, or when its own lease lapsed while another node
 * held an unbroken lease all along (it alone is cut off); when it cannot reach the store at all
 * it cannot tell, and keeps serving.
 */
export class NodeLiveness {
  private readonly renewMs: number;
  private readonly ttlMs: number;
  private timer: TimerHandle | undefined;
  private lastRenewedAt = 0;
  private healthySince: number | undefined;
  private fencedAt: number | undefined;
  private ticking: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly store: AccountStore,
    private readonly bus: Bus,
    readonly nodeId: string,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly hooks: LivenessHooks,
    opts: LivenessOptions = {},
  ) {
    this.renewMs = opts.renewMs ?? 2_000;
    this.ttlMs = opts.ttlMs ?? 8_000;
  }

  async start(): Promise<void> {
    const now = this.clock.now();
    await this.store.putLease(this.nodeId, now, this.ttlMs);
    this.lastRenewedAt = now;
    this.healthySince = now;
    this.timer = this.clock.setInterval(() => {
      // One tick at a time: a slow store must not pile them up.
      this.ticking ??= this.tick().finally(() => (this.ticking = undefined));
    }, this.renewMs);
  }

  /** Ready for traffic: the bus is up and the lease was renewed within its lifetime. */
  get ready(): boolean {
    return !this.stopped && this.bus.connected && this.clock.now() - this.lastRenewedAt < this.ttlMs;
  }

  /** Stops renewing and gives the lease up (a clean shutdown: nothing is left to reap). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) this.clock.clear(this.timer);
    await this.ticking;
    await this.store.dropLease(this.nodeId).catch((err: unknown) => this.log.warn({ err }, 'lease not given up'));
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    const now = this.clock.now();
    await this.renew(now);
    if (this.stopped) return;
    await this.fenceIfCutOff(now);
    await this.reap(now);
  }

  private async renew(now: number): Promise<void> {
    if (!this.bus.connected) {
      // Without the bus this node cannot relay: let the lease lapse.
      this.healthySince = undefined;
      return;
    }
    try {
      if (await this.store.renewLease(this.nodeId, now, this.ttlMs)) {
        this.lastRenewedAt = now;
        this.healthySince ??= now;
        this.fencedAt = undefined;
        this.hooks.renewed?.();
        return;
      }
      // Another node reaped this one: its logins' rows are gone, its sockets must go too.
      this.log.error({ node: this.nodeId }, 'lease was reaped by another node; fencing');
      this.hooks.fence('this node was declared dead by the cluster');
      await this.store.putLease(this.nodeId, now, this.ttlMs);
      this.lastRenewedAt = now;
      this.healthySince = now;
    } catch (err) {
      this.healthySince = undefined;
      this.log.warn({ err, node: this.nodeId }, 'lease not renewed');
    }
  }

  private async fenceIfCutOff(now: number): Promise<void> {
    // Two renewals of slack: in an outage every node's lease lapses within one renewal of the others'.
    const slack = this.ttlMs + 2 * this.renewMs;
    if (this.fencedAt !== undefined || now - this.lastRenewedAt < slack) return;
    let fresh: number;
    try {
      // Only leases unbroken for as long: after an outage everyone saw, the others' leases are
      // fresh again but new, and this node's bus or pool may come back a moment after theirs.
      fresh = await this.store.countFreshLeases(now, this.nodeId, now - slack);
    } catch {
      return; // The store is out of reach: nobody can reap, keep serving.
    }
    if (fresh === 0) return; // Everyone is cut off alike (an outage), or only just back: keep serving.
    // The store answered just now. A node that reaches the bus too was only late back from an
    // outage everyone saw (its pool reconnected a query after the others'), not cut off alone.
    if (this.bus.connected && (await this.store.renewLease(this.nodeId, now, this.ttlMs).catch(() => false))) {
      this.lastRenewedAt = now;
      this.hooks.renewed?.();
      return;
    }
    this.fencedAt = now;
    this.log.error({ node: this.nodeId, others: fresh, lapsedMs: now - this.lastRenewedAt }, 'cut off while other nodes are alive; fencing');
    this.hooks.fence('this node is cut off from the cluster');
  }

  private async reap(now: number): Promise<void> {
    if (this.healthySince === undefined || now - this.healthySince < this.ttlMs + this.renewMs) return;
    try {
      const reaped = await this.store.reapExpiredNodes(now);
      if (!reaped || (reaped.nodes.length === 0 && reaped.rows.length === 0)) return;
      this.log.warn({ nodes: reaped.nodes, endpoints: reaped.rows.length }, 'reaped dead nodes');
      this.hooks.reaped(reaped.rows);
    } catch (err) {
      this.log.warn({ err }, 'reaper failed');
    }
  }
}
