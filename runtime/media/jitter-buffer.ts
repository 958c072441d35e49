import { FRAME_MS } from '../../drivers/audio/audio.ts';
import { SweepError } from '../../core/errors.ts';
import { seqDelta } from './rtp.ts';

/**
 * An adaptive jitter buffer for one stream of 20 ms Opus packets. Pure: no timers, time is passed
 * in (`arrivalMs`), so tests drive it with a fake clock. The playout side calls `pop()` once per
 * 20 ms of the local (sound card) clock.
 *
 * - Packets are ordered by RTP sequence number (16-bit wrap handled); a packet older than the one
 *   already played is late, a repeated one a duplicate: both are dropped and counted.
 * - The delay target adapts to the arrival jitter seen over the last `windowPackets` packets (the
 *   spread of transit times, rounded up to whole frames, plus one frame), bounded by
 *   [minMs, maxMs]; it starts at `targetMs`.
 * - Playout begins (and restarts after running dry) once the target is buffered.
 * - A missing frame with later ones waiting is concealed (`conceal`: the caller runs Opus PLC);
 *   an empty buffer conceals up to `maxConcealFrames` then reports `empty` and re-buffers.
 * - Latency does not grow: more than `maxMs` buffered (a burst, or a sender clock faster than ours)
 *   drops the oldest frame at once; a depth above target for `drainAfterTicks` ticks in a row
 *   drops one frame. A sender slower than our clock empties the buffer, which conceals a frame and
 *   re-buffers: both keep the delay within the bounds.
 *
 * FEC: @evan/opus exposes no decode-FEC flag (opus_decode's decode_fec), so the in-band FEC the
 * sender includes cannot be used to recover a lost frame; PLC fills every missing frame.
 */
export interface JitterBufferOptions {
  /** Lower bound of the adaptive delay, ms (default 20). */
  minMs?: number;
  /** Starting delay, ms (default 40). */
  targetMs?: number;
  /** Upper bound, ms (default 60): never more is buffered. */
  maxMs?: number;
  /** Missing frames concealed in a row before the output goes quiet (default 3). */
  maxConcealFrames?: number;
  /** Packets the jitter estimate looks back over (default 50, one second). */
  windowPackets?: number;
  /** Ticks above target before one frame is dropped to bring the delay back (default 25). */
  drainAfterTicks?: number;
}

export type PopResult = { kind: 'packet'; payload: Uint8Array; seq: number } | { kind: 'conceal' } | { kind: 'empty' };

export interface JitterStats {
  packetsIn: number;
  played: number;
  concealed: number;
  late: number;
  duplicate: number;
  /** Frames dropped to keep latency bounded (bursts, drift). */
  drained: number;
  /** Times playout ran dry and re-buffered. */
  underruns: number;
  /** The current adaptive target, ms. */
  targetMs: number;
  /** What is buffered now, ms. */
  depthMs: number;
}

/** A sequence jump this large is a new stream (the sender restarted). */
const NEW_STREAM_JUMP = 1000;

export class JitterBuffer {
  readonly #minFrames: number;
  readonly #maxFrames: number;
  readonly #maxConceal: number;
  readonly #window: number;
  readonly #drainAfter: number;
  #targetFrames: number;
  /** Extended (unwrapped) sequence → payload. */
  readonly #packets = new Map<number, Uint8Array>();
  #lastSeq16: number | undefined;
  #lastExt = 0;
  /** The extended sequence number playout takes next; undefined until playout starts. */
  #next: number | undefined;
  #highest = -Infinity;
  #buffering = true;
  #concealRun = 0;
  #aboveTarget = 0;
  readonly #transit: Float64Array;
  #transitCount = 0;
  readonly #stats = { packetsIn: 0, played: 0, concealed: 0, late: 0, duplicate: 0, drained: 0, underruns: 0 };

  constructor(opts: JitterBufferOptions = {}) {
    const minMs = opts.minMs ?? 20;
    const targetMs = opts.targetMs ?? 40;
    const maxMs = opts.maxMs ?? 60;
    if (!(minMs >= 0 && minMs <= targetMs && targetMs <= maxMs && maxMs >= FRAME_MS)) {
      throw new SweepError('INVALID_CONFIG', `jitter buffer bounds min ${minMs} ≤ target ${targetMs} ≤ max ${maxMs} ms (max ≥ ${FRAME_MS}) do not hold`);
    }
    this.#minFrames = Math.max(1, Math.round(minMs / FRAME_MS));
    this.#maxFrames = Math.max(this.#minFrames, Math.floor(maxMs / FRAME_MS));
    this.#targetFrames = Math.min(this.#maxFrames, Math.max(this.#minFrames, Math.round(targetMs / FRAME_MS)));
    this.#maxConceal = opts.maxConcealFrames ?? 3;
    this.#window = opts.windowPackets ?? 50;
    this.#drainAfter = opts.drainAfterTicks ?? 25;
    this.#transit = new Float64Array(this.#window);
  }

