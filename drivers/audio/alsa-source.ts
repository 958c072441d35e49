import { createRequire } from 'node:module';
import { SweepError } from '../../core/errors.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { FRAME_SAMPLES, SAMPLE_RATE, type AudioFormat, type AudioSource } from './audio.ts';
import { checkPcmName } from './alsa-devices.ts';

/**
 * ALSA capture through `alsa-capture` (a native worker thread calling snd_pcm_readi). Honours the
 * AudioSource contract (drivers/audio/audio.ts) and adds what hardware needs:
 * - the device name comes from config (`default`, `hw:1,0`, `plughw:…`, an echo-cancel PCM);
 * - rate and period are negotiated with the device and reported (`negotiated` event, `stats()`);
 * - periods of any size are assembled into 960-sample frames;
 * - an overrun (xrun) is recovered by the binding (snd_pcm_prepare) and counted; the stale period
 *   it hands over afterwards is dropped, a short read keeps only the samples read;
 * - a read error (card unplugged: ENODEV, EIO…) closes the device, emits `error`, and a retry loop
 *   reopens it (backoff up to `maxRetryMs`); frames flow again after `recovered`. Never a crash.
 */

/** The part of alsa-capture this driver uses; tests pass a fake (`binding` option). */
export interface CaptureHandle {
  on(event: string, listener: (value: unknown) => void): unknown;
  close(): void;
}
export type CaptureBinding = new (opts: { channels: number; device: string; format: string; periodSize: number; rate: number }) => CaptureHandle;

export type AlsaSourceEvent =
  | { type: 'negotiated'; device: string; rate: number; periodFrames: number; periodUs: number }
  | { type: 'xrun'; count: number }
  | { type: 'error'; device: string; message: string; retryInMs: number }
  | { type: 'recovered'; device: string; afterMs: number };

export interface AlsaSourceStats {
  framesDelivered: number;
  xruns: number;
  shortReads: number;
  readErrors: number;
  reopens: number;
  rate: number | null;
  periodFrames: number | null;
  periodUs: number | null;
}

export interface AlsaSourceOptions {
  device: string;
  /**
   * Period size asked of the device, frames; the device may choose another (reported). Default 960
   * (20 ms): one period is one Opus frame, so the main thread wakes once per frame; a shorter
   * period does not send sooner, since a frame leaves only when all its 960 samples are in.
   */
  periodFrames?: number;
  /** How long `start()` waits for the device to open, ms (default 3000). */
  openTimeoutMs?: number;
  /** First retry delay after the device failed, doubling up to maxRetryMs (defaults 250 / 5000). */
  retryMs?: number;
  maxRetryMs?: number;
  clock?: Clock;
  log?: Logger;
  binding?: CaptureBinding;
  /**
   * When the device cannot be opened at `start()`: resolve anyway and keep retrying (an endpoint
   * must come up without its USB card and hear again once it is plugged in). Default false:
   * `start()` rejects, as the AudioSource contract says.
   */
  keepTrying?: boolean;
}

const FORMAT: AudioFormat = Object.freeze({ sampleRate: SAMPLE_RATE, channels: 1, frameSamples: FRAME_SAMPLES });
const FRAME_BYTES = FRAME_SAMPLES * 2;

let defaultBinding: CaptureBinding | undefined;
/** alsa-capture is an optional dependency: loaded on first use, a clear error when absent. */
function loadBinding(): CaptureBinding {
  if (!defaultBinding) {
    try {
      defaultBinding = createRequire(import.meta.url)('alsa-capture') as CaptureBinding;
    } catch (err) {
      throw new SweepError('NOT_FOUND', 'the ALSA capture driver needs the optional package alsa-capture (built against libasound2-dev)', { cause: err });
    }
  }
  return defaultBinding;
}

type State = 'stopped' | 'opening' | 'running' | 'retrying' | 'closed';

export class AlsaSource implements AudioSource {
  readonly format = FORMAT;
  readonly device: string;
  readonly #periodFrames: number;
  readonly #openTimeoutMs: number;
  readonly #retryMs: number;
  readonly #maxRetryMs: number;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #binding: CaptureBinding | undefined;
  readonly #keepTrying: boolean;
  #fns: ((pcm: Int16Array) => void)[] = [];
  #eventFns: ((e: AlsaSourceEvent) => void)[] = [];
  #state: State = 'stopped';
  #cap: CaptureHandle | undefined;
  #capClosed: Promise<void> = Promise.resolve();
  #retryTimer: TimerHandle | undefined;
  #retryDelay: number;
  #failedAt = 0;
  /** After an overrun the binding hands over its stale buffer once: skip it. */
  #skipNext = false;
  /** After a short read, only this many bytes of the next buffer are samples. */
  #validBytes: number | undefined;
  readonly #frame = new Int16Array(FRAME_SAMPLES);
  readonly #frameBytes = new Uint8Array(this.#frame.buffer);
  #fill = 0;
  readonly #stats: AlsaSourceStats = { framesDelivered: 0, xruns: 0, shortReads: 0, readErrors: 0, reopens: 0, rate: null, periodFrames: null, periodUs: null };

