import t from 'tap';
import { Liveness, LIVENESS } from '../../core/protocol/liveness.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

function watch(clock: FakeClock) {
  const sent: number[] = [];
  const dead: number[] = [];
  const l = new Liveness({ clock, sendAlive: () => sent.push(clock.mono()), onDead: (ms) => dead.push(ms) });
  return { l, sent, dead };
}

void t.test('liveness with a silent peer declares it dead within deadAfterMs + intervalMs/2 (L5)', async (t) => {
  const clock = new FakeClock();
  const { l, sent, dead } = watch(clock);
  t.teardown(() => l.stop());
  l.start();
  for (let ms = 0; ms < LIVENESS.deadAfterMs + LIVENESS.intervalMs; ms += 100) clock.advance(100);
  t.equal(dead.length, 1, 'declared dead once');
  t.ok(dead[0]! >= LIVENESS.deadAfterMs && dead[0]! <= LIVENESS.deadAfterMs + LIVENESS.intervalMs / 2, `after ${dead[0]} ms of silence`);
  t.ok(sent.length >= 2, `it said alive meanwhile (${sent.length} times)`);
});

void t.test('liveness with a peer that keeps talking never declares it dead and says alive each interval (L5)', async (t) => {
  const clock = new FakeClock();
  const { l, sent, dead } = watch(clock);
  t.teardown(() => l.stop());
  l.start();
  for (let ms = 0; ms < 20_000; ms += 100) {
    clock.advance(100);
    if (ms % 1000 === 0) l.heard();
  }
  t.equal(dead.length, 0);
  t.ok(sent.length >= 19 && sent.length <= 21, `one alive a second (${sent.length} in 20 s)`);
});

void t.test('liveness after its own event loop stalled gives the peer a fresh window instead of a false death (L5)', async (t) => {
  const clock = new FakeClock();
  const { l, dead } = watch(clock);
  t.teardown(() => l.stop());
  l.start();
  clock.advance(400);
  l.heard();
  // One long stall of this process: timers fire late, all at once.
  clock.jump(5000);
  t.equal(dead.length, 0, 'no death right after our own stall');
  l.heard();
  clock.advance(1000);
  t.equal(dead.length, 0);
});
