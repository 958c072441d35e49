import t from 'tap';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../../drivers/audio/simulated.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

void t.test('SimulatedToneSource on a fake clock delivers exactly one frame per 20 ms', async (t) => {
  const clock = new FakeClock();
  const src = new SimulatedToneSource({ clock });
  t.teardown(() => src.close());
  let n = 0;
  src.onFrame(() => n++);
  await src.start();
  for (let i = 0; i < 100; i++) clock.advance(7); // 700 ms in uneven steps
  t.equal(n, 35);
  await src.close();
  t.equal(clock.pending(), 0, 'no timer left after close');
});

void t.test('SimulatedToneSource.pause drops frames until resume, silent keeps cadence with zeros', async (t) => {
  const clock = new FakeClock();
  const src = new SimulatedToneSource({ clock });
  t.teardown(() => src.close());
  const frames: Int16Array[] = [];
  src.onFrame((pcm) => frames.push(pcm));
  await src.start();
  clock.advance(100);
  src.pause();
  clock.advance(200);
  t.equal(frames.length, 5, 'nothing while paused');
  src.resume();
  src.silent = true;
  clock.advance(100);
  t.equal(frames.length, 10);
  t.ok(frames.at(-1)!.every((v) => v === 0), 'silent frames are zeros');
});

void t.test('SimulatedToneSource with failStart rejects start', async (t) => {
  const src = new SimulatedToneSource({ failStart: true });
  t.teardown(() => src.close());
  await t.rejects(src.start(), { name: 'SweepError' });
});

void t.test('SimulatedAnalysingSink records arrival gaps, level and tone', async (t) => {
  const clock = new FakeClock();
  const src = new SimulatedToneSource({ clock, frequencyHz: 990, levelDbfs: -6 });
  const sink = new SimulatedAnalysingSink({ clock });
  t.teardown(async () => {
    await src.close();
    await sink.close();
  });
  src.onFrame((pcm) => void sink.write(pcm));
  await src.start();
  clock.advance(200);
  src.pause();
  clock.advance(60);
  src.resume();
  clock.advance(100);
  t.equal(sink.maxGapMs(), 80, 'the pause shows as an 80 ms gap');
  t.equal(sink.maxGapMs(clock.mono() - 90), 20, 'after it, 20 ms');
  t.ok(Math.abs(sink.frequencyHz()! - 990) <= 5);
  t.ok(Math.abs(sink.levelDbfs() + 9) < 0.5, `level ${sink.levelDbfs()}`);
  t.match(sink.describe(), /9(89|9\d) Hz at -9\.\d dBFS/);
  sink.reset();
  t.equal(sink.frames.length, 0);
  t.equal(sink.frequencyHz(), null);
});

void t.test('SimulatedAnalysingSink with failWrites rejects writes', async (t) => {
  const sink = new SimulatedAnalysingSink();
  sink.failWrites = true;
  await t.rejects(sink.write(new Int16Array(960)), { name: 'SweepError', code: 'INTERNAL' });
});
