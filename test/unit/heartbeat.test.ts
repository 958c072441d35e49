import t from 'tap';
import { Heartbeat } from '../../server/heartbeat.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** Sockets that note when they were pinged. */
function sockets(clock: FakeClock, n: number): Array<{ id: number; pings: number[]; heartbeat(): void }> {
  return Array.from({ length: n }, (_, id) => {
    const s = { id, pings: [] as number[], heartbeat: () => void s.pings.push(clock.mono()) };
    return s;
  });
}

void t.test('Heartbeat pings each socket once per interval, a tenth of them at a time', async (t) => {
  const clock = new FakeClock();
  const hb = new Heartbeat(clock, 1000, 10);
  const all = sockets(clock, 100);
  for (const s of all) hb.add(s);
  hb.start();
  t.teardown(() => hb.stop());
  let most = 0;
  let before = 0;
  for (let i = 0; i < 30; i++) {
    clock.advance(100);
    const now = all.reduce((n, s) => n + s.pings.length, 0);
    most = Math.max(most, now - before);
    before = now;
  }
  t.equal(most, 10, 'at most a tenth per tick');
  for (const s of all) {
    t.equal(s.pings.length, 3, `socket ${s.id} pinged once a second`);
    t.same([s.pings[1]! - s.pings[0]!, s.pings[2]! - s.pings[1]!], [1000, 1000], `socket ${s.id}: exactly an interval apart`);
  }
});

void t.test('Heartbeat after delete no longer pings that socket, and stop leaves no timer', async (t) => {
  const clock = new FakeClock();
  const hb = new Heartbeat(clock, 1000, 4);
  const [a, b] = sockets(clock, 2);
  hb.add(a!);
  hb.add(b!);
  hb.start();
  hb.start();
  hb.delete(a!);
  clock.advance(2000);
  t.equal(a!.pings.length, 0);
  t.equal(b!.pings.length, 2);
  hb.stop();
  hb.stop();
  t.equal(clock.pending(), 0);
});

void t.test('Heartbeat with a socket that closes itself while pinged goes on with the others', async (t) => {
  const clock = new FakeClock();
  const hb = new Heartbeat(clock, 100, 1);
  const all = sockets(clock, 3);
  const dropping = { pings: 0, heartbeat: () => (dropping.pings += 1, hb.delete(dropping)) };
  hb.add(all[0]!);
  hb.add(dropping);
  hb.add(all[1]!);
  hb.start();
  t.teardown(() => hb.stop());
  clock.advance(200);
  t.equal(dropping.pings, 1);
  t.same(all.slice(0, 2).map((s) => s.pings.length), [2, 2]);
});
