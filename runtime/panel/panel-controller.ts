import type { ButtonBinding, PanelConfig } from '../../firmware-config/panel-config.ts';
import type { ButtonEvent, LedPattern, Panel, PanelState } from '../../drivers/buttons/panel.ts';
import type { Endpoint } from '../endpoint.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import { NS, type Logger } from '../../platform/log.ts';
import { createPanel } from './create-panel.ts';
import { DoorRelay } from './door.ts';
import { callLed, muteLed } from './leds.ts';

export interface PanelDeps {
  log: Logger;
  clock?: Clock;
  /** A panel driver to use instead of the one the config names (tests); the controller owns it. */
  panel?: Panel;
}

/** Told after every button action: what it was and how it went. */
export interface PanelActionEvent {
  button: string;
  action: ButtonBinding['action'];
  ok: boolean;
  code?: string;
  message?: string;
  /** From the button line's decoding to the action's settling. */
  ms: number;
}

export interface PanelController {
  readonly panel: Panel;
  readonly door: DoorRelay | undefined;
  readonly stats: { presses: number; actions: number; failures: number; ignored: number };
  onAction(fn: (e: PanelActionEvent) => void): void;
  close(): Promise<void>;
}

/**
 * Starts the panel of `endpoint`: opens the driver the config names, maps buttons to call
 * actions, keeps the LEDs on the call state, and (when the config has a relay) answers
 * `door.open` (Part D). Rejects if the panel cannot be opened; later losses are the driver's to
 * recover from. A leaf: nothing in the endpoint depends on it.
 */
export async function startPanel(endpoint: Endpoint, config: PanelConfig, deps: PanelDeps): Promise<PanelController> {
  const log = deps.log.child({ ns: NS.panel });
  const clock = deps.clock ?? systemClock;
  const panel = deps.panel ?? createPanel(config.device, { log: deps.log.child({ ns: NS.driverPanel }), clock });
  try {
    await panel.open();
  } catch (err) {
    await panel.close();
    throw toSweepError(err);
  }
  return new Controller(endpoint, config, panel, clock, log);
}

class Controller implements PanelController {
  readonly stats = { presses: 0, actions: 0, failures: 0, ignored: 0 };
  readonly door: DoorRelay | undefined;
  readonly #bindings: Map<string, ButtonBinding>;
  readonly #actionListeners: Array<(e: PanelActionEvent) => void> = [];
  readonly #shown = new Map<string, LedPattern>();
  /** Sweeps this endpoint takes part in that have started and not finished. */
  readonly #sweeps = new Set<string>();
  #busy = false;
  #lostOnce = false;
  #errorTimer: TimerHandle | undefined;
  #closed = false;

