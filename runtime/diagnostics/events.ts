import type { EndpointEvents, SweepOutcome, SweepStep } from '../../core/session/events.ts';
import type { EventBus } from '../../core/bus.ts';

/** One event on `<prefix>/<device>/event/<type>` (Q5). `seq` grows by one per event of this run. */
export interface DiagEvent {
  type: string;
  seq: number;
  at: number;
  data: Record<string, unknown>;
}

export interface SweepCounters {
  started: number;
  completed: number;
  moved: number;
  refused: number;
  rolledBack: number;
}

export interface LastSweep {
  sweepId: string;
  role: string;
  outcome: SweepOutcome;
  code?: string;
  reason?: string;
  timeline: SweepStep[];
}

const OUTCOME_EVENT: Record<SweepOutcome, string> = {
  completed: 'sweep.completed',
  moved: 'sweep.moved',
  refused: 'sweep.refused',
  rolledBack: 'sweep.rolledBack',
};

/**
 * Listens to the endpoint's bus (as `owner`) and turns what happened into diagnostics events:
 * call.started / call.answered / call.ended, sweep.started / completed / moved / refused /
 * rolledBack (with the per-step timeline), access.connected / access.lost, driver.error /
 * driver.recovered (Q15), door.opened / door.refused (Q16), link.failed. Keeps the sweep
 * counters and the last sweep for telemetry.
 */
export class EventMapper {
  readonly counters: SweepCounters = { started: 0, completed: 0, moved: 0, refused: 0, rolledBack: 0 };
  lastSweep: LastSweep | null = null;
  private seq = 0;
  private readonly lastCallState = new Map<string, string>();
  private readonly sweepsSeen = new Set<string>();

  constructor(
    private readonly now: () => number,
    private readonly emit: (e: DiagEvent) => void,
  ) {}

  attach(bus: EventBus<EndpointEvents>, owner: object): void {
    bus.on(owner, 'call.state', (e) => this.onCallState(e));
    bus.on(owner, 'sweep.step', (e) => this.onSweepStep(e));
    bus.on(owner, 'sweep.finished', (e) => this.onSweepFinished(e));
    bus.on(owner, 'access.state', (e) => this.make(e.connected ? 'access.connected' : 'access.lost', {}));
    // Q15: a driver's trouble, and its recovery; the first connection is not news.
    bus.on(owner, 'driver.state', (e) => {
      if (e.state !== 'connected') this.make(e.state === 'recovered' ? 'driver.recovered' : 'driver.error', { ...e });
    });
    bus.on(owner, 'door.pulse', (e) => this.make(e.ok ? 'door.opened' : 'door.refused', { ...e }));
    // Issue 17: a sibling or far end this device cannot reach, and why (no TURN, a blocked network).
    bus.on(owner, 'link.failed', (e) => this.make('link.failed', { ...e }));
    // A15: one record per household call this endpoint rang.
    bus.on(owner, 'call.record', (e) => this.make('call.record', { ...e.record }));
  }

  /** Events the diagnostics module tells about itself (such as dropped events). */
  make(type: string, data: Record<string, unknown>): void {
    this.seq += 1;
    this.emit({ type, seq: this.seq, at: this.now(), data });
  }

  private onCallState(e: EndpointEvents['call.state']): void {
    const { call } = e;
    const before = this.lastCallState.get(call.sessionId);
    this.lastCallState.set(call.sessionId, call.state);
    const data = { sessionId: call.sessionId, direction: call.direction, peer: call.peer, epoch: call.epoch, ...(e.reason ? { reason: e.reason } : {}) };
    if (call.state === 'ringing' && before === undefined) this.make('call.started', data);
    else if (call.state === 'active' && before === 'ringing') this.make('call.answered', data);
    else if (call.state === 'active' && before === undefined) this.make('call.started', { ...data, via: 'sweep' });
    else if (call.state === 'ended') {
      this.lastCallState.delete(call.sessionId);
      this.make('call.ended', data);
    }
  }

  private onSweepStep(e: EndpointEvents['sweep.step']): void {
    if (this.sweepsSeen.has(e.sweepId)) return;
    this.sweepsSeen.add(e.sweepId);
    this.counters.started += 1;
    this.make('sweep.started', { sweepId: e.sweepId, role: e.role, step: e.step });
  }

  private onSweepFinished(e: EndpointEvents['sweep.finished']): void {
    this.sweepsSeen.delete(e.sweepId);
    this.counters[e.outcome] += 1;
    this.lastSweep = {
      sweepId: e.sweepId,
      role: e.role,
      outcome: e.outcome,
      ...(e.code ? { code: e.code } : {}),
      ...(e.reason ? { reason: e.reason } : {}),
      timeline: e.timeline,
    };
    this.make(OUTCOME_EVENT[e.outcome], { ...this.lastSweep });
  }
}
