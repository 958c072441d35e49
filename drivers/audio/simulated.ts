import { SweepError } from '../../core/errors.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import { FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, type AudioFormat, type AudioSink, type AudioSource } from './audio.ts';

/**
 * Simulated audio drivers (baresip's `ausine` and an analysing `aufile`): real implementations
 * of the AudioSource/AudioSink contracts, paced by an injected Clock, with knobs for tests.
 */

const FORMAT: AudioFormat = Object.freeze({ sampleRate: SAMPLE_RATE, channels: 1, frameSamples: FRAME_SAMPLES });
/** After a stall longer than this many frames the source resynchronises instead of bursting. */
const MAX_CATCH_UP_FRAMES = 5;
/** Below this level a frame counts as silence and has no dominant frequency. */
export const SILENCE_DBFS = -60;

export interface ToneSourceOptions {
  frequencyHz?: number;
  /** Peak level of the sine in dBFS (0 = full scale). */
  levelDbfs?: number;
  clock?: Clock;
  /** Knob: `start()` rejects as if the device could not be opened. */
  failStart?: boolean;
}

/** A sine generator standing in for a microphone. */
export class SimulatedToneSource implements AudioSource {
  readonly format = FORMAT;
  frequencyHz: number;
  levelDbfs: number;
  /** Knob: deliver all-zero frames (a muted microphone), keeping the cadence. */
  silent = false;
  /** Knob: make the next `start()` reject. */
  failStart: boolean;
  framesDelivered = 0;

  readonly #clock: Clock;
  #fns: ((pcm: Int16Array) => void)[] = [];
  #state: 'stopped' | 'running' | 'paused' | 'closed' = 'stopped';
  #timer: TimerHandle | undefined;
  #startMono = 0;
  #frameIndex = 0;
  #phase = 0;
  readonly #frame = new Int16Array(FRAME_SAMPLES);

  constructor(opts: ToneSourceOptions = {}) {
    this.frequencyHz = opts.frequencyHz ?? 440;
    this.levelDbfs = opts.levelDbfs ?? -12;
    this.failStart = opts.failStart ?? false;
    this.#clock = opts.clock ?? systemClock;
  }

  onFrame(fn: (pcm: Int16Array) => void): void {
    this.#fns.push(fn);
  }

  async start(): Promise<void> {
    if (this.#state === 'closed') throw new SweepError('CLOSED', 'the simulated tone source is closed');
    if (this.failStart) throw new SweepError('INTERNAL', 'simulated tone source: start failed (failStart knob)');
    if (this.#state !== 'stopped') return;
    this.#state = 'running';
    this.#resync();
    this.#schedule();
  }

  async stop(): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'stopped') return;
    this.#state = 'stopped';
    this.#cancel();
  }

