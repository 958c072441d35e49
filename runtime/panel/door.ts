import type { Panel } from '../../drivers/buttons/panel.ts';
import type { Endpoint } from '../endpoint.ts';
import type { Link } from '../p2p/link.ts';
import type { CallSnapshot } from '../../core/session/events.ts';
import type { Clock } from '../../core/clock.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import type { Logger } from '../../platform/log.ts';

export interface DoorRequest {
  sessionId: string;
  /** The sender's certified identity (P4). */
  from: { account: string; endpointId: string };
}

/**
 * D2 as a pure check: may this request open the door of this call? Throws SweepError naming why
 * not; returns nothing when it may.
 */
export function checkDoorOpen(call: CallSnapshot | null, req: DoorRequest): void {
  if (!call || call.sessionId !== req.sessionId || call.state === 'ended') {
    throw new SweepError('NOT_FOUND', `no call ${req.sessionId} here (D2)`);
  }
  if (call.state !== 'active' && call.state !== 'sweeping') {
    throw new SweepError('BAD_STATE', `call ${req.sessionId} is ${call.state}, not active (D2)`);
  }
  if (call.peer.endpointId !== req.from.endpointId || call.peer.account !== req.from.account) {
    throw new SweepError('FORBIDDEN', `${req.from.endpointId} is not the holder of call ${req.sessionId}; ${call.peer.endpointId} is (D2)`);
  }
  if (!call.doorRights) throw new SweepError('FORBIDDEN', `call ${req.sessionId} grants no door rights (D2)`);
}

export interface DoorRelayOptions {
  endpoint: Endpoint;
  panel: Panel;
  pulseMs: number;
  guardMs: number;
  clock: Clock;
  log: Logger;
  onPulse?: (e: { by: string; ok: boolean; code?: string; message?: string }) => void;
}

/**
 * The intercom's door relay (Part D): answers `door.open` on every link, checks D2, keeps the
 * guard time (D3) and never queues a pulse (D4).
 */
export class DoorRelay {
  #lastPulseMono: number | undefined;
  #closed = false;
  readonly #handled = new WeakSet<Link>();

  constructor(private readonly opts: DoorRelayOptions) {
    const links = opts.endpoint.links;
    // Handlers go on every link: those made from now on, and those that exist already.
    links.onLinkCreated((link) => this.#register(link));
    links.onLinkReady((link) => this.#register(link));
    for (const link of links.links()) this.#register(link);
  }

  /**
   * A press on the intercom's own door button (no call needed), or from a local integration that
   * `by` names (Home Assistant, Q16): no D2 check, the same guard time (D3) and no queueing (D4).
   */
  async pulseLocal(by = 'local'): Promise<void> {
    try {
      await this.#pulse(by);
    } catch (err) {
      const e = toSweepError(err);
      this.opts.onPulse?.({ by, ok: false, code: e.code, message: e.message });
      throw e;
    }
  }

  close(): void {
    this.#closed = true;
  }

  #register(link: Link): void {
    if (this.#closed || this.#handled.has(link)) return;
    this.#handled.add(link);
    link.rpc.handle('door.open', async (body) => {
      const from = link.peer;
      if (!from) throw new SweepError('UNAUTHORIZED', 'door.open before hello');
      try {
        if (this.#closed) throw new SweepError('NOT_FOUND', 'no door relay on this endpoint (D2)');
        checkDoorOpen(this.opts.endpoint.calls.snapshot(), { sessionId: body.sessionId, from });
        await this.#pulse(from.endpointId);
        return { pulseMs: this.opts.pulseMs };
      } catch (err) {
        const e = toSweepError(err);
        this.opts.log.warn({ by: from.endpointId, sessionId: body.sessionId, code: e.code, reason: e.message }, 'door not opened');
        this.opts.onPulse?.({ by: from.endpointId, ok: false, code: e.code, message: e.message });
        throw e;
      }
    });
  }

  /** D3, D4: the guard time holds from the moment a pulse is decided, so two requests in one tick cannot both pass. */
  async #pulse(by: string): Promise<void> {
    const now = this.opts.clock.mono();
    const last = this.#lastPulseMono;
    if (last !== undefined && now - last < this.opts.guardMs) {
      const ago = Math.round(now - last);
      throw new SweepError('RATE_LIMITED', `door opened ${ago} ms ago; the guard time is ${this.opts.guardMs} ms, wait ${this.opts.guardMs - ago} ms (D3)`);
    }
    this.#lastPulseMono = now;
    try {
      await this.opts.panel.pulseRelay(this.opts.pulseMs);
    } catch (err) {
      this.#lastPulseMono = last; // nothing was pulsed (D4)
      throw toSweepError(err);
    }
    this.opts.log.info({ by, pulseMs: this.opts.pulseMs }, 'door opened');
    this.opts.onPulse?.({ by, ok: true });
  }
}
