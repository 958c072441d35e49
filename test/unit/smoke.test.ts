import t from 'tap';
import { Backoff } from '../../core/backoff.ts';

void t.test('Backoff.next with fixed randomness grows to its ceiling', async (t) => {
  const b = new Backoff({ initialMs: 100, maxMs: 1000, random: () => 1 });
  t.same([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 800, 1000]);
  b.reset();
  t.equal(b.next(), 100);
});
