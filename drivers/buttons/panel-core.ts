import { SweepError } from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { LED_PATTERNS, NAME_RE, RELAY_MAX_MS, RELAY_MIN_MS, SEQ_MODULO, type LedPattern } from './line-protocol.ts';
import type { ButtonEvent, PanelCounters, PanelState } from './panel.ts';

/** What every Panel implementation shares: argument checks, sequence numbers, listeners. */

export function checkLed(led: string, pattern: string): void {
  if (typeof led !== 'string' || !NAME_RE.test(led)) {
    throw new SweepError('INVALID_MESSAGE', `LED name ${JSON.stringify(led)}: expected 1-12 of a-z 0-9 _`);
  }
  if (!(LED_PATTERNS as readonly string[]).includes(pattern)) {
    throw new SweepError('INVALID_MESSAGE', `LED pattern ${JSON.stringify(pattern)}: expected one of ${LED_PATTERNS.join(', ')}`);
  }
}

export function checkRelay(ms: number): void {
  if (!Number.isInteger(ms) || ms < RELAY_MIN_MS || ms > RELAY_MAX_MS) {
    throw new SweepError('INVALID_MESSAGE', `relay pulse of ${String(ms)} ms: expected an integer ${RELAY_MIN_MS}-${RELAY_MAX_MS}`);
  }
}

/** Drops a button line that repeats the previous one's sequence number; counts gaps. */
export class ButtonSequencer {
  #last: number | undefined;
  constructor(private readonly counters: PanelCounters) {}

  accept(seq: number): boolean {
    const last = this.#last;
    if (last === seq) {
      this.counters.duplicates += 1;
      return false;
    }
    if (last !== undefined && seq !== (last + 1) % SEQ_MODULO) this.counters.gaps += 1;
    this.#last = seq;
    return true;
  }

  /** After a reconnection the panel may have restarted its counter. */
  reset(): void {
    this.#last = undefined;
  }
}

/** Listener lists whose throwing members are logged, never fatal. */
export class PanelListeners {
  readonly #buttons: Array<(e: ButtonEvent) => void> = [];
  readonly #states: Array<(s: PanelState) => void> = [];
  constructor(private readonly log: Logger) {}

  onButton(fn: (e: ButtonEvent) => void): void {
    this.#buttons.push(fn);
  }
  onState(fn: (s: PanelState) => void): void {
    this.#states.push(fn);
  }
  button(e: ButtonEvent): void {
    for (const fn of [...this.#buttons]) this.#safe(() => fn(e));
  }
  state(s: PanelState): void {
    for (const fn of [...this.#states]) this.#safe(() => fn(s));
  }
  clear(): void {
    this.#buttons.length = 0;
    this.#states.length = 0;
  }
  #safe(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err }, 'panel listener threw');
    }
  }
}

export class HostSeq {
  #n = 0;
  next(): number {
    const n = this.#n;
    this.#n = (n + 1) % SEQ_MODULO;
    return n;
  }
}

export type LedStates = Map<string, LedPattern>;
