import { FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE, type AudioSink } from '../../drivers/audio/audio.ts';
import type { Clock, TimerHandle } from '../../core/clock.ts';
import type { Logger } from '../../platform/log.ts';

/** One step of a signal tone: a frequency (0: a pause) for a whole number of 20 ms frames. */
export interface ToneStep {
  hz: number;
  ms: number;
}

/**
 * H7: nobody of the household could ring (all busy, do not disturb or offline). Three falling
 * tones, so a visitor at the door hears at once that ringing longer is of no use.
 */
export const NOBODY_HOME: readonly ToneStep[] = [
  { hz: 700, ms: 200 },
  { hz: 0, ms: 100 },
  { hz: 550, ms: 200 },
  { hz: 0, ms: 100 },
  { hz: 400, ms: 400 },
];

/** The steps as 20 ms PCM frames at `levelDbfs`, each tone starting at phase 0 (no click between frames). */
export function toneFrames(steps: readonly ToneStep[], levelDbfs = -12): Int16Array[] {
  const amp = 32767 * 10 ** (levelDbfs / 20);
  const frames: Int16Array[] = [];
  for (const { hz, ms } of steps) {
    const count = Math.round(ms / FRAME_MS);
    for (let f = 0; f < count; f++) {
      const pcm = new Int16Array(FRAME_SAMPLES);
      if (hz > 0) {
        for (let i = 0; i < FRAME_SAMPLES; i++) pcm[i] = Math.round(amp * Math.sin((2 * Math.PI * hz * (f * FRAME_SAMPLES + i)) / SAMPLE_RATE));
      }
      frames.push(pcm);
    }
  }
  return frames;
}

/**
 * Plays frames on an idle sink, one per 20 ms by the clock (a sink queues, it does not pace);
 * `stop()` ends it early. A sink that refuses a frame ends the tone with a warning: a missing
 * tone must not stop anything else.
 */
export function playTone(sink: AudioSink, frames: readonly Int16Array[], clock: Clock, log: Logger): { stop(): void; done: Promise<void> } {
  let timer: TimerHandle | undefined;
  let next = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const stop = (): void => {
    if (timer) clock.clear(timer);
    timer = undefined;
    finish();
  };
  const tick = (): void => {
    const frame = frames[next++];
    if (!frame) return stop();
    sink.write(frame).catch((err: unknown) => {
      log.warn({ err: err instanceof Error ? err.message : String(err) }, 'signal tone not played');
      stop();
    });
  };
  tick();
  timer = clock.setInterval(tick, FRAME_MS);
  return { stop, done };
}
