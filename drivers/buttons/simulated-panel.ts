import { systemClock, type Clock } from '../../core/clock.ts';
import { SweepError } from '../../core/errors.ts';
import { nullLogger, type Logger } from '../../core/log.ts';
import { PROTOCOL_VERSION, SEQ_MODULO, type ButtonAction, type LedPattern } from './line-protocol.ts';
import { ButtonSequencer, checkLed, checkRelay, PanelListeners } from './panel-core.ts';
import { emptyCounters, type ButtonEvent, type Panel, type PanelInfo, type PanelState } from './panel.ts';

export interface SimulatedPanelOptions {
  clock?: Clock;
  log?: Logger;
  /** Knob: `open()` rejects as if the device were missing. */
  failOpen?: boolean;
}

/**
 * A panel without hardware (serialport's binding-mock for our protocol): a real implementation
 * of the Panel contract, asynchronous like the wire, with knobs for tests (press buttons, unplug
 * and replug) and a record of what the panel shows (LEDs) and did (relay pulses).
 */
export class SimulatedPanel implements Panel {
  readonly counters = emptyCounters();
  /** What each LED shows now (the panel's side). */
  readonly leds = new Map<string, LedPattern>();
  readonly ledHistory: Array<{ led: string; pattern: LedPattern; atMono: number }> = [];
  readonly relayPulses: Array<{ ms: number; atMono: number }> = [];
  failOpen: boolean;
  /** Knob: told about every command the panel carries out (the lab prints them). */
  onCommand: ((c: { led: string; pattern: LedPattern } | { relayMs: number }) => void) | undefined;
  #state: PanelState = 'new';
  #plugged = true;
  #panelSeq = 0;
  readonly #wanted = new Map<string, LedPattern>();
  readonly #clock: Clock;
  readonly #listeners: PanelListeners;
  readonly #buttons = new ButtonSequencer(this.counters);
  readonly #inFlight = new Set<(err: SweepError) => void>();

  constructor(opts: SimulatedPanelOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#listeners = new PanelListeners(opts.log ?? nullLogger());
    this.failOpen = opts.failOpen ?? false;
  }

  get state(): PanelState {
    return this.#state;
  }

  get info(): PanelInfo | undefined {
    return this.#state === 'connected' ? { firmware: 'simulated', protocol: PROTOCOL_VERSION } : undefined;
  }

  onButton(fn: (e: ButtonEvent) => void): void {
    this.#listeners.onButton(fn);
  }

  onState(fn: (s: PanelState) => void): void {
    this.#listeners.onState(fn);
  }

  async open(): Promise<void> {
    if (this.#state === 'closed') throw new SweepError('CLOSED', 'the simulated panel is closed');
    if (this.#state !== 'new') return;
    await this.#tick();
    if (this.failOpen || !this.#plugged) throw new SweepError('OFFLINE', 'simulated panel: cannot open (failOpen knob or unplugged)');
    if (this.#state !== 'new') return;
    this.#setState('connected');
  }

  async setLed(led: string, pattern: LedPattern): Promise<void> {
    checkLed(led, pattern);
    this.#assertOpened();
    this.#wanted.set(led, pattern);
    if (this.#state !== 'connected') return;
    await this.#wire(() => this.#show(led, pattern));
  }

  async pulseRelay(ms: number): Promise<void> {
    checkRelay(ms);
    this.#assertOpened();
    if (this.#state !== 'connected') throw new SweepError('OFFLINE', 'the simulated panel is disconnected: relay not pulsed');
    await this.#wire(() => {
      this.relayPulses.push({ ms, atMono: this.#clock.mono() });
      this.onCommand?.({ relayMs: ms });
    });
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#setState('closed');
    this.#listeners.clear();
    for (const reject of [...this.#inFlight]) reject(new SweepError('CLOSED', 'the simulated panel closed'));
    this.#inFlight.clear();
  }

  // ---- knobs: the panel's side ------------------------------------------------------------

  /** A button line from the panel; resolves once delivered (or dropped while not connected). */
  async press(button: string, action: ButtonAction = 'down', seq?: number): Promise<void> {
    const s = seq ?? this.#panelSeq;
    this.#panelSeq = (s + 1) % SEQ_MODULO;
    await this.#tick();
    if (this.#state !== 'connected') return;
    this.counters.accepted += 1;
    if (this.#buttons.accept(s)) this.#listeners.button({ button, action, seq: s, atMono: this.#clock.mono() });
  }

  /** Down then up. */
  async click(button: string): Promise<void> {
    await this.press(button, 'down');
    await this.press(button, 'up');
  }

  /** The cable is pulled: in-flight commands reject OFFLINE, state goes `disconnected`. */
  unplug(): void {
    this.#plugged = false;
    if (this.#state !== 'connected') return;
    this.counters.disconnects += 1;
    for (const reject of [...this.#inFlight]) reject(new SweepError('OFFLINE', 'the simulated panel was unplugged'));
    this.#inFlight.clear();
    this.#setState('disconnected');
  }

  /** The cable is back: reconnects asynchronously and re-sends every LED state. */
  replug(): void {
    this.#plugged = true;
    if (this.#state !== 'disconnected') return;
    this.#clock.setTimeout(() => {
      if (this.#state !== 'disconnected' || !this.#plugged) return;
      this.counters.reconnects += 1;
      this.#buttons.reset();
      this.#setState('connected');
      for (const [led, pattern] of this.#wanted) this.#show(led, pattern);
    }, 1);
  }

  #show(led: string, pattern: LedPattern): void {
    this.counters.commandsSent += 1;
    this.leds.set(led, pattern);
    this.ledHistory.push({ led, pattern, atMono: this.#clock.mono() });
    this.onCommand?.({ led, pattern });
  }

  /** A command on the wire: applied asynchronously, unless closed or unplugged meanwhile. */
  #wire(apply: () => void): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = (err: SweepError) => reject(err);
      this.#inFlight.add(fail);
      this.#clock.setTimeout(() => {
        if (!this.#inFlight.delete(fail)) return;
        apply();
        resolve();
      }, 0);
    });
  }

  #tick(): Promise<void> {
    return new Promise((resolve) => this.#clock.setTimeout(resolve, 0));
  }

  #assertOpened(): void {
    if (this.#state === 'new') throw new SweepError('BAD_STATE', 'the simulated panel is not open yet');
    if (this.#state === 'closed') throw new SweepError('CLOSED', 'the simulated panel is closed');
  }

  #setState(s: PanelState): void {
    if (this.#state === s) return;
    this.#state = s;
    this.#listeners.state(s);
  }
}