  constructor(
    private readonly endpoint: Endpoint,
    private readonly config: PanelConfig,
    readonly panel: Panel,
    private readonly clock: Clock,
    private readonly log: Logger,
  ) {
    this.#bindings = new Map(config.buttons.map((b) => [`${b.button}:${b.on}`, b]));
    if (config.relay) {
      this.door = new DoorRelay({
        endpoint,
        panel,
        pulseMs: config.relay.pulseMs,
        guardMs: config.relay.guardMs,
        clock,
        log,
        onPulse: (e) => {
          if (!this.#closed) endpoint.bus.emit('door.pulse', e);
        },
      });
    }
    panel.onButton((e) => this.#onButton(e));
    panel.onState((s) => this.#onPanelState(s));
    const bus = endpoint.bus;
    bus.on(this, 'call.state', () => this.#syncLeds());
    // S10 'ask': a call sent here rings like an incoming call until it is taken or withdrawn.
    bus.on(this, 'sweep.invited', () => this.#syncLeds());
    bus.on(this, 'sweep.inviteEnded', () => this.#syncLeds());
    bus.on(this, 'sweep.step', (e) => {
      if (e.role === 'farEnd') return;
      this.#sweeps.add(e.sweepId);
      this.#clearError(); // a new sweep shows its own progress
      this.#syncLeds();
    });
    bus.on(this, 'sweep.finished', (e) => {
      if (e.role === 'farEnd') return;
      this.#sweeps.delete(e.sweepId);
      if (e.outcome === 'refused' || e.outcome === 'rolledBack') this.#flashError();
      this.#syncLeds();
    });
    this.#syncLeds();
  }

  onAction(fn: (e: PanelActionEvent) => void): void {
    this.#actionListeners.push(fn);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.endpoint.bus.removeOwner(this);
    if (this.#errorTimer) this.clock.clear(this.#errorTimer);
    this.door?.close();
    this.#actionListeners.length = 0;
    await this.panel.close();
  }

  /** Q15: a lost or returning panel goes on the bus as `driver.state` (diagnostics publishes it). */
  #onPanelState(s: PanelState): void {
    this.log.info({ state: s, ...this.panel.counters }, 'panel connection');
    if (this.#closed || s === 'new' || s === 'closed') return;
    const device = this.config.device;
    const state = s === 'disconnected' ? 'disconnected' : this.#lostOnce ? 'recovered' : 'connected';
    if (s === 'disconnected') this.#lostOnce = true;
    const { disconnects, reconnects, badChecksum, malformed, gaps } = this.panel.counters;
    this.endpoint.bus.emit('driver.state', {
      driver: `panel.${device.driver}`,
      ...(device.driver === 'serial' ? { device: device.path } : {}),
      state,
      ...(state === 'disconnected' ? { message: 'the panel went away; reconnecting (door relay refuses OFFLINE meanwhile)' } : {}),
      counters: { disconnects, reconnects, badChecksum, malformed, gaps },
    });
  }

  #onButton(e: ButtonEvent): void {
    if (this.#closed) return;
    this.stats.presses += 1;
    const binding = this.#bindings.get(`${e.button}:${e.action}`);
    if (!binding) return;
    if (this.#busy || (binding.action === 'sweep' && this.#sweeps.size > 0)) {
      // One action at a time: a second press while a sweep runs would only fail it.
      this.stats.ignored += 1;
      this.log.info({ button: e.button, action: binding.action }, 'press ignored: an action is in progress');
      return;
    }
    this.#busy = true;
    this.stats.actions += 1;
    this.#clearError();
    this.log.info({ button: e.button, on: e.action, action: binding.action, seq: e.seq }, 'button');
    this.#run(binding).then(
      () => this.#told(binding, e, null),
      (err: unknown) => this.#told(binding, e, toSweepError(err)),
    );
  }

  #told(b: ButtonBinding, e: ButtonEvent, err: SweepError | null): void {
    this.#busy = false;
    if (this.#closed) return;
    const ms = Math.round((this.clock.mono() - e.atMono) * 100) / 100;
    if (err) {
      this.stats.failures += 1;
      this.log.warn({ button: b.button, action: b.action, code: err.code, reason: err.message }, 'button action failed');
      this.#flashError();
    }
    const event: PanelActionEvent = { button: b.button, action: b.action, ok: !err, ms, ...(err ? { code: err.code, message: err.message } : {}) };
    for (const fn of [...this.#actionListeners]) {
      try {
        fn(event);
      } catch (listenerErr) {
        this.log.error({ err: listenerErr }, 'panel action listener threw');
      }
    }
  }

  async #run(b: ButtonBinding): Promise<void> {
    const calls = this.endpoint.calls;
    const call = calls.snapshot();
    switch (b.action) {
      case 'answer':
        if (this.#invited()) await calls.acceptInvite();
        else await calls.answer();
        return;
      case 'hangup':
        if (call?.state === 'ringing' && call.direction === 'in') await calls.reject('rejected at the panel');
        else if (this.#invited()) calls.declineInvite();
        else await calls.hangup('hung up at the panel');
        return;
      case 'mute':
        calls.setMuted(!call?.muted);
        return;
      case 'call':
        // H1: a bell for a household rings all its endpoints; one for an endpoint id rings that one.
        if (b.account !== undefined) {
          const rung = await calls.ringAccount(b.account, { doorRights: b.doorRights });
          // H7: nobody could ring (all busy, do not disturb or offline): the bell says so at once (error pattern).
          if (rung.state === 'ended') throw new SweepError('REFUSED', `nobody home: no device of ${b.account} could ring (H7)`);
        } else if (b.to !== undefined) await calls.placeCall(b.to, { doorRights: b.doorRights });
        return;
      case 'door':
        await this.#door();
        return;
      case 'sweep':
        await this.#sweep();
        return;
    }
  }

  /** Push the active call to the preferred sibling; with no call here, take a sibling's call back. */
  async #sweep(): Promise<void> {
    const calls = this.endpoint.calls;
    if (this.#invited()) {
      // The call a sibling sends here rings: the sweep key takes it, as the answer key does (S10).
      await calls.acceptInvite();
      return;
    }
    const call = calls.snapshot();
    if (call?.state === 'active') {
      const preferred = (this.config.pushTo ?? []).find((id) => this.endpoint.links.current(id)?.peer?.account === this.endpoint.account);
      await calls.push(preferred ? { to: preferred } : {});
      return;
    }
    if (call && call.state !== 'ended') throw new SweepError('BAD_STATE', `sweep button: the call is ${call.state}`);
    const sibling = calls.siblingCallsSnapshot()[0];
    if (!sibling) throw new SweepError('NOT_FOUND', 'sweep button: no call here nor on any other endpoint of this account');
    await calls.pull({ from: sibling.endpointId });
  }

  /** D1: ask the other party of our call (the intercom); an intercom's own button pulses locally. */
  async #door(): Promise<void> {
    if (this.door) return this.door.pulseLocal();
    await this.endpoint.calls.openDoor().catch((err: unknown) => {
      const e = toSweepError(err);
      throw new SweepError(e.code, `door button: ${e.message}`);
    });
  }

  /** A sibling's pushed call rings here, waiting for the user (S10 'ask'). */
  #invited(): boolean {
    const call = this.endpoint.calls.snapshot();
    return (!call || call.state === 'ended') && this.endpoint.calls.pendingInvitesSnapshot().length > 0;
  }

  #flashError(): void {
    if (this.config.errorMs === 0 || this.#closed) return;
    if (this.#errorTimer) this.clock.clear(this.#errorTimer);
    this.#errorTimer = this.clock.setTimeout(() => {
      this.#errorTimer = undefined;
      this.#syncLeds();
    }, this.config.errorMs);
    this.#syncLeds();
  }

  #clearError(): void {
    if (!this.#errorTimer) return;
    this.clock.clear(this.#errorTimer);
    this.#errorTimer = undefined;
    this.#syncLeds();
  }

  /** Sends each LED's derived pattern when it changed (level-triggered: the driver replays after reconnecting). */
  #syncLeds(): void {
    if (this.#closed) return;
    const call = this.endpoint.calls.snapshot();
    const wanted: Array<[string, LedPattern]> = [
      [this.config.leds.call, callLed({ call, sweeping: this.#sweeps.size > 0, error: this.#errorTimer !== undefined, invited: this.#invited() })],
    ];
    if (this.config.leds.mute) wanted.push([this.config.leds.mute, muteLed(call)]);
    for (const [led, pattern] of wanted) {
      if (this.#shown.get(led) === pattern) continue;
      this.#shown.set(led, pattern);
      this.panel.setLed(led, pattern).catch((err: unknown) => {
        const e = toSweepError(err);
        if (e.code !== 'CLOSED') this.log.warn({ led, pattern, code: e.code, reason: e.message }, 'LED not set');
      });
    }
  }
}
