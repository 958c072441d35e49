import type { Media, MediaHandle } from '../../core/engine/ports.ts';
import type { Logger } from '../../core/log.ts';
import type { RtcTransport } from './rtc-transport.ts';

/** How long a first-audio watch may run before it gives up (the engine's own deadline is shorter). */
const FIRST_AUDIO_WATCH_MS = 30_000;

/**
 * The engine's media port in the page (core/engine/ports.ts): the microphone goes to the links the
 * engine sends to, as an RTCRtpSender track (no renegotiation, L2); what is heard is found in the
 * receivers' synchronization sources. Playing links' audio is the page's own (app.ts plays and
 * analyses every remote stream).
 */
export class PageMedia implements Media {
  private readonly attached = new Set<RtcTransport>();
  private targets = new Set<RtcTransport>();

  constructor(
    private mic: MediaStreamTrack | null,
    private readonly log: Logger,
  ) {}

  get microphone(): MediaStreamTrack | null {
    return this.mic;
  }

  /** The user allowed (or lost) the microphone: links being sent to get the new track. */
  set microphone(track: MediaStreamTrack | null) {
    this.mic = track;
    this.apply();
  }

  attach(m: MediaHandle): void {
    this.attached.add(m as RtcTransport);
  }

  detach(m: MediaHandle): void {
    const t = m as RtcTransport;
    this.attached.delete(t);
    this.targets.delete(t);
    this.send(t, null);
  }

  setSendTargets(ms: MediaHandle[]): void {
    this.targets = new Set(ms as RtcTransport[]);
    for (const t of this.targets) this.attached.add(t);
    this.apply();
  }

  setPlayback(): void {
    // Every link's remote stream is played by the page; the far end sends only to its holder (S7).
  }

  /** Fires at the first audio frame that arrives on `m` from now on (RTCRtpReceiver sync sources). */
  onFirstAudio(m: MediaHandle, fn: () => void): void {
    const t = m as RtcTransport;
    const receiver = t.audio.receiver;
    const before = new Map(receiver.getSynchronizationSources().map((s) => [s.source, s.timestamp]));
    const deadline = performance.now() + FIRST_AUDIO_WATCH_MS;
    const poll = setInterval(() => {
      const fresh = receiver.getSynchronizationSources().some((s) => before.get(s.source) !== s.timestamp);
      if (fresh) fn();
      if (fresh || t.isClosed || performance.now() > deadline) clearInterval(poll);
    }, 2);
  }

  async start(): Promise<void> {}

  async stop(): Promise<void> {}

  private apply(): void {
    for (const t of this.attached) this.send(t, this.targets.has(t) ? this.mic : null);
  }

  private send(t: RtcTransport, track: MediaStreamTrack | null): void {
    t.setSending(track).catch((err: unknown) => this.log.warn({ err: String(err) }, 'microphone not switched'));
  }
}
