/** Every rejection and throw in Sweep carries one of these codes; never reject with a string. */
export type ErrorCode =
  | 'INVALID_MESSAGE' // a message failed its schema; the message names the field path
  | 'INVALID_CONFIG'
  | 'UNKNOWN_TYPE' // a message type nobody handles
  | 'TOO_LARGE'
  | 'TIMEOUT'
  | 'CLOSED' // the object was closed while the request was pending
  | 'UNAUTHORIZED' // bad credentials, bad certificate, bad signature
  | 'FORBIDDEN' // authenticated, but not allowed (other account, not a buddy)
  | 'RATE_LIMITED'
  | 'NOT_FOUND'
  | 'OFFLINE'
  | 'BUSY' // another operation on the same object is in flight
  | 'STALE_EPOCH'
  | 'REPLAYED'
  | 'EXPIRED'
  | 'REFUSED' // the peer said no
  | 'BAD_STATE' // not allowed in the current state
  | 'ANSWERED_ELSEWHERE' // H3: a household call was answered on another endpoint first
  | 'DO_NOT_DISTURB' // H7: the endpoint is set not to ring
  | 'INTERNAL';

export class SweepError extends Error {
  override readonly name = 'SweepError';
  /** A17: how long the refusing server asks to be left alone before the next attempt (ms). */
  readonly retryAfterMs: number | undefined;
  constructor(
    readonly code: ErrorCode,
    message: string,
    options?: { cause?: unknown; retryAfterMs?: number | undefined },
  ) {
    super(message, options && 'cause' in options ? { cause: options.cause } : undefined);
    this.retryAfterMs = options?.retryAfterMs;
  }
}

/** Turns anything caught into a SweepError without losing the original as `cause`. */
export function toSweepError(err: unknown, fallback: ErrorCode = 'INTERNAL'): SweepError {
  if (err instanceof SweepError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new SweepError(fallback, message, { cause: err });
}

/** The wire form of an error inside a response envelope. */
export interface WireError {
  code: string;
  message: string;
  /** A17: only to a peer that reads it (an older one's schema refuses unknown fields). */
  retryAfterMs?: number;
}

export function toWireError(err: unknown, withRetryAfter = false): WireError {
  const e = toSweepError(err);
  return withRetryAfter && e.retryAfterMs !== undefined ? { code: e.code, message: e.message, retryAfterMs: e.retryAfterMs } : { code: e.code, message: e.message };
}
