import type { AudioFormat, AudioSource } from './audio.ts';

export interface NoiseGateOptions {
  /** Frames whose RMS level is below this (dBFS) are gated. */
  thresholdDbfs: number;
  /** Frames kept open after the level fell below the threshold (hangover), default 10 (200 ms). */
  holdFrames?: number;
}

/**
 * A send-path noise gate wrapped around any AudioSource: a frame quieter than the threshold, after
 * the hold time, is delivered as digital silence (Opus then spends almost no bits on it). Frames
 * stay 20 ms and keep their cadence; the gate opens on the first loud frame, whole (no clipped
 * onset, since decisions are per frame). Not an echo canceller: see README "Echo cancellation".
 */
export class NoiseGateSource implements AudioSource {
  readonly #inner: AudioSource;
  readonly #threshold: number;
  readonly #hold: number;
  #quiet = Infinity;
  #fns: ((pcm: Int16Array) => void)[] = [];
  #silence: Int16Array;
  framesGated = 0;

  constructor(inner: AudioSource, opts: NoiseGateOptions) {
    this.#inner = inner;
    this.#hold = opts.holdFrames ?? 10;
    // Compare mean squares, not dB, so the hot path has no log.
    this.#threshold = (10 ** (opts.thresholdDbfs / 20) * 32768) ** 2;
    this.#silence = new Int16Array(inner.format.frameSamples);
    inner.onFrame((pcm) => this.#onFrame(pcm));
  }

  get format(): AudioFormat {
    return this.#inner.format;
  }

  /** The wrapped driver (for its events and stats). */
  get inner(): AudioSource {
    return this.#inner;
  }

  onFrame(fn: (pcm: Int16Array) => void): void {
    this.#fns.push(fn);
  }

  start(): Promise<void> {
    return this.#inner.start();
  }

  stop(): Promise<void> {
    return this.#inner.stop();
  }

  close(): Promise<void> {
    this.#fns = [];
    return this.#inner.close();
  }

  #onFrame(pcm: Int16Array): void {
    let sum = 0;
    for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
    this.#quiet = sum / pcm.length < this.#threshold ? this.#quiet + 1 : 0;
    let out = pcm;
    if (this.#quiet > this.#hold) {
      this.framesGated++;
      if (this.#silence.length !== pcm.length) this.#silence = new Int16Array(pcm.length);
      out = this.#silence;
    }
    for (const fn of this.#fns) {
      try {
        fn(out);
      } catch {
        // A listener's failure is its own.
      }
    }
  }
}
