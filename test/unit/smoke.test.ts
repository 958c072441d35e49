import t from 'tap';
import { Backoff } from '../../core/backoff.ts';

void t.test('Backoff.next with fixed randomness grows to its ceiling', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
  t.same([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  b.reset();
  t.equal(b.next(), 100);
});

void t.test('Backoff.next with full jitter spreads delays from 0 to the ceiling', async (t) => {
  const draws = [0, 0.25, 0.5, 0.999];
  const b = new Backoff({ initialMs: 400, maxMs: 400, random: () => draws.shift() ?? 0 });
  // Half jitter (ceiling/2 + random*ceiling/2) would give 200, 250, 300, 400.
  t.same([b.next(), b.next(), b.next(), b.next()], [0, 100, 200, 400]);
});

void t.test('Backoff.asked waits what a busy server asked for plus jitter, and starts the doubling over (A17, issue 16)', async (t) => {
  const b = new Backoff({ initialMs: 500, maxMs: 30_000, random: () => 1 });
  t.same([b.next(), b.next(), b.next(), b.next(), b.next(), b.next()], [500, 1000, 2000, 4000, 8000, 16000], 'the server was down');
  t.equal(b.asked(3200), 3700, 'the wait asked for and up to initialMs more');
  t.equal(b.next(), 500, 'a reachable server does not leave the ceiling at 32 s');
  t.equal(b.asked(120_000), 30_500, 'no longer than maxMs (and jitter)');
});

void t.test('Backoff.next over many draws fills the whole window evenly', async (t) => {
  let seed = 1;
  // A fixed LCG, so the test is repeatable.
  const random = (): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const below = [0, 0, 0, 0];
  for (let i = 0; i < 4000; i++) {
    const d = new Backoff({ initialMs: 1000, maxMs: 1000, random }).next();
    below[Math.min(3, Math.floor(d / 250))]! += 1;
  }
  for (const n of below) t.ok(n > 800 && n < 1200, `each quarter of the window holds about a quarter of the delays (${below.join(', ')})`);
});
