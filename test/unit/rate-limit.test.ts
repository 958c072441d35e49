import t from 'tap';
import { LoginRateLimiter } from '../../server/rate-limit.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

void t.test('check after maxFailures failures for a username throws RATE_LIMITED with retry-after', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perUsername: { maxFailures: 3, windowMs: 60_000 } });
  for (let i = 0; i < 3; i++) {
    rl.check('alice', '10.0.0.1');
    rl.recordFailure('alice', '10.0.0.1');
    clock.advance(1000);
  }
  t.throws(() => rl.check('alice', '10.0.0.2'), { code: 'RATE_LIMITED', message: /username "alice"; retry after 57 s/ });
  t.doesNotThrow(() => rl.check('bob', '10.0.0.2'), 'other usernames are not affected');
});

void t.test('check after the window passes allows the username again', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perUsername: { maxFailures: 2, windowMs: 10_000 } });
  rl.recordFailure('alice', 'a');
  rl.recordFailure('alice', 'a');
  t.throws(() => rl.check('alice', 'a'), { code: 'RATE_LIMITED' });
  clock.advance(10_000);
  t.doesNotThrow(() => rl.check('alice', 'a'));
});

void t.test('check after many failures from one address throws RATE_LIMITED naming the address', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perAddress: { maxFailures: 4, windowMs: 60_000 } });
  for (const name of ['a', 'b', 'c', 'd']) rl.recordFailure(name, '192.0.2.7');
  t.throws(() => rl.check('e', '192.0.2.7'), { code: 'RATE_LIMITED', message: /address 192\.0\.2\.7; retry after 60 s/ });
  t.doesNotThrow(() => rl.check('e', '192.0.2.8'));
});

void t.test('recordSuccess clears the username count but not the address count', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({
    clock,
    perUsername: { maxFailures: 2, windowMs: 60_000 },
    perAddress: { maxFailures: 3, windowMs: 60_000 },
  });
  rl.recordFailure('alice', 'x');
  rl.recordFailure('alice', 'x');
  rl.recordSuccess('alice');
  t.doesNotThrow(() => rl.check('alice', 'y'));
  rl.recordFailure('bob', 'x');
  t.throws(() => rl.check('alice', 'x'), { code: 'RATE_LIMITED', message: /address x/ });
});

void t.test('recordFailure beyond maxKeys forgets the least recent keys', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, maxKeys: 2, perUsername: { maxFailures: 1, windowMs: 60_000 } });
  rl.recordFailure('u1', 'a1');
  rl.recordFailure('u2', 'a2');
  rl.recordFailure('u3', 'a3');
  t.doesNotThrow(() => rl.check('u1', 'a1'), 'u1 was forgotten');
  t.throws(() => rl.check('u3', 'a9'), { code: 'RATE_LIMITED' });
});

void t.test('reserve while maxFailures attempts are in flight throws RATE_LIMITED before any ends (issue 12, A11)', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perUsername: { maxFailures: 3, windowMs: 60_000 } });
  const inFlight = [rl.reserve('alice', 'x'), rl.reserve('alice', 'y'), rl.reserve('alice', 'z')];
  t.throws(() => rl.reserve('alice', 'w'), { code: 'RATE_LIMITED', message: /username "alice"/ });
  for (const r of inFlight) r.failed();
  t.throws(() => rl.check('alice', 'w'), { code: 'RATE_LIMITED' }, 'failed attempts stay counted');
});

void t.test('reserve then succeeded takes the attempt back and clears the username count (A11)', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perUsername: { maxFailures: 2, windowMs: 60_000 }, perAddress: { maxFailures: 2, windowMs: 60_000 } });
  rl.reserve('alice', 'x').failed();
  const ok = rl.reserve('alice', 'x');
  t.throws(() => rl.check('bob', 'x'), { code: 'RATE_LIMITED', message: /address x/ }, 'in flight, it counts for the address');
  ok.succeeded();
  ok.failed(); // a second ending is ignored
  t.doesNotThrow(() => rl.check('alice', 'y'));
  t.doesNotThrow(() => rl.check('bob', 'x'), 'the address keeps only its real failure');
});

void t.test('reserve then release counts nothing (server busy, closed) (A11)', async (t) => {
  const clock = new FakeClock();
  const rl = new LoginRateLimiter({ clock, perUsername: { maxFailures: 1, windowMs: 60_000 } });
  const r = rl.reserve('alice', 'x');
  t.throws(() => rl.check('alice', 'x'), { code: 'RATE_LIMITED' });
  r.release();
  t.doesNotThrow(() => rl.check('alice', 'x'));
});
