import type { AudioSink, AudioSource } from '../../drivers/audio/audio.ts';
import type { PeerTransport } from '../p2p/transport.ts';
import { SweepError } from '../../core/errors.ts';
import { systemClock, type Clock } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';
import { OpusDecoder, OpusEncoder, type OpusEncoderOptions } from './opus.ts';
import { seqDelta } from './rtp.ts';
import type { JitterBufferOptions, JitterStats } from './jitter-buffer.ts';
import { Playout } from './playout.ts';

export interface MediaEngineOptions {
  source: AudioSource;
  sink: AudioSink;
  log: Logger;
  clock?: Clock;
  encoder?: OpusEncoderOptions;
  /** Missing frames concealed per sequence gap; a longer gap is left silent (default 3). */
  maxConcealFrames?: number;
  /**
   * The receive path's adaptive jitter buffer (runtime/media/jitter-buffer.ts): packets are
   * played on a 20 ms clock, reordered, losses concealed. Absent: decoded on arrival.
   */
  jitter?: JitterBufferOptions;
  /** Knob for tests and benchmarks: drop this fraction (0-1) of received packets at random. */
  receiveLoss?: number;
  random?: () => number;
  /**
   * Told when the sink refuses frames: on the first failure, then at most once per
   * SINK_ERROR_REPORT_MS with the failures since (a dead sound card must not flood the bus).
   */
  onSinkError?: (e: { message: string; failures: number; total: number }) => void;
}

/** The least time between two sink-failure reports. */
export const SINK_ERROR_REPORT_MS = 10_000;

export interface MediaStats {
  framesCaptured: number;
  /** Frames encoded (once each, whatever the number of targets). */
  framesSent: number;
  /** Packets handed to transports (framesSent × targets). */
  packetsSent: number;
  /** Packets that arrived from any attached transport. */
  framesReceived: number;
  framesDecoded: number;
  framesConcealed: number;
  /** Late, duplicate or undecodable packets. */
  framesDropped: number;
  playbackSwitches: number;
}

/** After a jump this large the stream is taken as a new one (the peer restarted its sender). */
const NEW_STREAM_JUMP = 1000;

/**
 * Capture → Opus → every send target; one chosen transport's audio → Opus → sink.
 * Make before break during a sweep: the session layer sends to old and new holder at once
 * (`setSendTargets`), learns the new one's media flows (`onFirstAudio`), then switches playback.
 * With `jitter` set, received packets go through an adaptive jitter buffer played on a 20 ms
 * clock (runtime/media/playout.ts): the capture device's frames while capture runs, a timer
 * otherwise; without, packets are decoded on arrival (reordered packets
 * are dropped as late).
 */
export class MediaEngine {
  readonly #source: AudioSource;
  readonly #sink: AudioSink;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #encoder: OpusEncoder;
  readonly #decoder = new OpusDecoder();
  readonly #maxConceal: number;
  readonly #onSinkError: MediaEngineOptions['onSinkError'];
  readonly #sinkFailures: { total: number; since: number; reportedAt: number | undefined } = { total: 0, since: 0, reportedAt: undefined };

