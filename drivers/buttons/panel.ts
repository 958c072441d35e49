import type { ButtonAction, LedPattern } from './line-protocol.ts';

export type { ButtonAction, LedPattern } from './line-protocol.ts';

/**
 * Panel drivers: the keys, hook switch, LEDs and door relay of a handset or intercom, wired to a
 * small microcontroller (docs/serial-protocol.md). Promise-only: methods reject (SweepError),
 * never throw synchronously.
 */

export interface ButtonEvent {
  button: string;
  action: ButtonAction;
  /** The panel's own sequence number of the line (0-255, wrapping). */
  seq: number;
  /** performance.now() (the driver's clock) when the line was decoded. */
  atMono: number;
}

/** `disconnected`: opened once, lost since, reconnecting by itself. */
export type PanelState = 'new' | 'connected' | 'disconnected' | 'closed';

export interface PanelInfo {
  firmware: string;
  protocol: number;
}

export interface PanelCounters {
  /** Lines accepted from the panel. */
  accepted: number;
  /** Lines dropped: bad checksum, malformed, not a known message, too long. */
  badChecksum: number;
  malformed: number;
  invalid: number;
  overlong: number;
  /** Button lines that repeated the previous one's sequence number, dropped. */
  duplicates: number;
  /** Button lines whose sequence number skipped ahead (lines lost on the wire). */
  gaps: number;
  /** Times the connection was lost, and reopened. */
  disconnects: number;
  reconnects: number;
  commandsSent: number;
}

/**
 * One panel. Contract:
 * - `open()` resolves once commands can be written (the port is open); it does not wait for the
 *   panel's hello. It rejects (OFFLINE, INTERNAL) if the device cannot be opened the first time,
 *   so failing to start is told apart from dying later. Opening an open panel resolves at once;
 *   after `close()` it rejects CLOSED.
 * - Button events go to every `onButton` listener in the order the panel sent them, and only
 *   for lines that passed their checksum and parse; a line repeating the previous button line's
 *   sequence number is a duplicate and dropped. A throwing listener is logged, never fatal.
 * - `setLed(led, pattern)` is level-triggered: the panel remembers the wanted state of every LED.
 *   It resolves once the command is written to the device, or at once while disconnected: every
 *   LED's state is sent again after each (re)connection. Unknown names or patterns reject
 *   INVALID_MESSAGE naming the value and what is allowed.
 * - `pulseRelay(ms)` is edge-triggered and never queued for later: it resolves once the command
 *   is written, rejects OFFLINE while disconnected (a door must not open minutes after the
 *   press), INVALID_MESSAGE outside RELAY_MIN_MS-RELAY_MAX_MS.
 * - Commands may overlap; they are written in call order. Before `open()` they reject BAD_STATE.
 * - Losing the device (a USB adapter pulled) is not fatal: the state goes `disconnected`, the
 *   driver reopens with back-off until it is back, then says hello and re-sends the LED states.
 *   `onState` listeners hear every change.
 * - `close()` is idempotent: commands not yet written reject CLOSED, no event is delivered after
 *   it resolves, reconnection stops and the device is released.
 */
export interface Panel {
  readonly state: PanelState;
  /** What the panel said in its last hello; undefined until then. */
  readonly info: PanelInfo | undefined;
  readonly counters: Readonly<PanelCounters>;
  onButton(fn: (e: ButtonEvent) => void): void;
  onState(fn: (state: PanelState) => void): void;
  open(): Promise<void>;
  setLed(led: string, pattern: LedPattern): Promise<void>;
  pulseRelay(ms: number): Promise<void>;
  close(): Promise<void>;
}

export function emptyCounters(): PanelCounters {
  return {
    accepted: 0,
    badChecksum: 0,
    malformed: 0,
    invalid: 0,
    overlong: 0,
    duplicates: 0,
    gaps: 0,
    disconnects: 0,
    reconnects: 0,
    commandsSent: 0,
  };
}