  constructor(opts: AlsaSourceOptions) {
    this.device = checkPcmName(opts.device, 'audio.source.device');
    this.#periodFrames = opts.periodFrames ?? 960;
    if (!Number.isInteger(this.#periodFrames) || this.#periodFrames < 32 || this.#periodFrames > 9600) {
      throw new SweepError('INVALID_CONFIG', `audio.source.periodFrames ${this.#periodFrames} is not an integer 32-9600`);
    }
    this.#openTimeoutMs = opts.openTimeoutMs ?? 3000;
    this.#retryMs = opts.retryMs ?? 250;
    this.#retryDelay = this.#retryMs;
    this.#maxRetryMs = opts.maxRetryMs ?? 5000;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.#binding = opts.binding;
    this.#keepTrying = opts.keepTrying ?? false;
  }

  onFrame(fn: (pcm: Int16Array) => void): void {
    this.#fns.push(fn);
  }

  /** Negotiation results, xruns, device failures and recoveries. */
  onEvent(fn: (e: AlsaSourceEvent) => void): void {
    this.#eventFns.push(fn);
  }

  stats(): AlsaSourceStats {
    return { ...this.#stats };
  }

  async start(): Promise<void> {
    if (this.#state === 'closed') throw new SweepError('CLOSED', `the ALSA capture device ${this.device} is closed`);
    if (this.#state !== 'stopped') return;
    this.#state = 'opening';
    try {
      await this.#open();
    } catch (err) {
      if (this.#state !== 'opening') return;
      if (this.#keepTrying && !(err instanceof SweepError && err.code === 'INVALID_CONFIG')) {
        this.#state = 'running';
        this.#fail((err as Error).message);
        return;
      }
      this.#state = 'stopped';
      throw err;
    }
    if (this.#state === 'opening') this.#state = 'running';
  }

  async stop(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'stopped') return;
    this.#state = 'stopped';
    await this.#release();
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#state = 'closed';
    await this.#release();
    this.#fns = [];
    this.#eventFns = [];
  }

  async #release(): Promise<void> {
    if (this.#retryTimer) this.#clock.clear(this.#retryTimer);
    this.#retryTimer = undefined;
    this.#closeCapture();
    await this.#capClosed;
  }

  #closeCapture(): void {
    const cap = this.#cap;
    this.#cap = undefined;
    this.#fill = 0;
    if (!cap) return;
    try {
      cap.close();
    } catch (err) {
      this.#log?.debug({ err, device: this.device }, 'capture close failed');
    }
  }

  /** Opens the device; resolves once the hardware parameters are set (frames will flow). */
  #open(): Promise<void> {
    let binding: CaptureBinding;
    try {
      binding = this.#binding ?? loadBinding();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new SweepError('INTERNAL', String(err)));
    }
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let closedResolve!: () => void;
      this.#capClosed = new Promise<void>((r) => (closedResolve = r));
      // A worker that never reports close (a read blocked forever) must not hang stop(): cap the wait.
      const closeCap = this.#clock.setTimeout(() => closedResolve(), this.#openTimeoutMs);
      const done = (err?: SweepError): void => {
        if (settled) return;
        settled = true;
        this.#clock.clear(timer);
        if (err) {
          this.#closeCapture();
          reject(err);
        } else resolve();
      };
      const timer = this.#clock.setTimeout(
        () => done(new SweepError('TIMEOUT', `the ALSA capture device ${this.device} did not open within ${this.#openTimeoutMs} ms`)),
        this.#openTimeoutMs,
      );
      let cap: CaptureHandle;
      try {
        cap = new binding({ channels: 1, device: this.device, format: 'S16_LE', periodSize: this.#periodFrames, rate: SAMPLE_RATE });
      } catch (err) {
        this.#clock.clear(closeCap);
        closedResolve();
        done(new SweepError('INVALID_CONFIG', `the ALSA capture device ${this.device} refused its options: ${(err as Error).message}`, { cause: err }));
        return;
      }
      this.#cap = cap;
      this.#skipNext = false;
      this.#validBytes = undefined;
      this.#stats.rate = SAMPLE_RATE;
      this.#stats.periodFrames = this.#periodFrames;
      const mine = (): boolean => this.#cap === cap;
      cap.on('rateDeviating', (v) => {
        this.#stats.rate = Number(v);
        // Every driver speaks 48 kHz: a device that cannot is a configuration error (use plughw:).
        if (!mine()) return;
        // get_rate rounds an exact rate such as 48000.5 up: within 0.1% it is 48 kHz.
        if (Math.abs(Number(v) - SAMPLE_RATE) <= SAMPLE_RATE / 1000) return;
        if (!settled) done(new SweepError('INVALID_CONFIG', `the ALSA capture device ${this.device} runs at ${String(v)} Hz, not 48000: use a plughw: or plug device`));
        else this.#fail(`rate ${String(v)} Hz`);
      });
      cap.on('periodSizeDeviating', (v) => (this.#stats.periodFrames = Number(v)));
      cap.on('periodTime', (v) => {
        if (!mine()) return;
        this.#stats.periodUs = Number(v);
        this.#emit({ type: 'negotiated', device: this.device, rate: this.#stats.rate!, periodFrames: this.#stats.periodFrames!, periodUs: this.#stats.periodUs });
        this.#log?.info({ device: this.device, rate: this.#stats.rate, periodFrames: this.#stats.periodFrames, periodUs: this.#stats.periodUs }, 'capture device opened');
        done();
      });
      cap.on('audio', (data) => {
        if (mine()) this.#onAudio(data as Uint8Array);
      });
      cap.on('overrun', () => {
        if (!mine()) return;
        this.#stats.xruns++;
        this.#skipNext = true;
        this.#emit({ type: 'xrun', count: this.#stats.xruns });
      });
      cap.on('shortRead', (v) => {
        if (!mine()) return;
        this.#stats.shortReads++;
        this.#validBytes = Math.max(0, Number(v)) * 2;
      });
      cap.on('readError', (v) => {
        if (!mine()) return;
        this.#stats.readErrors++;
        this.#fail(`read error: ${String(v)}`);
      });
      cap.on('error', (e) => {
        const message = e instanceof Error ? e.message : String(e);
        const clean = message.trim();
        if (!settled) {
          this.#clock.clear(closeCap);
          closedResolve();
          done(new SweepError('NOT_FOUND', `the ALSA capture device ${this.device} could not be opened: ${clean}`));
        } else if (mine()) this.#fail(clean);
      });
      cap.on('close', () => {
        this.#clock.clear(closeCap);
        closedResolve();
      });
    });
  }

  #onAudio(data: Uint8Array): void {
    if (this.#state !== 'running' && this.#state !== 'opening') return;
    if (this.#skipNext) {
      this.#skipNext = false;
      this.#validBytes = undefined;
      return;
    }
    let len = data.length - (data.length & 1);
    if (this.#validBytes !== undefined) {
      len = Math.min(len, this.#validBytes);
      this.#validBytes = undefined;
    }
    let at = 0;
    while (at < len) {
      const n = Math.min(FRAME_BYTES - this.#fill, len - at);
      this.#frameBytes.set(data.subarray(at, at + n), this.#fill);
      this.#fill += n;
      at += n;
      if (this.#fill === FRAME_BYTES) {
        this.#fill = 0;
        this.#deliver();
        if (this.#state !== 'running' && this.#state !== 'opening') return;
      }
    }
  }

  #deliver(): void {
    this.#stats.framesDelivered++;
    const fns = this.#fns;
    for (let i = 0; i < fns.length; i++) {
      try {
        fns[i]!(this.#frame);
      } catch {
        // A listener's failure is its own; the device keeps capturing.
      }
    }
  }

  /** The device failed while running: release it, tell listeners, retry with backoff. */
  #fail(reason: string): void {
    if (this.#state === 'closed' || this.#state === 'stopped') return;
    const wasRunning = this.#state !== 'retrying';
    this.#closeCapture();
    if (wasRunning) {
      this.#failedAt = this.#clock.mono();
      this.#retryDelay = this.#retryMs;
    }
    if (this.#state === 'opening') return; // start() rejects; no retry loop for a device never opened
    this.#state = 'retrying';
    const retryInMs = this.#retryDelay;
    this.#log?.warn({ device: this.device, reason, retryInMs }, 'capture device failed; retrying');
    this.#emit({ type: 'error', device: this.device, message: `the ALSA capture device ${this.device} failed (${reason})`, retryInMs });
    this.#retryTimer = this.#clock.setTimeout(() => this.#retry(), retryInMs);
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#maxRetryMs);
  }

  #retry(): void {
    this.#retryTimer = undefined;
    if (this.#state !== 'retrying') return;
    this.#stats.reopens++;
    this.#open().then(
      () => {
        if (this.#state !== 'retrying') return;
        this.#state = 'running';
        const afterMs = this.#clock.mono() - this.#failedAt;
        this.#log?.info({ device: this.device, afterMs }, 'capture device recovered');
        this.#emit({ type: 'recovered', device: this.device, afterMs });
      },
      (err: unknown) => this.#fail((err as Error).message),
    );
  }

  #emit(e: AlsaSourceEvent): void {
    for (const fn of this.#eventFns) {
      try {
        fn(e);
      } catch (err) {
        this.#log?.warn({ err }, 'ALSA source event listener threw');
      }
    }
  }
}