  #sendTargets: PeerTransport[] = [];
  #playback: PeerTransport | null = null;
  /** Transports whose audio we listen to; `onAudio` cannot be undone, so listeners check this. */
  readonly #attached = new Set<PeerTransport>();
  readonly #subscribed = new WeakSet<PeerTransport>();
  readonly #firstAudio = new Map<PeerTransport, (() => void)[]>();
  #lastSeq: number | undefined;
  #running = false;
  #closed: Promise<void> | undefined;
  #playbackSince = 0;
  readonly #stats: MediaStats = {
    framesCaptured: 0,
    framesSent: 0,
    packetsSent: 0,
    framesReceived: 0,
    framesDecoded: 0,
    framesConcealed: 0,
    framesDropped: 0,
    playbackSwitches: 0,
  };
  /** Packets dropped by the loss-injection knob. */
  #lostInjected = 0;
  readonly #playout: Playout | undefined;
  #receiveLoss = 0;
  readonly #random: () => number;

  constructor(opts: MediaEngineOptions) {
    this.#source = opts.source;
    this.#sink = opts.sink;
    this.#log = opts.log;
    this.#clock = opts.clock ?? systemClock;
    this.#encoder = new OpusEncoder(opts.encoder);
    this.#maxConceal = opts.maxConcealFrames ?? 3;
    this.#onSinkError = opts.onSinkError;
    this.#source.onFrame((pcm) => this.#onCaptured(pcm));
    this.#random = opts.random ?? Math.random;
    this.setReceiveLoss(opts.receiveLoss ?? 0);
    if (opts.jitter) {
      this.#playout = new Playout({ output: (pcm, concealed) => this.#output(pcm, concealed), jitter: opts.jitter, clock: this.#clock, log: this.#log });
    }
  }

  /** Loss injection (tests, benchmarks): each received packet is dropped with this probability. */
  setReceiveLoss(fraction: number): void {
    if (!(fraction >= 0 && fraction <= 1)) throw new SweepError('INVALID_CONFIG', `receive loss ${fraction} is not a fraction 0-1`);
    this.#receiveLoss = fraction;
  }

  /** Packets the loss-injection knob dropped. */
  get packetsLostInjected(): number {
    return this.#lostInjected;
  }

  /** The jitter buffer's figures; undefined without one. */
  jitterStats(): JitterStats | undefined {
    return this.#playout?.stats();
  }

  /** Every captured frame is encoded once and sent to each of these (empty: nothing encoded). */
  setSendTargets(transports: PeerTransport[]): void {
    if (this.#closed) return;
    this.#sendTargets = [...new Set(transports)];
  }

  /** The one transport whose audio is played; null plays nothing. The decoder starts afresh. */
  setPlayback(transport: PeerTransport | null): void {
    if (this.#closed || transport === this.#playback) return;
    if (transport) this.attach(transport);
    this.#playback = transport;
    this.#decoder.reset();
    this.#lastSeq = undefined;
    this.#playbackSince = this.#clock.mono();
    this.#playout?.switchStream();
    this.#stats.playbackSwitches++;
    this.#log.debug({ linkId: transport?.linkId ?? null }, 'playback switched');
  }

  /** Fires once, at the next audio packet that arrives from `transport` (attaching it if needed). */
  onFirstAudio(transport: PeerTransport, fn: () => void): void {
    if (this.#closed) return;
    this.attach(transport);
    const fns = this.#firstAudio.get(transport) ?? [];
    fns.push(fn);
    this.#firstAudio.set(transport, fns);
  }

  /** Listens to a transport's audio (once per transport, however often called). */
  attach(transport: PeerTransport): void {
    if (this.#closed) return;
    this.#attached.add(transport);
    if (this.#subscribed.has(transport)) return;
    this.#subscribed.add(transport);
    transport.onAudio((opus, seq) => this.#onAudio(transport, opus, seq));
  }

  /** Stops listening to, sending to and playing from a transport. */
  detach(transport: PeerTransport): void {
    this.#attached.delete(transport);
    this.#firstAudio.delete(transport);
    this.#sendTargets = this.#sendTargets.filter((t) => t !== transport);
    if (this.#playback === transport) this.setPlayback(null);
  }

  stats(): MediaStats {
    return { ...this.#stats };
  }

  /** Starts capture; frames flow to the send targets from then on. */
  async start(): Promise<void> {
    if (this.#closed) throw new SweepError('CLOSED', 'the media engine is closed');
    this.#running = true;
    try {
      await this.#source.start();
    } catch (err) {
      this.#running = false;
      throw err;
    }
  }

  async stop(): Promise<void> {
    this.#running = false;
    await this.#source.stop();
  }

  /** Stops capture and forgets every transport. Idempotent; the source and sink stay the caller's. */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#running = false;
    this.#sendTargets = [];
    this.#playback = null;
    this.#attached.clear();
    this.#firstAudio.clear();
    this.#playout?.close();
    try {
      await this.#source.stop();
    } catch (err) {
      this.#log.warn({ err }, 'source stop failed on close');
    }
  }

  #onCaptured(pcm: Int16Array): void {
    if (!this.#running || this.#closed) return;
    this.#stats.framesCaptured++;
    this.#send(pcm);
    // After sending (the far end waits for it): the captured frame is the playout's clock.
    this.#playout?.clockTick();
  }

  #send(pcm: Int16Array): void {
    if (this.#sendTargets.length === 0) return;
    let opus: Uint8Array;
    try {
      // Sent at once to every target, each of which copies it (node-datachannel): no copy here.
      opus = this.#encoder.encodeShared(pcm);
    } catch (err) {
      this.#log.warn({ err }, 'encode failed');
      return;
    }
    this.#stats.framesSent++;
    for (const t of this.#sendTargets) {
      t.sendAudio(opus);
      this.#stats.packetsSent++;
    }
  }

  #onAudio(transport: PeerTransport, opus: Uint8Array, seq: number): void {
    if (this.#closed || !this.#attached.has(transport)) return;
    if (this.#receiveLoss > 0 && this.#random() < this.#receiveLoss) {
      this.#lostInjected++;
      return;
    }
    this.#stats.framesReceived++;
    const first = this.#firstAudio.get(transport);
    if (first) {
      this.#firstAudio.delete(transport);
      for (const fn of first) {
        try {
          fn();
        } catch (err) {
          this.#log.warn({ err }, 'onFirstAudio listener threw');
        }
      }
    }
    if (transport !== this.#playback) return;
    this.#play(opus, seq);
  }

  #play(opus: Uint8Array, seq: number): void {
    if (this.#playout) {
      this.#playout.push(opus, seq);
      return;
    }
    const last = this.#lastSeq;
    if (last !== undefined) {
      const d = seqDelta(last, seq);
      if (d <= 0 && d > -NEW_STREAM_JUMP) {
        this.#stats.framesDropped++;
        return;
      }
      if (d > 1 && d <= this.#maxConceal + 1) {
        for (let i = 1; i < d; i++) this.#output(this.#decoder.conceal(), true);
      } else if (Math.abs(d) >= NEW_STREAM_JUMP) {
        this.#decoder.reset();
      }
    }
    this.#lastSeq = seq;
    let pcm: Int16Array;
    try {
      pcm = this.#decoder.decode(opus);
    } catch (err) {
      this.#stats.framesDropped++;
      this.#log.debug({ err }, 'undecodable packet dropped');
      return;
    }
    this.#output(pcm, false);
  }

  #output(pcm: Int16Array, concealed: boolean): void {
    if (concealed) this.#stats.framesConcealed++;
    else this.#stats.framesDecoded++;
    this.#sink.write(pcm).catch(this.#onSinkRejected);
  }

  /** One function for every frame's write, not a closure per frame. */
  readonly #onSinkRejected = (err: unknown): void => this.#sinkFailed(err);

  #sinkFailed(err: unknown): void {
    this.#sinkFailures.total++;
    this.#sinkFailures.since++;
    const now = this.#clock.mono();
    const last = this.#sinkFailures.reportedAt;
    if (last !== undefined && now - last < SINK_ERROR_REPORT_MS) return;
    const message = err instanceof Error ? err.message : String(err);
    this.#log.warn({ message, failures: this.#sinkFailures.since, total: this.#sinkFailures.total }, 'sink write failed');
    try {
      this.#onSinkError?.({ message, failures: this.#sinkFailures.since, total: this.#sinkFailures.total });
    } catch (listenerErr) {
      this.#log.error({ err: listenerErr }, 'sink error listener threw');
    }
    this.#sinkFailures.reportedAt = now;
    this.#sinkFailures.since = 0;
  }

  /** clock.mono() when playback last switched, for measuring the switch gap. */
  get playbackSince(): number {
    return this.#playbackSince;
  }
}
