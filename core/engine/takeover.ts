import type { PeerCatalogue, SessionState } from '../protocol/peer.ts';
import type { RequestBody, RequestResult } from '../protocol/envelope.ts';
import type { RpcChannel } from '../protocol/rpc.ts';
import { toSweepError, type SweepError } from '../errors.ts';
import type { Clock } from '../clock.ts';

/** S9: what a goAway to a holder that crashed or vanished fails with. */
export function holderGone(e: SweepError): boolean {
  return e.code === 'CLOSED' || e.code === 'TIMEOUT' || e.code === 'OFFLINE';
}

/** S9: the session a newcomer carries on when the holder cannot hand it over (from the sibling's presence.call, L3). */
export function grantlessSession(known: { sessionId: string; farEnd: SessionState['farEnd']; epoch: number }, now: number): SessionState {
  return { sessionId: known.sessionId, farEnd: known.farEnd, epoch: known.epoch, codec: 'opus/48000/1', startedAt: now, onHold: false, muted: false, doorRights: false };
}

/**
 * S5, S9: sends the update to the far end. A grantless update is refused UNAUTHORIZED until the far
 * end's own L5 check sees the holder's link dead, so it is asked again every 200 ms until the deadline.
 */
export async function sendUpdate(
  rpc: RpcChannel<PeerCatalogue>,
  update: RequestBody<PeerCatalogue, 'sweep.update'>,
  opts: { clock: Clock; timeoutMs: number },
): Promise<RequestResult<PeerCatalogue, 'sweep.update'>> {
  const deadline = opts.clock.mono() + opts.timeoutMs;
  for (;;) {
    try {
      return await rpc.request('sweep.update', update, { timeoutMs: opts.timeoutMs });
    } catch (err) {
      const e = toSweepError(err);
      if (update.grant !== null || e.code !== 'UNAUTHORIZED' || opts.clock.mono() + 200 > deadline) throw e;
      await new Promise<void>((r) => opts.clock.setTimeout(r, 200));
    }
  }
}