  /** Queues one packet that arrived at `arrivalMs` (monotonic). */
  push(seq: number, payload: Uint8Array, arrivalMs: number): 'queued' | 'late' | 'duplicate' {
    this.#stats.packetsIn++;
    let ext: number;
    if (this.#lastSeq16 === undefined) ext = seq;
    else {
      const d = seqDelta(this.#lastSeq16, seq);
      if (Math.abs(d) >= NEW_STREAM_JUMP) {
        this.reset();
        ext = seq;
      } else ext = this.#lastExt + d;
    }
    if (this.#lastSeq16 === undefined || ext > this.#lastExt) {
      this.#lastSeq16 = seq;
      this.#lastExt = ext;
    }
    // Late packets count too: they are what tells the target to grow.
    this.#transit[this.#transitCount++ % this.#window] = arrivalMs - ext * FRAME_MS;
    this.#adapt();
    if (this.#next !== undefined && ext < this.#next) {
      this.#stats.late++;
      return 'late';
    }
    if (this.#packets.has(ext)) {
      this.#stats.duplicate++;
      return 'duplicate';
    }
    this.#packets.set(ext, payload);
    if (ext > this.#highest) this.#highest = ext;
    // Never more than max buffered: a burst drops the oldest at once.
    while (this.#next !== undefined && this.#depthFrames() > this.#maxFrames) this.#dropOldest();
    return 'queued';
  }

  /** The next 20 ms of playout. */
  pop(): PopResult {
    if (this.#buffering) {
      if (this.#packets.size === 0 || this.#spanFrames() < this.#targetFrames) return { kind: 'empty' };
      this.#buffering = false;
      this.#next = Math.min(...this.#packets.keys());
      this.#concealRun = 0;
    }
    const next = this.#next!;
    const depth = this.#depthFrames();
    this.#aboveTarget = depth > this.#targetFrames + 1 ? this.#aboveTarget + 1 : 0;
    if (this.#aboveTarget >= this.#drainAfter) {
      this.#aboveTarget = 0;
      this.#dropOldest();
      return this.pop();
    }
    const payload = this.#packets.get(next);
    if (payload) {
      this.#packets.delete(next);
      this.#next = next + 1;
      this.#concealRun = 0;
      this.#stats.played++;
      return { kind: 'packet', payload, seq: next & 0xffff };
    }
    if (this.#packets.size === 0) {
      // Ran dry: conceal a few frames, then go quiet and re-buffer to the target.
      if (this.#concealRun < this.#maxConceal) {
        this.#concealRun++;
        this.#next = next + 1;
        this.#stats.concealed++;
        return { kind: 'conceal' };
      }
      this.#stats.underruns++;
      this.#buffering = true;
      return { kind: 'empty' };
    }
    // A hole with later packets waiting: conceal this frame (loss), whatever the run.
    this.#next = next + 1;
    this.#concealRun++;
    this.#stats.concealed++;
    return { kind: 'conceal' };
  }

  /** Forgets everything (a new stream). */
  reset(): void {
    this.#packets.clear();
    this.#lastSeq16 = undefined;
    this.#lastExt = 0;
    this.#next = undefined;
    this.#highest = -Infinity;
    this.#buffering = true;
    this.#concealRun = 0;
    this.#aboveTarget = 0;
    this.#transitCount = 0;
  }

  /** Whether playout is waiting for the target to fill (nothing to play yet). */
  get buffering(): boolean {
    return this.#buffering;
  }

  stats(): JitterStats {
    return { ...this.#stats, targetMs: this.#targetFrames * FRAME_MS, depthMs: (this.#next === undefined ? this.#spanFrames() : this.#depthFrames()) * FRAME_MS };
  }

  /** Frames from the next to play through the newest received. */
  #depthFrames(): number {
    if (this.#next === undefined || this.#packets.size === 0) return 0;
    return Math.max(0, this.#highest - this.#next + 1);
  }

  #spanFrames(): number {
    if (this.#packets.size === 0) return 0;
    let lo = Infinity;
    for (const k of this.#packets.keys()) if (k < lo) lo = k;
    return this.#highest - lo + 1;
  }

  #dropOldest(): void {
    const next = this.#next!;
    this.#packets.delete(next);
    this.#next = next + 1;
    this.#stats.drained++;
  }

  /** Target = transit spread over the window in whole frames + 1, within [min, max]. */
  #adapt(): void {
    const n = Math.min(this.#transitCount, this.#window);
    if (n < 10) return;
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = this.#transit[i]!;
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    const want = Math.ceil((hi - lo) / FRAME_MS) + 1;
    this.#targetFrames = Math.min(this.#maxFrames, Math.max(this.#minFrames, want));
  }
}
