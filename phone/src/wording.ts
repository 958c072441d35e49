/** A refusal in words a resident understands, with its code kept for support. */
export function explain(e: { code: string; message: string }): string {
  const plain: Record<string, string> = {
    FORBIDDEN: 'not allowed for this account',
    UNAUTHORIZED: 'not authorised',
    OFFLINE: 'the device is offline',
    TIMEOUT: 'no answer in time',
    BUSY: 'another move of this call is in progress',
    NOT_FOUND: 'that call is no longer there',
    STALE_EPOCH: 'the call moved meanwhile',
    REFUSED: 'refused',
    BAD_STATE: 'not possible right now',
    RATE_LIMITED: 'too many attempts, wait a moment',
    CLOSED: 'the connection closed',
    UNKNOWN_TYPE: 'the other device cannot do this',
    ANSWERED_ELSEWHERE: 'another device answered first',
    DO_NOT_DISTURB: 'set to do not disturb',
  };
  return `${plain[e.code] ?? 'failed'} (${e.code}: ${e.message})`;
}

/** Why the call ended, from the engine's reason (core/engine: calls.ts, holder.ts), in words. */
export function callEndedText(who: string, reason: string | undefined, labelOf: (endpointId: string) => string): string {
  const r = reason ?? '';
  if (r.startsWith('swept to ')) return `The call moved to ${labelOf(r.slice('swept to '.length))}.`;
  if (r.startsWith('far end hung up')) return `${who} hung up.`;
  if (r.startsWith('peer restarted')) return `${who} restarted: the call ended.`;
  if (r.startsWith('link lost')) return `The call ended: the connection to ${who} was lost.`;
  if (r.startsWith('rejected')) return `${who} rejected the call.`;
  // H2, H5: the caller stopped this device's ring.
  if (r.startsWith('answered on ')) return `Answered on ${r.slice('answered on '.length)}.`;
  if (r === 'missed') return `Missed call from ${who}.`;
  if (r === 'the caller hung up') return `${who} stopped ringing.`;
  if (r.startsWith('declined')) return 'Declined.';
  return r ? `The call ended (${r}).` : 'The call ended.';
}
