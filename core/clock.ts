import { SweepError } from './errors.ts';

/**
 * Time is a dependency: everything that waits takes a Clock, so tests can drive time.
 * `now()` is wall-clock ms (certificate and grant expiry); `mono()` is a monotonic ms
 * reading for measuring durations.
 */
export interface Clock {
  now(): number;
  mono(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clear(handle: TimerHandle): void;
}

export interface TimerHandle {
  /** Opaque; pass back to Clock.clear. */
  readonly id: unknown;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  mono: () => performance.now(),
  setTimeout: (fn, ms) => ({ id: setTimeout(fn, ms) }),
  setInterval: (fn, ms) => ({ id: setInterval(fn, ms) }),
  clear: (h) => {
    // Node's timers are objects, browsers' are numbers: whatever setTimeout gave back. The cast is
    // needed where node's types are loaded (the device, the server), not under core's own tsconfig.
    /* eslint-disable @typescript-eslint/no-unnecessary-type-assertion */
    clearTimeout(h.id as never);
    clearInterval(h.id as never);
    /* eslint-enable @typescript-eslint/no-unnecessary-type-assertion */
  },
};

/** A sleep that can be cancelled through its clock. */
export function delay(clock: Clock, ms: number): Promise<void> {
  return new Promise((resolve) => clock.setTimeout(resolve, ms));
}

/** `p`, or a TIMEOUT SweepError naming `what` if it has not settled within `ms` on `clock`. */
export async function withTimeout<T>(clock: Clock, p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: TimerHandle | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = clock.setTimeout(() => reject(new SweepError('TIMEOUT', `${what} within ${ms} ms`)), ms);
      }),
    ]);
  } finally {
    if (timer) clock.clear(timer);
  }
}
