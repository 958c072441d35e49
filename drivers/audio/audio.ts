/**
 * Audio drivers. Every driver speaks 48 kHz mono signed 16-bit PCM in 20 ms frames (960 samples).
 * Promise-only: methods reject (SweepError), never throw synchronously.
 */
export const SAMPLE_RATE = 48_000;
export const FRAME_SAMPLES = 960;
export const FRAME_MS = 20;

export interface AudioFormat {
  sampleRate: number;
  channels: 1;
  frameSamples: number;
}

/**
 * A capture device. Contract:
 * - `start()` resolves once frames will flow; rejects if the device cannot be opened. Starting
 *   a started source resolves at once.
 * - Frames are delivered to `onFrame` in capture order, each an Int16Array of `frameSamples`, on
 *   average one per 20 ms of the device's clock. The array is the driver's and is reused for the
 *   next frame: a listener that keeps samples copies them (no allocation per frame, so no garbage
 *   collector work on the audio path).
 * - `stop()` resolves when no further frame will be delivered; stopping a stopped source resolves.
 * - `close()` stops and releases the device; idempotent; afterwards `start()` rejects CLOSED.
 */
export interface AudioSource {
  readonly format: AudioFormat;
  onFrame(fn: (pcm: Int16Array) => void): void;
  start(): Promise<void>;
  stop(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A playback device. Contract:
 * - `write(pcm)` queues one frame for playback and resolves when queued (not when played);
 *   frames are played in write order; writes do not overlap-block each other. The sink copies
 *   what it keeps before `write` returns: the caller may reuse `pcm` at once.
 * - A frame of the wrong length rejects INVALID_MESSAGE and plays nothing.
 * - `close()` releases the device; idempotent; later writes reject CLOSED.
 */
export interface AudioSink {
  readonly format: AudioFormat;
  write(pcm: Int16Array): Promise<void>;
  close(): Promise<void>;
}