  async close(): Promise<void> {
    if (this.#state === 'closed') return;
    this.#cancel();
    this.#state = 'closed';
    this.#fns = [];
  }

  /** Knob: a capture stall — no frames until `resume()`; frames missed meanwhile are dropped. */
  pause(): void {
    if (this.#state !== 'running') return;
    this.#state = 'paused';
    this.#cancel();
  }

  resume(): void {
    if (this.#state !== 'paused') return;
    this.#state = 'running';
    this.#resync();
    this.#schedule();
  }

  get running(): boolean {
    return this.#state === 'running';
  }

  #resync(): void {
    this.#startMono = this.#clock.mono();
    this.#frameIndex = 0;
  }

  #cancel(): void {
    if (this.#timer) this.#clock.clear(this.#timer);
    this.#timer = undefined;
  }

  /** Frame n is due at start + (n+1)·20 ms of the clock's mono time, so timer jitter never accumulates. */
  #schedule(): void {
    const due = this.#startMono + (this.#frameIndex + 1) * FRAME_MS;
    // Whole milliseconds, rounded up: a timer that fires a fraction early would find no frame due
    // and cost a second wake-up for the same frame.
    this.#timer = this.#clock.setTimeout(this.#onTimer, Math.max(0, Math.ceil(due - this.#clock.mono())));
  }

  readonly #onTimer = (): void => this.#tick();

  #tick(): void {
    this.#timer = undefined;
    if (this.#state !== 'running') return;
    const now = this.#clock.mono();
    // Up to 1 ms early still counts as due (timer granularity).
    let due = Math.floor((now + 1 - this.#startMono) / FRAME_MS) - this.#frameIndex;
    if (due > MAX_CATCH_UP_FRAMES) {
      // The event loop was blocked: real capture would have overrun too. Drop the backlog.
      this.#startMono = now - FRAME_MS;
      this.#frameIndex = 0;
      due = 1;
    }
    for (let i = 0; i < due && this.#state === 'running'; i++) {
      this.#frameIndex++;
      this.#deliver(this.#synthesise());
    }
    if (this.#state === 'running') this.#schedule();
  }

  /**
   * The next 20 ms of the sine into the one reused frame buffer, by rotating a phasor (two
   * multiplications a sample instead of a sin call); renormalised each frame so it cannot drift.
   */
  #synthesise(): Int16Array {
    const pcm = this.#frame;
    const step = (2 * Math.PI * this.frequencyHz) / SAMPLE_RATE;
    const amp = this.silent ? 0 : 32767 * 10 ** (this.levelDbfs / 20);
    const cs = Math.cos(step);
    const sn = Math.sin(step);
    let re = Math.cos(this.#phase);
    let im = Math.sin(this.#phase);
    for (let i = 0; i < FRAME_SAMPLES; i++) {
      pcm[i] = Math.round(amp * im);
      const r = re * cs - im * sn;
      im = re * sn + im * cs;
      re = r;
    }
    this.#phase = (this.#phase + step * FRAME_SAMPLES) % (2 * Math.PI);
    return pcm;
  }

  #deliver(pcm: Int16Array): void {
    this.framesDelivered++;
    const fns = this.#fns;
    for (let i = 0; i < fns.length; i++) {
      try {
        fns[i]!(pcm);
      } catch {
        // A listener's failure is its own; the device keeps capturing.
      }
    }
  }
}

/**
 * One played frame. The level is measured on write; the tone only when asked for, so analysis
 * costs nothing on the audio path (CPU benchmarks run with this sink). Only the latest frames
 * keep their samples for that (AnalysingSinkOptions.analysisFrames).
 */
export class SinkFrame {
  #hz: number | null | undefined;

  constructor(
    /** clock.mono() when the frame was written. */
    readonly mono: number,
    /** RMS level in dBFS (-Infinity for digital silence). */
    readonly rmsDbfs: number,
    private readonly samples: () => Int16Array | undefined,
    private readonly candidates: number[],
  ) {
    if (rmsDbfs < SILENCE_DBFS) this.#hz = null;
  }

  /** The strongest tone, Hz; null below SILENCE_DBFS or once the samples were overwritten unanalysed. */
  get frequencyHz(): number | null {
    if (this.#hz === undefined) {
      const pcm = this.samples();
      this.#hz = pcm ? dominantFrequency(pcm, this.candidates) : null;
    }
    return this.#hz;
  }
}

export interface AnalysingSinkOptions {
  clock?: Clock;
  /** Frequencies to look for; default a 50 Hz grid from 100 to 4000 Hz, refined by interpolation. */
  candidateHz?: number[];
  /** Frames kept (oldest dropped first); default 60 s worth. */
  maxFrames?: number;
  /** Latest frames whose samples are kept for tone analysis; default 10 s worth. */
  analysisFrames?: number;
}

/**
 * A playback device that listens: it records when each frame arrived, how loud and which tone.
 * Everything is kept in preallocated rings, so writing a frame allocates nothing (no garbage
 * collector work on the audio path of a CPU benchmark).
 */
export class SimulatedAnalysingSink implements AudioSink {
  readonly format = FORMAT;
  /** Knob: writes reject INTERNAL as a failing device would. */
  failWrites = false;
  readonly #clock: Clock;
  readonly #candidates: number[];
  readonly #maxFrames: number;
  readonly #analysisFrames: number;
  readonly #mono: Float64Array;
  readonly #rms: Float64Array;
  readonly #samples: Int16Array;
  /** Frames written since the last reset; frame n sits in slot n % capacity. */
  #count = 0;
  #first = 0;
  #closed = false;

  constructor(opts: AnalysingSinkOptions = {}) {
    this.#clock = opts.clock ?? systemClock;
    this.#candidates = opts.candidateHz ?? Array.from({ length: 79 }, (_, i) => 100 + 50 * i);
    this.#maxFrames = opts.maxFrames ?? 3000;
    this.#analysisFrames = Math.min(opts.analysisFrames ?? 500, this.#maxFrames);
    this.#mono = new Float64Array(this.#maxFrames);
    this.#rms = new Float64Array(this.#maxFrames);
    this.#samples = new Int16Array(this.#analysisFrames * FRAME_SAMPLES);
  }

  async write(pcm: Int16Array): Promise<void> {
    if (this.#closed) throw new SweepError('CLOSED', 'the simulated sink is closed');
    if (!(pcm instanceof Int16Array) || pcm.length !== FRAME_SAMPLES) {
      const len = pcm instanceof Int16Array ? `${pcm.length} samples` : typeof pcm;
      throw new SweepError('INVALID_MESSAGE', `a playback frame of ${len}, expected an Int16Array of ${FRAME_SAMPLES}`);
    }
    if (this.failWrites) throw new SweepError('INTERNAL', 'simulated sink: write failed (failWrites knob)');
    const n = this.#count++;
    const slot = n % this.#maxFrames;
    this.#mono[slot] = this.#clock.mono();
    this.#rms[slot] = rmsDbfsOf(pcm);
    // A copy into the ring: the writer may reuse its buffer once the write resolved.
    if (this.#analysisFrames > 0) this.#samples.set(pcm, (n % this.#analysisFrames) * FRAME_SAMPLES);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get frames(): readonly SinkFrame[] {
    return this.framesSince();
  }

  framesSince(sinceMono = -Infinity): SinkFrame[] {
    const out: SinkFrame[] = [];
    for (let n = this.#oldest(); n < this.#count; n++) {
      if (this.#mono[n % this.#maxFrames]! >= sinceMono) out.push(this.#frame(n));
    }
    return out;
  }

  /** The longest interval between consecutive frame arrivals at or after `sinceMono`; 0 if fewer than two. */
  maxGapMs(sinceMono = -Infinity): number {
    let max = 0;
    let prev: number | undefined;
    for (let n = this.#oldest(); n < this.#count; n++) {
      const mono = this.#mono[n % this.#maxFrames]!;
      if (mono < sinceMono) continue;
      if (prev !== undefined) max = Math.max(max, mono - prev);
      prev = mono;
    }
    return max;
  }

  /** Median RMS level over the frames since `sinceMono`; -Infinity if none. */
  levelDbfs(sinceMono?: number): number {
    return median(this.framesSince(sinceMono).map((f) => f.rmsDbfs)) ?? -Infinity;
  }

  /** Median dominant frequency over (at most 25 evenly spread) non-silent frames since `sinceMono`; null if none. */
  frequencyHz(sinceMono?: number): number | null {
    const loud = this.framesSince(sinceMono).filter((f) => f.rmsDbfs >= SILENCE_DBFS);
    const step = Math.max(1, Math.floor(loud.length / 25));
    const hz: number[] = [];
    for (let i = 0; i < loud.length; i += step) {
      const f = loud[i]!.frequencyHz;
      if (f !== null) hz.push(f);
    }
    return median(hz) ?? null;
  }

  /** Same as frequencyHz. */
  dominantFrequencyHz(sinceMono?: number): number | null {
    return this.frequencyHz(sinceMono);
  }

  /** What the last second sounded like, for a human: "770 Hz at -12.0 dBFS" or "silence". */
  describe(): string {
    const since = this.#clock.mono() - 1000;
    const hz = this.frequencyHz(since);
    if (this.framesSince(since).length === 0) return 'nothing';
    return hz === null ? 'silence' : `${Math.round(hz)} Hz at ${this.levelDbfs(since).toFixed(1)} dBFS`;
  }

  reset(): void {
    this.#first = this.#count;
  }

  #oldest(): number {
    return Math.max(this.#first, this.#count - this.#maxFrames);
  }

  #frame(n: number): SinkFrame {
    const slot = n % this.#maxFrames;
    const samples = () => {
      if (n < this.#count - this.#analysisFrames) return undefined;
      const at = (n % this.#analysisFrames) * FRAME_SAMPLES;
      return this.#samples.subarray(at, at + FRAME_SAMPLES);
    };
    return new SinkFrame(this.#mono[slot]!, this.#rms[slot]!, samples, this.#candidates);
  }
}

function median(xs: number[]): number | undefined {
  if (xs.length === 0) return undefined;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

export function rmsDbfsOf(pcm: Int16Array): number {
  let sum = 0;
  for (let i = 0; i < pcm.length; i++) sum += pcm[i]! * pcm[i]!;
  const rms = Math.sqrt(sum / pcm.length) / 32768;
  return rms === 0 ? -Infinity : 20 * Math.log10(rms);
}

/** Goertzel power of one frequency over a frame. */
function goertzel(pcm: Int16Array, hz: number): number {
  const coeff = 2 * Math.cos((2 * Math.PI * hz) / SAMPLE_RATE);
  let s1 = 0;
  let s2 = 0;
  for (let i = 0; i < pcm.length; i++) {
    const s0 = pcm[i]! + coeff * s1 - s2;
    s2 = s1;
    s1 = s0;
  }
  return s1 * s1 + s2 * s2 - coeff * s1 * s2;
}

function strongest(pcm: Int16Array, freqs: number[]): number | null {
  let best: number | null = null;
  let bestPower = -1;
  for (const hz of freqs) {
    const p = goertzel(pcm, hz);
    if (p > bestPower) [best, bestPower] = [hz, p];
  }
  return best;
}

/**
 * The strongest of the candidate frequencies, then refined on a 1 Hz grid half a candidate step
 * either side (a 20 ms frame's bins are 50 Hz wide, but a pure tone's peak is still sharp).
 */
export function dominantFrequency(pcm: Int16Array, candidates: number[]): number | null {
  const coarse = strongest(pcm, candidates);
  if (coarse === null || candidates.length < 2) return coarse;
  const span = Math.abs((candidates[1] ?? coarse) - (candidates[0] ?? coarse)) / 2;
  const fine: number[] = [];
  for (let hz = coarse - span; hz <= coarse + span; hz += 1) if (hz > 0) fine.push(hz);
  return strongest(pcm, fine) ?? coarse;
}
