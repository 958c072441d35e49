import type { EndpointInfo } from '../protocol/common.ts';
import type { Party } from '../protocol/peer.ts';
import type { CallRecord } from '../protocol/history.ts';
import type { CallState } from './call-state.ts';

export type SweepRole = 'newcomer' | 'holder' | 'farEnd';
export type SweepOutcome = 'completed' | 'moved' | 'refused' | 'rolledBack';

/** H11: where one endpoint of a rung household is (a fork of the call). */
export type RingForkState = 'linking' | 'inviting' | 'ringing' | 'busy' | 'dnd' | 'declined' | 'lost' | 'failed' | 'cancelled' | 'answered';

export interface SweepStep {
  step: string;
  /** ms since the sweep's first message on this endpoint. */
  ms: number;
}

export interface CallSnapshot {
  sessionId: string;
  state: CallState;
  direction: 'in' | 'out';
  peer: Party;
  epoch: number;
  startedAt: number | null;
  doorRights: boolean;
  muted: boolean;
  onHold: boolean;
}

/** Everything the runtime tells its listeners (the lab UI, diagnostics, tests, benchmarks). */
export interface EndpointEvents extends Record<string, unknown> {
  'call.state': { call: CallSnapshot; reason?: string };
  'sweep.step': { sweepId: string; role: SweepRole; step: string; ms: number };
  'sweep.finished': {
    sweepId: string;
    role: SweepRole;
    outcome: SweepOutcome;
    reason?: string;
    code?: string;
    /** performance.now() at the sweep's first message on this endpoint. */
    startedAtMono: number;
    timeline: SweepStep[];
  };
  /** S10 'ask': a sibling sends its call here; it rings until accepted, declined or timed out. */
  'sweep.invited': { sweepId: string; from: string; fromLabel: string; sessionId: string };
  'sweep.inviteEnded': { sweepId: string; reason: string };
  /** H11: a household call (an account) started ringing its online endpoints. */
  'ring.started': { sessionId: string; account: string; label: string; endpoints: string[]; startedAtMono: number };
  /** H11: one rung endpoint's fork changed state; ms since the ring started. */
  'ring.fork': { sessionId: string; endpointId: string; label: string; state: RingForkState; ms: number; reason?: string };
  /** H2, H11: the first answer won. */
  'ring.answered': { sessionId: string; account: string; by: Party; ms: number };
  /** H11: the household call is over: missed, cancelled by the caller, or the answered call ended. */
  'ring.ended': { sessionId: string; account: string; outcome: 'answered' | 'missed' | 'cancelled'; rang: string[]; answeredBy?: Party; reason?: string; ms: number };
  /** H7: this endpoint was set to ring or not (a command, the page's toggle). */
  'dnd.changed': { on: boolean };
  /** A15: the record of a household call this endpoint rang, once it is over. */
  'call.record': { record: CallRecord };
  'sibling.call': { endpointId: string; call: { sessionId: string; farEnd: Party; epoch: number } | null };
  'link.state': { peerId: string; up: boolean; reason?: string };
  /** A link kept ahead of need could not be made (issue 17): why, how often in a row; retried with back-off. */
  'link.failed': { peerId: string; reason: string; attempts: number; since: number };
  presence: { endpoint: EndpointInfo };
  'access.state': { connected: boolean };
  /**
   * A driver lost its device, failed, or came back (docs/mqtt.md Q15): a panel unplugged, an
   * audio sink refusing frames. `recovered` follows a `disconnected` once the device is back.
   */
  'driver.state': DriverStateEvent;
  /** The intercom's door relay pulsed or refused, for whoever asked (D1-D4, Q16). */
  'door.pulse': { by: string; ok: boolean; code?: string; message?: string };
}

export interface DriverStateEvent {
  /** `panel.serial`, `panel.simulated`, `audio.sink`, … */
  driver: string;
  /** The device path where there is one (`/dev/ttyUSB0`). */
  device?: string;
  state: 'connected' | 'disconnected' | 'recovered' | 'failed';
  message?: string;
  /** The driver's counters (disconnects, reconnects, failures, …). */
  counters?: Record<string, number>;
}
