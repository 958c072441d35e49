import type { Link } from './ports.ts';
import { SweepError, toSweepError } from '../errors.ts';
import type { Call, CallContext } from './call-context.ts';

/** H2, H5: why the caller stopped this endpoint's ring, in words the endpoint can show. */
export function cancelText(reason: 'answered' | 'missed' | 'callerHungUp', by: string | undefined): string {
  if (reason === 'answered') return `answered on ${by ?? 'another device'}`;
  if (reason === 'missed') return 'missed';
  return 'the caller hung up';
}

/** H3: "answered on <label>" out of an ANSWERED_ELSEWHERE refusal's message (which the rpc prefixes with the request type). */
export function answeredElsewhereText(message: string): string {
  return /answered on .*?(?= \(H3\)$|$)/.exec(message)?.[0] ?? 'answered on another device';
}

/**
 * The rung endpoint's side of a household call (docs/protocol.md H2, H3, H9): the caller stops
 * its ring with `call.cancel`, and an answer that lost the race ends the ring here.
 */
export class RingIn {
  constructor(private readonly ctx: CallContext) {}

  registerHandlers(link: Link): void {
    const { ctx } = this;
    link.rpc.handle('call.cancel', (body) => {
      // H9: only the caller of the call ringing here, on the link it rang over.
      const call = ctx.callWith(body.sessionId, link);
      if (call.state !== 'ringing' || call.direction !== 'in' || call.link !== link) {
        throw new SweepError('BAD_STATE', `call ${body.sessionId} is ${call.state}, not ringing here (H9)`);
      }
      ctx.apply(call, 'hangup', cancelText(body.reason, body.by));
      return {};
    });
  }

  /** H3: our answer lost to another endpoint's: the ring ends here with who answered. */
  answerRefused(call: Call, err: unknown): SweepError {
    const e = toSweepError(err);
    if (e.code === 'ANSWERED_ELSEWHERE' && this.ctx.call === call && call.state === 'ringing') {
      this.ctx.apply(call, 'hangup', answeredElsewhereText(e.message));
    }
    return e;
  }
}
