import { SweepError } from '../errors.ts';

/** C3: the one state union of a call on this endpoint. `sweeping` is transient, never persisted. */
export type CallState = 'idle' | 'ringing' | 'active' | 'sweeping' | 'ended';

export type CallEvent =
  | 'invite' // we placed or received an invite
  | 'answer'
  | 'reject'
  | 'hangup'
  | 'linkLost' // C5: the other party's link died and nobody took over
  | 'giveAway' // S4: as holder, we handed out a grant
  | 'takeOver' // S3: as newcomer, we started pulling a call
  | 'rollback' // S8: the sweep failed, the holder keeps the call
  | 'moved' // S7: the far end confirmed the new holder: our leg ends
  | 'completed' // S7: as newcomer, the far end accepted us
  | 'abandon' // S8: as newcomer, the sweep failed; we never held the call
  | 'resumed'; // L7: a restarted page took its own call back from the far end

const TABLE: Record<CallState, Partial<Record<CallEvent, CallState>>> = {
  idle: { invite: 'ringing', takeOver: 'sweeping', resumed: 'active' },
  ringing: { answer: 'active', reject: 'ended', hangup: 'ended', linkLost: 'ended' },
  active: { hangup: 'ended', linkLost: 'ended', giveAway: 'sweeping', moved: 'ended' },
  sweeping: { rollback: 'active', moved: 'ended', completed: 'active', abandon: 'ended', hangup: 'ended', linkLost: 'ended' },
  ended: {},
};

/** The transition function: the next state, or BAD_STATE naming what was allowed. */
export function transition(state: CallState, event: CallEvent): CallState {
  const next = TABLE[state][event];
  if (!next) {
    const allowed = Object.keys(TABLE[state]).join(', ') || 'nothing';
    throw new SweepError('BAD_STATE', `call is ${state}: ${event} not allowed (allowed: ${allowed})`);
  }
  return next;
}

export function canTransition(state: CallState, event: CallEvent): boolean {
  return TABLE[state][event] !== undefined;
}
