import type { Logger } from '../../core/log.ts';

/** Plays every link's remote audio and analyses what is heard (AnalyserNode). */
export class AudioOut {
  readonly ctx = new AudioContext();
  private readonly analyser: AnalyserNode;
  private readonly streams = new Set<MediaStream>();
  private ringTimer: ReturnType<typeof setInterval> | undefined;

  constructor(private readonly log: Logger) {
    this.analyser = this.ctx.createAnalyser();
    this.analyser.fftSize = 8192;
    this.analyser.smoothingTimeConstant = 0.2;
    const silent = this.ctx.createGain();
    silent.gain.value = 0;
    this.analyser.connect(silent).connect(this.ctx.destination);
  }

  add(stream: MediaStream): void {
    if (this.streams.has(stream)) return;
    this.streams.add(stream);
    // The element plays it; Chrome also needs it for remote audio to reach WebAudio.
    const el = document.createElement('audio');
    el.autoplay = true;
    el.setAttribute('playsinline', '');
    el.srcObject = stream;
    document.body.append(el);
    el.play().catch((err: unknown) => this.log.warn({ err: String(err) }, 'audio element did not start'));
    this.ctx.createMediaStreamSource(stream).connect(this.analyser);
    void this.ctx.resume();
  }

  /** The strongest tone between 80 Hz and 4 kHz now, and its level. */
  hearing(): { hz: number | null; db: number } {
    const bins = new Float32Array(this.analyser.frequencyBinCount);
    this.analyser.getFloatFrequencyData(bins);
    const hzPerBin = this.ctx.sampleRate / this.analyser.fftSize;
    let best = -1;
    let db = -Infinity;
    for (let i = Math.ceil(80 / hzPerBin); i < Math.min(bins.length, 4000 / hzPerBin); i++) {
      if (bins[i]! > db) {
        db = bins[i]!;
        best = i;
      }
    }
    return db > -90 && best >= 0 ? { hz: Math.round(best * hzPerBin), db: Math.round(db) } : { hz: null, db };
  }

  /**
   * H1: a ring tone while a call rings here (two short bursts every 2 s), where the browser lets
   * the page play sound (after a user gesture, or autoplay allowed); vibration where supported.
   */
  /** Whether the ring tone (and vibration) is on. */
  get ringing(): boolean {
    return this.ringTimer !== undefined;
  }

  ring(on: boolean): void {
    if (on === (this.ringTimer !== undefined)) return;
    if (!on) {
      clearInterval(this.ringTimer);
      this.ringTimer = undefined;
      navigator.vibrate?.(0);
      return;
    }
    const burst = () => {
      navigator.vibrate?.([400, 200, 400]);
      if (this.ctx.state !== 'running') return;
      for (const at of [0, 0.5]) {
        const osc = this.ctx.createOscillator();
        const gain = this.ctx.createGain();
        osc.frequency.value = 880;
        gain.gain.value = 0.15;
        osc.connect(gain).connect(this.ctx.destination);
        osc.start(this.ctx.currentTime + at);
        osc.stop(this.ctx.currentTime + at + 0.35);
      }
    };
    void this.ctx.resume().catch(() => undefined);
    burst();
    this.ringTimer = setInterval(burst, 2000);
  }
}
