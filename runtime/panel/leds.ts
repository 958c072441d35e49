import type { LedPattern } from '../../drivers/buttons/panel.ts';
import type { CallSnapshot } from '../../core/session/events.ts';

/** What the call LED shows, derived from one place: an error flash, a sweep in flight, the call. */
export interface LedInputs {
  call: CallSnapshot | null;
  /** A sweep this endpoint takes part in (as holder or newcomer) has started and not finished. */
  sweeping: boolean;
  /** A button action failed a moment ago. */
  error: boolean;
  /** A sibling's pushed call rings here (S10 'ask'). */
  invited?: boolean;
}

export function callLed(i: LedInputs): LedPattern {
  if (i.error) return 'error';
  const state = i.call?.state;
  if (i.sweeping && state !== 'ended') return 'sweeping';
  if (i.invited && (state === undefined || state === 'ended')) return 'ringing';
  switch (state) {
    case 'ringing':
      return 'ringing';
    case 'active':
      return 'incall';
    case 'sweeping':
      return 'sweeping';
    default:
      return 'off';
  }
}

export function muteLed(call: CallSnapshot | null): LedPattern {
  return call && call.state !== 'ended' && call.muted ? 'on' : 'off';
}
