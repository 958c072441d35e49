import { FRAME_MS } from '../../drivers/audio/audio.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';
import { JitterBuffer, type JitterBufferOptions, type JitterStats } from './jitter-buffer.ts';
import { OpusDecoder } from './opus.ts';

/**
 * The receive path's clocked half: packets go into a JitterBuffer, and every 20 ms of the local
 * clock one frame comes out (decoded, or concealed by Opus PLC) to `output`.
 *
 * Make before break across a stream switch (a sweep): `switchStream()` starts a fresh buffer for
 * the new stream while the old one keeps playing what it holds; the new stream takes over at the
 * first tick it is ready (its target filled), with the decoder reset. The output cadence never
 * pauses for the new stream's pre-fill.
 *
 * Two clocks can pace the output. `clockTick()`, called once per captured frame, makes the capture
 * device's clock the output clock: on a device whose microphone and speaker share a sound card
 * that is the speaker's own clock, and the main thread wakes once per 20 ms for both directions
 * instead of twice. Without such ticks (no capture running, or none for EXTERNAL_CLOCK_TIMEOUT_MS
 * when a packet arrives: the capture device stalled) a timer paces the output; it runs only while
 * there is something to play: it stops after `idleTicks` ticks with nothing buffered and restarts
 * with the next packet.
 */
export interface PlayoutOptions {
  output: (pcm: Int16Array, concealed: boolean) => void;
  jitter?: JitterBufferOptions;
  clock?: Clock;
  log?: Logger;
  idleTicks?: number;
}

/** A packet arriving this long after the last capture tick hands the output to the timer (2.5 frames). */
export const EXTERNAL_CLOCK_TIMEOUT_MS = 50;

export class Playout {
  readonly #output: PlayoutOptions['output'];
  readonly #jitterOpts: JitterBufferOptions;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #idleTicks: number;
  readonly #decoder = new OpusDecoder();
  #current: JitterBuffer;
  #next: JitterBuffer | undefined;
  #timer: TimerHandle | undefined;
  /** clock.mono() of the last capture tick; -Infinity before the first. */
  #lastClockTick = -Infinity;
  #startMono = 0;
  #tick = 0;
  #idle = 0;
  #closed = false;
  /** Ticks that had nothing to play (pre-fill, or dry past concealment). */
  silentTicks = 0;

  constructor(opts: PlayoutOptions) {
    this.#output = opts.output;
    this.#jitterOpts = opts.jitter ?? {};
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.#idleTicks = opts.idleTicks ?? 50;
    this.#current = new JitterBuffer(this.#jitterOpts);
  }

  push(opus: Uint8Array, seq: number): void {
    if (this.#closed) return;
    const now = this.#clock.mono();
    (this.#next ?? this.#current).push(seq, opus, now);
    this.#idle = 0;
    // Capture ticks that stopped (the device stalled) are noticed here, at the next packet.
    if (!this.#timer && now - this.#lastClockTick >= EXTERNAL_CLOCK_TIMEOUT_MS) this.#schedule(true);
  }

  /** One frame period of the capture device's clock has passed: play one frame (class comment). */
  clockTick(): void {
    if (this.#closed) return;
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = undefined;
    this.#lastClockTick = this.#clock.mono();
    this.#playOne();
  }

  /** A new stream follows (playback switched): make before break, see the class comment. */
  switchStream(): void {
    if (this.#closed) return;
    this.#next = new JitterBuffer(this.#jitterOpts);
  }

  /** The jitter buffer that plays now. */
  stats(): JitterStats {
    return this.#current.stats();
  }

  close(): void {
    this.#closed = true;
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = undefined;
  }

  #schedule(fresh: boolean): void {
    if (fresh) {
      this.#startMono = this.#clock.mono();
      this.#tick = 0;
    }
    const due = this.#startMono + (this.#tick + 1) * FRAME_MS;
    this.#timer = this.#clock.setTimeout(() => this.#onTick(), Math.max(0, Math.ceil(due - this.#clock.mono())));
  }

  #onTick(): void {
    this.#timer = undefined;
    if (this.#closed) return;
    const now = this.#clock.mono();
    let due = Math.floor((now + 1 - this.#startMono) / FRAME_MS) - this.#tick;
    if (due > 5) {
      // The event loop stalled: the sound card would have under-run too; play one and resync.
      this.#startMono = now - FRAME_MS;
      this.#tick = 0;
      due = 1;
    }
    for (let i = 0; i < due; i++) {
      this.#tick++;
      this.#playOne();
    }
    if (this.#idle >= this.#idleTicks && !this.#next) {
      // Nothing to play for a while: sleep until the next packet.
      this.#idle = 0;
      return;
    }
    this.#schedule(false);
  }

  #playOne(): void {
    if (this.#next) {
      const r = this.#next.pop();
      if (r.kind !== 'empty') {
        this.#current = this.#next;
        this.#next = undefined;
        this.#decoder.reset();
        this.#emit(r);
        return;
      }
    }
    this.#emit(this.#current.pop());
  }

  #emit(r: ReturnType<JitterBuffer['pop']>): void {
    if (r.kind === 'empty') {
      this.silentTicks++;
      this.#idle++;
      return;
    }
    this.#idle = 0;
    if (r.kind === 'packet') {
      try {
        this.#output(this.#decoder.decode(r.payload), false);
        return;
      } catch (err) {
        this.#log?.debug({ err }, 'undecodable packet concealed');
      }
    }
    try {
      this.#output(this.#decoder.conceal(), true);
    } catch (err) {
      this.#log?.debug({ err }, 'concealment failed');
    }
  }
}
