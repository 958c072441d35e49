import t from 'tap';
import { FakeClock } from '../helpers/fake-clock.ts';
import { SimulatedAnalysingSink, rmsDbfsOf } from '../../drivers/audio/simulated.ts';
import { createLogger } from '../../platform/log.ts';
import { NOBODY_HOME, playTone, toneFrames } from '../../runtime/media/signal-tone.ts';

/** H7's nobody-home tone (runtime/media/signal-tone.ts): paced frames on an idle speaker, never a crash. */

void t.test('toneFrames makes one 20 ms frame per 20 ms of each step, pauses silent, tones at the level asked', async (t) => {
  const frames = toneFrames(NOBODY_HOME, -12);
  t.equal(frames.length, (200 + 100 + 200 + 100 + 400) / 20);
  t.ok(Math.abs(rmsDbfsOf(frames[0]!) - -15) < 0.2, 'a sine at -12 dBFS peak is -15 dBFS RMS');
  t.equal(rmsDbfsOf(frames[10]!), -Infinity, 'the pause is silence');
});

void t.test('playTone writes one frame per 20 ms of the clock, and stop() ends it early', async (t) => {
  const clock = new FakeClock();
  const sink = new SimulatedAnalysingSink({ clock });
  const tone = playTone(sink, toneFrames(NOBODY_HOME), clock, createLogger({ level: 'silent' }));
  t.equal(sink.frames.length, 1, 'the first frame at once');
  clock.advance(100);
  t.equal(sink.frames.length, 6, 'then one per 20 ms');
  tone.stop();
  clock.advance(1000);
  t.equal(sink.frames.length, 6, 'nothing after stop');
  await tone.done;
});

void t.test('a sink that refuses frames ends the tone with one warning', async (t) => {
  const clock = new FakeClock();
  const sink = new SimulatedAnalysingSink({ clock });
  sink.failWrites = true;
  const lines: string[] = [];
  const tone = playTone(sink, toneFrames(NOBODY_HOME), clock, createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } }));
  await tone.done;
  clock.advance(1000);
  t.equal(lines.length, 1);
  t.match(lines[0], /signal tone not played/);
});
