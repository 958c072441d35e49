import type { EventBus } from '../bus.ts';
import type { Clock } from '../clock.ts';
import type { CallRecord, HistoryEndpoint, HistorySweep } from '../protocol/history.ts';
import type { Party } from '../protocol/peer.ts';
import type { EndpointEvents } from '../session/events.ts';

interface Pending {
  record: CallRecord;
  startedAtMono: number;
  /** The household endpoint that holds the answered call now (sweeps move it, S7). */
  holder?: HistoryEndpoint;
  /** A sweep the far end accepted (S7) but that is not yet finished: it may still roll back (S8). */
  moving?: HistorySweep;
}

const endpointOf = (p: Party | HistoryEndpoint): HistoryEndpoint => ({ endpointId: p.endpointId, label: p.label });

/**
 * A15: turns the caller's H11 events into one record per household call: who rang, which
 * endpoints rang, who answered, every sweep of the answered call (the far end sees the call's
 * other party change when it accepts an update, S7), how and when it ended. The record goes out
 * on the bus as `call.record` (diagnostics publishes it; the access reporter sends it).
 */
export class CallHistoryRecorder {
  private pending: Pending | undefined;

  constructor(
    private readonly bus: EventBus<EndpointEvents>,
    private readonly clock: Clock,
    private readonly door: HistoryEndpoint,
  ) {
    bus.on(this, 'ring.started', (e) => this.onStarted(e));
    bus.on(this, 'ring.fork', (e) => this.onFork(e));
    bus.on(this, 'ring.answered', (e) => this.onAnswered(e));
    bus.on(this, 'call.state', (e) => this.onCallState(e));
    bus.on(this, 'sweep.finished', (e) => this.onSweepFinished(e));
    bus.on(this, 'ring.ended', (e) => this.onEnded(e));
  }

  close(): void {
    this.bus.removeOwner(this);
    this.pending = undefined;
  }

  private onStarted(e: EndpointEvents['ring.started']): void {
    const ago = this.clock.mono() - e.startedAtMono;
    this.pending = {
      startedAtMono: e.startedAtMono,
      record: { sessionId: e.sessionId, account: e.account, door: { ...this.door }, caller: e.label.slice(0, 64), startedAt: Math.round(this.clock.now() - ago), rang: [], sweeps: [], outcome: 'missed', durationMs: 0 },
    };
  }

  private mine(sessionId: string): Pending | undefined {
    return this.pending?.record.sessionId === sessionId ? this.pending : undefined;
  }

  private onFork(e: EndpointEvents['ring.fork']): void {
    const p = this.mine(e.sessionId);
    if (!p || e.state !== 'ringing' || p.record.rang.some((r) => r.endpointId === e.endpointId)) return;
    p.record.rang.push({ endpointId: e.endpointId, label: e.label });
  }

  private onAnswered(e: EndpointEvents['ring.answered']): void {
    const p = this.mine(e.sessionId);
    if (!p) return;
    p.holder = endpointOf(e.by);
    p.record.answeredBy = endpointOf(e.by);
    p.record.answeredMs = e.ms;
  }

  /** S7: the answered call's other party changing starts a sweep. */
  private onCallState(e: EndpointEvents['call.state']): void {
    const p = this.mine(e.call.sessionId);
    if (!p) return;
    const peer = e.call.peer;
    if (!p.holder || peer.endpointId === '' || peer.endpointId === p.holder.endpointId || e.call.state === 'ended') return;
    p.moving = { from: p.holder, to: endpointOf(peer), ms: this.msSince(p) };
  }

  /** S7, S8: the far end's sweep is over: moved (a sweep of the call) or rolled back (none). */
  private onSweepFinished(e: EndpointEvents['sweep.finished']): void {
    const p = this.pending;
    if (!p || e.role !== 'farEnd') return;
    const moved = p.moving;
    p.moving = undefined;
    if (!moved || e.outcome !== 'completed') return;
    p.record.sweeps.push(moved);
    p.holder = moved.to;
  }

  private onEnded(e: EndpointEvents['ring.ended']): void {
    const p = this.mine(e.sessionId);
    if (!p) return;
    this.pending = undefined;
    const record: CallRecord = { ...p.record, outcome: e.outcome, durationMs: Math.max(0, e.ms) };
    if (e.reason) record.reason = e.reason.slice(0, 256);
    this.bus.emit('call.record', { record });
  }

  private msSince(p: Pending): number {
    return Math.round((this.clock.mono() - p.startedAtMono) * 100) / 100;
  }
}
