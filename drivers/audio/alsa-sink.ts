import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { SweepError } from '../../core/errors.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../core/log.ts';
import { FRAME_SAMPLES, SAMPLE_RATE, type AudioFormat, type AudioSink } from './audio.ts';
import { checkPcmName } from './alsa-devices.ts';

/**
 * ALSA playback through `aplay` as a supervised child process: raw S16_LE 48 kHz mono on its
 * stdin. Chosen by measurement (bench/audio-path.ts, README "Audio on the device"): no maintained
 * Node playback package exists, `aplay` is on every image with alsa-utils, costs ~1 ms of CPU per
 * call-second, and adds the pipe (< 1 ms) plus the ALSA buffer's fill: playback starts at
 * `startMs` (default 20 ms), and the fill never exceeds `bufferMs` (default 30 ms: a frame on top
 * of the start fill; a fuller buffer would only add delay, not protect against underruns).
 *
 * Contract (AudioSink) plus:
 * - `AlsaSink.open()` resolves once aplay has negotiated the device (rate, period, buffer are
 *   reported in `negotiated()` and the `negotiated` event); rejects NOT_FOUND naming the device.
 * - underruns aplay reports are counted (`xruns`) and recovered by aplay itself;
 * - if aplay dies (device unplugged), an `error` event, frames written meanwhile are dropped and
 *   counted (writes still resolve: playback is best effort, the call goes on) and a retry loop
 *   restarts aplay with backoff; `recovered` when it plays again.
 * - at most `maxQueueMs` of audio waits in the pipe: beyond that frames are dropped (a stalled
 *   device must not grow latency without bound).
 */

export type AlsaSinkEvent =
  | { type: 'negotiated'; device: string; rate: number; periodFrames: number; bufferFrames: number }
  | { type: 'xrun'; count: number }
  | { type: 'error'; device: string; message: string; retryInMs: number }
  | { type: 'recovered'; device: string; afterMs: number };

export interface AlsaSinkOptions {
  device: string;
  /** ALSA period, ms (default 10). */
  periodMs?: number;
  /** ALSA buffer, ms (default 40): the most audio the device holds. */
  bufferMs?: number;
  /** Fill at which playback starts, ms (default 20). */
  startMs?: number;
  /** Audio allowed to wait in the pipe before frames are dropped, ms (default 100). */
  maxQueueMs?: number;
  openTimeoutMs?: number;
  retryMs?: number;
  maxRetryMs?: number;
  clock?: Clock;
  log?: Logger;
  /** The aplay executable (tests point it elsewhere). */
  aplay?: string;
  env?: NodeJS.ProcessEnv;
}

export interface AlsaSinkStats {
  framesWritten: number;
  framesDropped: number;
  xruns: number;
  restarts: number;
}

const FORMAT: AudioFormat = Object.freeze({ sampleRate: SAMPLE_RATE, channels: 1, frameSamples: FRAME_SAMPLES });
const FRAME_BYTES = FRAME_SAMPLES * 2;

type State = 'opening' | 'running' | 'retrying' | 'closed';

export class AlsaSink implements AudioSink {
  readonly format = FORMAT;
  readonly device: string;
  readonly #opts: Required<Pick<AlsaSinkOptions, 'periodMs' | 'bufferMs' | 'startMs' | 'maxQueueMs' | 'openTimeoutMs' | 'retryMs' | 'maxRetryMs' | 'aplay'>>;
  readonly #clock: Clock;
  readonly #log: Logger | undefined;
  readonly #env: NodeJS.ProcessEnv | undefined;
  #state: State = 'opening';
  #child: ChildProcessWithoutNullStreams | undefined;
  #exited: Promise<void> = Promise.resolve();
  #retryTimer: TimerHandle | undefined;
  #retryDelay: number;
  #failedAt = 0;
  #negotiated: { rate: number; periodFrames: number; bufferFrames: number } | undefined;
  #eventFns: ((e: AlsaSinkEvent) => void)[] = [];
  readonly #stats: AlsaSinkStats = { framesWritten: 0, framesDropped: 0, xruns: 0, restarts: 0 };

