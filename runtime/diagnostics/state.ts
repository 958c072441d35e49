/**
 * The retained `state` topic and its last will (Q4). Each MQTT connection gets a session number
 * that never decreases (wall-clock ms, kept strictly increasing within the process), carried both
 * by the `online` message and by that connection's will. A will from an older connection that the
 * broker fires late (after the device has already reconnected) carries a smaller number: the
 * device sees it on its own state topic and publishes `online` again, and watchers ignore any
 * state whose session is older than one they have seen.
 */
export type DeviceState = 'online' | 'offline' | 'lost';

export interface StatePayload {
  state: DeviceState;
  session: number;
  at: number;
  /** Only in `online`: what this device runs. */
  version?: string;
}

export class SessionCounter {
  private last = 0;
  constructor(private readonly now: () => number) {}
  /** A new session number, greater than every earlier one. */
  next(): number {
    this.last = Math.max(this.last + 1, Math.floor(this.now()));
    return this.last;
  }
  get current(): number {
    return this.last;
  }
}

export function statePayload(state: DeviceState, session: number, at: number, version?: string): StatePayload {
  return version === undefined ? { state, session, at } : { state, session, at, version };
}

/** Parses a retained state message leniently (it may come from an older firmware); undefined if unusable. */
export function readState(payload: Buffer): StatePayload | undefined {
  try {
    const v = JSON.parse(payload.toString('utf8')) as Partial<StatePayload>;
    if ((v.state === 'online' || v.state === 'offline' || v.state === 'lost') && typeof v.session === 'number') {
      return { state: v.state, session: v.session, at: typeof v.at === 'number' ? v.at : 0 };
    }
  } catch {
    // not JSON: unusable
  }
  return undefined;
}

/**
 * Q4: what the device does on seeing its own retained state: true when it must publish `online`
 * again because something (a stale will, an operator) overwrote the current session's `online`.
 */
export function mustReassert(seen: StatePayload | undefined, currentSession: number): boolean {
  if (!seen) return true;
  if (seen.session < currentSession) return true;
  return seen.session === currentSession && seen.state !== 'online';
}

/** Q4 for watchers: keeps the newest session per device; older states are ignored. */
export class StateTracker {
  private readonly latest = new Map<string, StatePayload>();
  /** Returns true if `state` is news (not older than what is known for `device`). */
  accept(device: string, state: StatePayload): boolean {
    const known = this.latest.get(device);
    if (known && state.session < known.session) return false;
    this.latest.set(device, state);
    return true;
  }
  get(device: string): StatePayload | undefined {
    return this.latest.get(device);
  }
}
