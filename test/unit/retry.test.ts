import t from 'tap';
import { retry } from '../../core/retry.ts';
import { SweepError } from '../../core/errors.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const flush = () => new Promise((r) => setImmediate(r));

void t.test('retry with transient failures waits with growing back-off, then resolves', async (t) => {
  const clock = new FakeClock();
  let calls = 0;
  const p = retry(
    async () => {
      calls += 1;
      if (calls < 4) throw new SweepError('OFFLINE', 'server down');
      return 'logged in';
    },
    { clock, log: silentLogger(), what: 'login', initialMs: 100, maxMs: 1000, random: () => 1 },
  );
  await flush();
  t.equal(calls, 1);
  clock.advance(99);
  await flush();
  t.equal(calls, 1, 'not before the first back-off');
  clock.advance(1);
  await flush();
  t.equal(calls, 2);
  clock.advance(200);
  await flush();
  t.equal(calls, 3);
  clock.advance(400);
  t.equal(await p, 'logged in');
  t.equal(clock.pending(), 0);
});

void t.test('retry with a refusal rejects at once with its code', async (t) => {
  const clock = new FakeClock();
  let calls = 0;
  const err = (await retry(
    async () => {
      calls += 1;
      throw new SweepError('UNAUTHORIZED', 'username or password is wrong');
    },
    { clock, log: silentLogger(), what: 'login' },
  ).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'UNAUTHORIZED');
  t.equal(calls, 1);
});

void t.test('retry aborted while waiting rejects CLOSED and leaves no timer', async (t) => {
  const clock = new FakeClock();
  const stop = new AbortController();
  const p = retry(async () => Promise.reject(new SweepError('TIMEOUT', 'slow')), { clock, log: silentLogger(), what: 'login', signal: stop.signal });
  await flush();
  stop.abort();
  const err = (await p.catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'CLOSED');
  t.equal(clock.pending(), 0);
});

void t.test('retry with a retryable predicate waits out what it allows and rejects the rest at once', async (t) => {
  let calls = 0;
  const clock = new FakeClock();
  const p = retry(
    async () => {
      calls += 1;
      throw new SweepError(calls < 3 ? 'BUSY' : 'UNAUTHORIZED', 'no');
    },
    { clock, log: silentLogger(), what: 'login', random: () => 0.5, retryable: (e) => e.code === 'BUSY' },
  ).catch((e: unknown) => e);
  for (let i = 0; i < 10 && calls < 3; i++) {
    await new Promise((r) => setImmediate(r));
    clock.advance(120_000);
  }
  const err = (await p) as SweepError;
  t.equal(err.code, 'UNAUTHORIZED');
  t.equal(calls, 3, 'BUSY twice waited out, then the final refusal');
});