  private constructor(opts: AlsaSinkOptions) {
    this.device = checkPcmName(opts.device, 'audio.sink.device');
    this.#opts = {
      periodMs: opts.periodMs ?? 10,
      bufferMs: opts.bufferMs ?? 30,
      startMs: opts.startMs ?? 20,
      maxQueueMs: opts.maxQueueMs ?? 100,
      openTimeoutMs: opts.openTimeoutMs ?? 3000,
      retryMs: opts.retryMs ?? 250,
      maxRetryMs: opts.maxRetryMs ?? 5000,
      aplay: opts.aplay ?? 'aplay',
    };
    const { periodMs, bufferMs, startMs } = this.#opts;
    if (!(periodMs >= 1 && periodMs <= 100)) throw new SweepError('INVALID_CONFIG', `audio.sink.periodMs ${periodMs} is not 1-100`);
    if (!(bufferMs >= 2 * periodMs && bufferMs <= 1000)) throw new SweepError('INVALID_CONFIG', `audio.sink.bufferMs ${bufferMs} is not between 2 periods (${2 * periodMs}) and 1000`);
    if (!(startMs > 0 && startMs <= bufferMs)) throw new SweepError('INVALID_CONFIG', `audio.sink.startMs ${startMs} is not within 1-${bufferMs} (the buffer)`);
    this.#retryDelay = this.#opts.retryMs;
    this.#clock = opts.clock ?? systemClock;
    this.#log = opts.log;
    this.#env = opts.env;
  }

  /** Starts aplay on the device; resolves once it negotiated the hardware parameters. */
  static async open(opts: AlsaSinkOptions): Promise<AlsaSink> {
    const sink = new AlsaSink(opts);
    try {
      await sink.#spawn();
    } catch (err) {
      await sink.close();
      throw err;
    }
    sink.#state = 'running';
    return sink;
  }

  /**
   * Like `open`, but a device that cannot be opened now does not reject: the sink starts in its
   * retry loop (an `error` is logged; frames are dropped until the device appears). Bad options
   * still throw INVALID_CONFIG.
   */
  static async openOrRetry(opts: AlsaSinkOptions): Promise<AlsaSink> {
    const sink = new AlsaSink(opts);
    try {
      await sink.#spawn();
      sink.#state = 'running';
    } catch (err) {
      sink.#child = undefined;
      sink.#state = 'running';
      sink.#fail((err as Error).message);
    }
    return sink;
  }

  onEvent(fn: (e: AlsaSinkEvent) => void): void {
    this.#eventFns.push(fn);
  }

  /** What the device agreed to (undefined while aplay is down). */
  negotiated(): { rate: number; periodFrames: number; bufferFrames: number } | undefined {
    return this.#negotiated && { ...this.#negotiated };
  }

  /** The aplay child's pid while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  stats(): AlsaSinkStats {
    return { ...this.#stats };
  }

  /** Latency the device path adds at most: the ALSA buffer plus what waits in the pipe, ms. */
  addedLatencyMs(): number {
    const queued = this.#child ? this.#child.stdin.writableLength / (SAMPLE_RATE * 2 / 1000) : 0;
    const buf = this.#negotiated ? (this.#negotiated.bufferFrames / SAMPLE_RATE) * 1000 : this.#opts.bufferMs;
    return buf + queued;
  }

  async write(pcm: Int16Array): Promise<void> {
    if (this.#state === 'closed') throw new SweepError('CLOSED', `the ALSA playback device ${this.device} is closed`);
    if (!(pcm instanceof Int16Array) || pcm.length !== FRAME_SAMPLES) {
      const len = pcm instanceof Int16Array ? `${pcm.length} samples` : typeof pcm;
      throw new SweepError('INVALID_MESSAGE', `a playback frame of ${len}, expected an Int16Array of ${FRAME_SAMPLES}`);
    }
    const child = this.#child;
    if (this.#state !== 'running' || !child || child.stdin.destroyed) {
      this.#stats.framesDropped++;
      return;
    }
    if (child.stdin.writableLength + FRAME_BYTES > (this.#opts.maxQueueMs * SAMPLE_RATE * 2) / 1000) {
      this.#stats.framesDropped++;
      return;
    }
    // A copy: the caller may reuse pcm as soon as this returns.
    child.stdin.write(Buffer.from(pcm.buffer.slice(pcm.byteOffset, pcm.byteOffset + FRAME_BYTES)));
    this.#stats.framesWritten++;
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return this.#exited;
    this.#state = 'closed';
    if (this.#retryTimer) this.#clock.clear(this.#retryTimer);
    this.#retryTimer = undefined;
    const child = this.#child;
    this.#child = undefined;
    if (child && child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      // aplay drains at most bufferMs once stdin ends; do not wait longer than that for it.
      const kill = setTimeout(() => child.kill('SIGKILL'), this.#opts.bufferMs + 500);
      await this.#exited;
      clearTimeout(kill);
    }
    this.#eventFns = [];
  }

  #spawn(): Promise<void> {
    const { periodMs, bufferMs, startMs, aplay, openTimeoutMs } = this.#opts;
    const args = [
      '-v',
      '-D',
      this.device,
      '-t',
      'raw',
      '-f',
      'S16_LE',
      '-r',
      String(SAMPLE_RATE),
      '-c',
      '1',
      `--period-time=${Math.round(periodMs * 1000)}`,
      `--buffer-time=${Math.round(bufferMs * 1000)}`,
      `--start-delay=${Math.round(startMs * 1000)}`,
    ];
    return new Promise<void>((resolve, reject) => {
      let settled = false;
      let child: ChildProcessWithoutNullStreams;
      try {
        child = spawn(aplay, args, { stdio: ['pipe', 'pipe', 'pipe'], env: this.#env ?? process.env });
      } catch (err) {
        reject(new SweepError('NOT_FOUND', `${aplay} could not be started: ${(err as Error).message}`, { cause: err }));
        return;
      }
      this.#child = child;
      let exitedResolve!: () => void;
      this.#exited = new Promise<void>((r) => (exitedResolve = r));
      let text = '';
      let lastErr = '';
      const fields: Record<string, number> = {};
      const done = (err?: SweepError): void => {
        if (settled) return;
        settled = true;
        this.#clock.clear(timer);
        if (err) reject(err);
        else resolve();
      };
      const timer = this.#clock.setTimeout(() => {
        child.kill('SIGKILL');
        done(new SweepError('TIMEOUT', `the ALSA playback device ${this.device} did not open within ${openTimeoutMs} ms`));
      }, openTimeoutMs);
      const onText = (chunk: Buffer): void => {
        text += chunk.toString();
        let nl: number;
        while ((nl = text.indexOf('\n')) >= 0) {
          const line = text.slice(0, nl);
          text = text.slice(nl + 1);
          const m = /^\s*(rate|buffer_size|period_size)\s*:\s*(\d+)/.exec(line);
          if (m) {
            fields[m[1]!] = Number(m[2]);
            if (!settled && fields.rate !== undefined && fields.buffer_size !== undefined && fields.period_size !== undefined) {
              this.#negotiated = { rate: fields.rate, periodFrames: fields.period_size, bufferFrames: fields.buffer_size };
              this.#emit({ type: 'negotiated', device: this.device, ...this.#negotiated });
              this.#log?.info({ device: this.device, ...this.#negotiated }, 'playback device opened');
              done();
            }
          } else if (/underrun/i.test(line)) {
            this.#stats.xruns++;
            this.#emit({ type: 'xrun', count: this.#stats.xruns });
          } else if (/error|unknown|no such|cannot|unable/i.test(line)) {
            lastErr = line.trim();
          }
        }
      };
      child.stdout.on('data', onText);
      child.stderr.on('data', onText);
      child.stdin.on('error', () => undefined); // EPIPE when aplay died; the exit handler reports it
      child.on('error', (err) => {
        done(new SweepError('NOT_FOUND', `${aplay} could not be started (is alsa-utils installed?): ${err.message}`, { cause: err }));
        exitedResolve();
      });
      child.on('exit', (code, signal) => {
        exitedResolve();
        const why = lastErr || `aplay exited with ${code ?? signal}`;
        if (!settled) {
          done(new SweepError('NOT_FOUND', `the ALSA playback device ${this.device} could not be opened: ${why}`));
          return;
        }
        if (this.#child === child) this.#fail(why);
      });
    });
  }

  #fail(reason: string): void {
    if (this.#state === 'closed') return;
    this.#child = undefined;
    this.#negotiated = undefined;
    if (this.#state === 'running') {
      this.#failedAt = this.#clock.mono();
      this.#retryDelay = this.#opts.retryMs;
    }
    this.#state = 'retrying';
    const retryInMs = this.#retryDelay;
    this.#log?.warn({ device: this.device, reason, retryInMs }, 'playback device failed; retrying');
    this.#emit({ type: 'error', device: this.device, message: `the ALSA playback device ${this.device} failed (${reason})`, retryInMs });
    this.#retryTimer = this.#clock.setTimeout(() => this.#retry(), retryInMs);
    this.#retryDelay = Math.min(this.#retryDelay * 2, this.#opts.maxRetryMs);
  }

  #retry(): void {
    this.#retryTimer = undefined;
    if (this.#state !== 'retrying') return;
    this.#stats.restarts++;
    this.#spawn().then(
      () => {
        if (this.#state !== 'retrying') return;
        this.#state = 'running';
        const afterMs = this.#clock.mono() - this.#failedAt;
        this.#log?.info({ device: this.device, afterMs }, 'playback device recovered');
        this.#emit({ type: 'recovered', device: this.device, afterMs });
      },
      (err: unknown) => {
        this.#child = undefined;
        this.#fail((err as Error).message);
      },
    );
  }

  #emit(e: AlsaSinkEvent): void {
    for (const fn of this.#eventFns) {
      try {
        fn(e);
      } catch (err) {
        this.#log?.warn({ err }, 'ALSA sink event listener threw');
      }
    }
  }
}
