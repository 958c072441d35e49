import t from 'tap';
import { LoginGate, type LoginGateOptions } from '../../server/login-gate.ts';

const flush = (): Promise<void> => new Promise((r) => setImmediate(r));

/** Work that ends when the test says. */
function pending(): { work: () => Promise<string>; end: () => void; started: boolean } {
  let end = (): void => undefined;
  const p = { started: false, end: () => end(), work: () => new Promise<string>((r) => ((p.started = true), (end = () => r('done')))) };
  return p;
}

/** `busy`: the event loop's busy ms; when not given, the loop is busy all the time. Slots are asked for on the dot unless `returnAheadMs` is given. */
const gate = (opts: LoginGateOptions, clock: { ms: number; busy?: number } = { ms: 0 }): LoginGate =>
  new LoginGate({ maxWaitMs: 5000, returnAheadMs: 0, now: () => clock.ms, busyMs: () => clock.busy ?? clock.ms, random: () => 0, ...opts });

/** `count` logins in progress at once that end together after `ms` of clock and `busy` ms of the loop. */
async function togetherFor(g: LoginGate, clock: { ms: number; busy: number }, count: number, ms: number, busy: number): Promise<void> {
  const works = Array.from({ length: count }, () => pending());
  const runs = works.map((w) => g.run('resumeProof', w.work));
  await flush();
  clock.ms += ms;
  clock.busy += busy;
  for (const w of works) w.end();
  await Promise.all(runs);
}

void t.test('LoginGate.run keeps at most concurrency logins in progress and starts the waiting ones in order', async (t) => {
  const g = gate({ concurrency: 2 });
  const works = [pending(), pending(), pending(), pending()];
  const all = works.map((w) => g.run('resumeProof', w.work));
  await flush();
  t.same(works.map((w) => w.started), [true, true, false, false]);
  works[1]!.end();
  await flush();
  t.same(works.map((w) => w.started), [true, true, true, false], 'the next in line takes the freed slot');
  for (const w of works) w.end();
  await flush();
  t.equal(works[3]!.started, true);
  for (const w of works) w.end();
  t.same(await Promise.all(all), ['done', 'done', 'done', 'done']);
});

void t.test('LoginGate.run beyond its queue refuses RATE_LIMITED with a retry-after, before the work starts', async (t) => {
  const g = gate({ concurrency: 1, queue: 1 });
  const [a, b, c] = [pending(), pending(), pending()];
  const first = g.run('resumeProof', a.work);
  const second = g.run('resumeProof', b.work);
  const refused = await g.run('resumeProof', c.work).catch((e: unknown) => e);
  // Nothing completed yet: one login per 100 ms a slot is assumed, so the two in hand take 200 ms.
  t.match(refused, { code: 'RATE_LIMITED', message: /^server busy with logins \(1 in progress, 1 waiting, none longer than 5 s\); retry after 1 s$/, retryAfterMs: 200 });
  t.equal(c.started, false);
  t.equal(g.refusedBusy, 1);
  await flush();
  a.end();
  await flush();
  b.end();
  t.same([await first, await second], ['done', 'done']);
});

void t.test('LoginGate.run refusing while busy asks each refused login to come back once the backlog is through at the pace the node can work (logins per busy ms of its event loop), a slot after the one before (A17, issue 16)', async (t) => {
  const clock = { ms: 0, busy: 0 };
  const g = gate({ concurrency: 2, maxWaitMs: 1000 }, clock);
  // Ten logins in the first second, 10 ms of work each: the loop was busy 100 ms of it.
  for (let i = 0; i < 10; i++) {
    clock.ms = i * 100;
    await g.run('resumeProof', async () => {
      clock.ms += 10;
      clock.busy += 10;
      return 'quick';
    });
  }
  clock.ms = 1000;
  const works = [pending(), pending(), pending(), pending(), pending()];
  const all = works.map((w) => g.run('resumeProof', w.work));
  clock.ms = 2000;
  const asked: unknown[] = [];
  for (let i = 0; i < 3; i++) asked.push(await g.run('resumeProof', async () => 'late').catch((e: unknown) => (e as { retryAfterMs?: number }).retryAfterMs));
  // 9 completed after the first in 90 busy ms: 100 a second, not the 5 a second they came in at.
  // 2 in progress and 3 waiting: 50 ms; then one slot (10 ms) later each.
  t.same(asked, [50, 60, 70]);
  await flush();
  for (const w of works) w.end();
  await flush();
  for (const w of works) w.end();
  await flush();
  for (const w of works) w.end();
  t.same(await Promise.all(all), ['done', 'done', 'done', 'done', 'done']);
});

void t.test('LoginGate.run with logins that wait on the store (long work, an idle loop) paces refused logins by the slots over the work\'s duration (A17, issue 16)', async (t) => {
  const clock = { ms: 0, busy: 0 };
  const g = gate({ concurrency: 2, maxWaitMs: 1000 }, clock);
  // Ten logins of 500 ms each, two at a time, with 1 ms of the loop each: the store is the bound.
  for (let i = 0; i < 5; i++) await togetherFor(g, clock, 2, 500, 2);
  const works = [pending(), pending(), pending()];
  const all = works.map((w) => g.run('resumeProof', w.work));
  clock.ms += 1000;
  const refused = await g.run('resumeProof', async () => 'late').catch((e: unknown) => e);
  // Two slots over 500 ms: 4 a second. 2 in progress and 1 waiting: 750 ms.
  t.match(refused, { code: 'RATE_LIMITED', retryAfterMs: 750 });
  await flush();
  for (const w of works) w.end();
  await flush();
  for (const w of works) w.end();
  t.equal((await Promise.all(all)).length, 3);
});

void t.test('LoginGate.run paces refused logins by the work\'s usual duration, not by a few slow logins among many quick ones (A17, issue 16)', async (t) => {
  const clock = { ms: 0, busy: 0 };
  const g = gate({ concurrency: 2, queue: 0 }, clock);
  // Eighteen logins of 10 ms, then two that took 2 s (the cores were busy elsewhere meanwhile).
  for (let i = 0; i < 18; i++) {
    await flush(); // each in a turn of its own (the gate gives a turn 50 ms of logins)
    await g.run('resumeProof', async () => {
      clock.ms += 10;
      clock.busy += 1;
      return 'quick';
    });
  }
  await flush();
  await togetherFor(g, clock, 2, 2000, 2);
  const blockers = [pending(), pending()];
  const blocked = blockers.map((w) => g.run('resumeProof', w.work));
  const refused = await g.run('resumeProof', async () => 'late').catch((e: unknown) => e);
  // Two slots at 10 ms a login: the two in progress are through in 10 ms (by the mean, 209 ms).
  t.match(refused, { code: 'RATE_LIMITED', retryAfterMs: 10 });
  await flush();
  for (const w of blockers) w.end();
  t.same(await Promise.all(blocked), ['done', 'done']);
});

void t.test('LoginGate.run counts a refused login\'s slot from the slots still ahead at the pace the node works now, not after slots given when it measured slower (A17, issue 16)', async (t) => {
  const clock = { ms: 0, busy: 0 };
  const g = gate({ concurrency: 1, queue: 0 }, clock);
  const quick = async (): Promise<string> => {
    clock.ms += 1;
    clock.busy += 1;
    return 'quick';
  };
  const first = pending();
  const firstRun = g.run('resumeProof', first.work);
  const asked = async (): Promise<unknown> => await g.run('resumeProof', quick).catch((e: unknown) => (e as { retryAfterMs?: number }).retryAfterMs);
  // Nothing completed: one per 100 ms assumed, so ten refused get slots up to a second away.
  const early: unknown[] = [];
  for (let i = 0; i < 10; i++) early.push(await asked());
  t.same(early, [100, 200, 300, 400, 500, 600, 700, 800, 900, 1000]);
  clock.ms += 1;
  clock.busy += 1;
  first.end();
  await firstRun;
  // Ten logins of 1 ms each: a thousand a second.
  for (let i = 0; i < 10; i++) t.equal(await g.run('resumeProof', quick), 'quick');
  const blocker = pending();
  const blocked = g.run('resumeProof', blocker.work);
  // The one in progress (1 ms) and the ten still to come back (10 ms) at that pace: 11 ms, not after the slot a second away.
  t.equal(await asked(), 11);
  await flush();
  blocker.end();
  t.equal(await blocked, 'done');
});

void t.test('LoginGate.run by default asks a refused login back while half of maxWaitMs of logins are still ahead of its slot, to wait for it in the queue (A17, issue 16)', async (t) => {
  const clock = { ms: 0 };
  const g = new LoginGate({ concurrency: 1, queue: 0, maxWaitMs: 400, now: () => clock.ms, busyMs: () => clock.ms, random: () => 0 });
  const running = pending();
  const first = g.run('resumeProof', running.work);
  // Nothing completed: one per 100 ms. Slots at 100, 200, 300, 400 ms, asked 200 ms ahead of each:
  // a restart storm idled where the node measured its pace low and the crowd came on the dot.
  const asked: unknown[] = [];
  for (let i = 0; i < 4; i++) asked.push(await g.run('resumeProof', async () => 'late').catch((e: unknown) => (e as { retryAfterMs?: number }).retryAfterMs));
  t.same(asked, [0, 0, 100, 200]);
  await flush();
  running.end();
  t.equal(await first, 'done');
});

void t.test('LoginGate.run refusing more than the node gets through in 10 s spreads the rest up to 10 s, not all at it (A17, issue 16)', async (t) => {
  const clock = { ms: 0 };
  const draws = [0, 0.5, 1];
  let d = 0;
  const g = gate({ concurrency: 1, maxWaitMs: 1000, random: () => draws[d++ % 3]! }, clock);
  const running = pending();
  const first = g.run('resumeProof', running.work);
  const queued = g.run('resumeProof', async () => 'queued');
  clock.ms = 1000;
  // Nothing completed: one per 100 ms, so slots run out after 99 refusals (10 s).
  const asked: unknown[] = [];
  for (let i = 0; i < 103; i++) asked.push(await g.run('resumeProof', async () => 'late').catch((e: unknown) => (e as { retryAfterMs?: number }).retryAfterMs));
  t.same(asked.slice(0, 2), [200, 800], 'the two in hand take 200 ms, then a slot every 100 ms');
  t.same(asked.slice(98), [11000, 200, 5600, 11000, 200], 'past 10 s of slots: from the drain to 10 s at random, not to 30 s');
  await flush();
  running.end();
  t.same([await first, await queued], ['done', 'queued']);
});

void t.test('LoginGate.run refuses a newcomer that would wait maxWaitMs at the rate logins complete, though nobody has waited yet (issue 16)', async (t) => {
  const clock = { ms: 0 };
  const g = gate({ concurrency: 2, maxWaitMs: 1000 }, clock);
  // Ten logins in a second: nine after the first, in 1,000 ms of a loop busy all along.
  for (let i = 0; i < 10; i++) {
    clock.ms = i * 100;
    await g.run('resumeProof', async () => 'quick');
  }
  await flush();
  clock.ms = 1000;
  const works = Array.from({ length: 10 }, () => pending());
  const all = works.map((w) => g.run('resumeProof', w.work));
  // 2 in progress and 8 waiting at 9 a second: the next would start a second from now, when its client is about to give up.
  await t.rejects(g.run('resumeProof', async () => 'late'), { code: 'RATE_LIMITED', message: /\(2 in progress, 8 waiting, none longer than 1 s\)/ });
  for (let i = 0; i < 6; i++) {
    await flush();
    for (const w of works) w.end();
  }
  t.equal((await Promise.all(all)).length, 10);
});

void t.test('LoginGate.run with logins that never yield (SQLite) runs about 50 ms of them in one turn of the event loop and the rest in later turns (issue 16)', async (t) => {
  const clock = { ms: 0 };
  const g = gate({ concurrency: 4 }, clock);
  let started = 0;
  // Each login takes 10 ms of the loop and awaits nothing that is not already settled.
  const work = async (): Promise<string> => {
    started += 1;
    clock.ms += 10;
    return 'ran';
  };
  const all = Array.from({ length: 20 }, () => g.run('resumeProof', work));
  for (let i = 0; i < 50; i++) await Promise.resolve();
  t.ok(started <= 8, `this turn: 50 ms of logins and at most one more per slot, not all 20 (the loop accepts no connection meanwhile): ${started}`);
  const turns = [started];
  while (started < 20 && turns.length < 20) {
    await flush();
    turns.push(started);
  }
  t.ok(turns.length >= 3 && turns.every((n, i) => i === 0 || n - turns[i - 1]! <= 8), `the rest started over later turns, as many each (started by each turn: ${turns.join(', ')})`);
  t.same(new Set(await Promise.all(all)), new Set(['ran']));
});

void t.test('LoginGate.run while the longest-waiting login has waited maxWaitMs refuses newcomers, and takes them again once the wait is short', async (t) => {
  const clock = { ms: 0 };
  const g = gate({ concurrency: 1 }, clock);
  const running = pending();
  const first = g.run('login', running.work);
  const queued = g.run('login', async () => 'queued');
  clock.ms = 4999;
  const inTime = g.run('login', async () => 'in time');
  clock.ms = 5000;
  await t.rejects(g.run('login', async () => 'late'), { code: 'RATE_LIMITED', message: /none longer than 5 s\); retry after 1 s/, retryAfterMs: 300 });
  await flush();
  running.end();
  t.same([await first, await queued, await inTime], ['done', 'queued', 'in time']);
  t.equal(await g.run('login', async () => 'after'), 'after', 'nobody waits now');
  t.equal(g.refusedBusy, 1);
});

void t.test('LoginGate.run for a client that gave up while it waited rejects CLOSED without working, and hands the slot on', async (t) => {
  const g = gate({ concurrency: 1 });
  const running = pending();
  const first = g.run('login', running.work);
  let open = true;
  let worked = false;
  const waited = g.run('resumeProof', async () => void (worked = true), () => open).catch((e: unknown) => e);
  const next = g.run('resumeProof', async () => 'next');
  open = false;
  await flush();
  running.end();
  t.match(await waited, { code: 'CLOSED', message: /resumeProof: the connection closed while the login waited/ });
  t.equal(worked, false);
  t.same([await first, await next], ['done', 'next']);
});

void t.test('LoginGate.run with failing work rejects with its error and frees the slot', async (t) => {
  const g = gate({ concurrency: 1, queue: 0 });
  await t.rejects(g.run('login', () => Promise.reject(new Error('store down'))), { message: 'store down' });
  t.equal(await g.run('login', async () => 2), 2);
});

void t.test('LoginGate.run while refusing reports at most once a second how many it refused, at what pace and the longest wait asked (for the node log)', async (t) => {
  const clock = { ms: 0 };
  const reports: unknown[] = [];
  const g = gate({ concurrency: 1, queue: 0, onRefusals: (r) => reports.push(r) }, clock);
  const running = pending();
  const first = g.run('resumeProof', running.work);
  const refuse = (): Promise<unknown> => g.run('resumeProof', async () => 'late').catch(() => undefined);
  await refuse();
  clock.ms = 400;
  await refuse();
  await refuse();
  t.same(reports, [{ refused: 1, loginsPerS: 10, inProgress: 1, waiting: 0, maxRetryAfterMs: 100 }], 'the first at once, then none within a second');
  clock.ms = 1_000;
  await refuse();
  t.same(reports[1], { refused: 3, loginsPerS: 10, inProgress: 1, waiting: 0, maxRetryAfterMs: 200 }, 'the three since, the longest wait they asked');
  await flush();
  running.end();
  t.equal(await first, 'done');
});

void t.test('new LoginGate with bounds out of range throws INVALID_CONFIG naming the field', async (t) => {
  t.throws(() => new LoginGate({ concurrency: 0 }), { code: 'INVALID_CONFIG', message: /logins\.concurrency: 0 is not a whole number from 1 to 1024/ });
  t.throws(() => new LoginGate({ queue: -1 }), { code: 'INVALID_CONFIG', message: /logins\.queue: -1/ });
  t.throws(() => new LoginGate({ maxWaitMs: Number.NaN }), { code: 'INVALID_CONFIG', message: /logins\.maxWaitMs: NaN/ });
  t.throws(() => new LoginGate({ maxWaitMs: 1000, returnAheadMs: 1001 }), { code: 'INVALID_CONFIG', message: /logins\.returnAheadMs: 1001 is not a number of ms from 0 to maxWaitMs \(1000\)/ });
});

void t.test('LoginGate.refuseWhileCrowded refuses a password login while every slot is taken and, after that, until the logins refused meanwhile are due back; its own refusals do not prolong that (A11, issue 16)', async (t) => {
  const clock = { ms: 0 };
  const g = gate({ concurrency: 1, queue: 0 }, clock);
  t.equal(g.refuseWhileCrowded(), undefined, 'a free slot and nobody refused: the check runs');
  const first = pending();
  const running = g.run('resumeProof', first.work);
  await flush();
  t.match(g.refuseWhileCrowded(), { code: 'RATE_LIMITED' }, 'every slot taken');
  const refused = await g.run('resumeProof', pending().work).catch((err: { retryAfterMs: number }) => err);
  const dueBack = (refused as { retryAfterMs: number }).retryAfterMs;
  t.ok(dueBack > 0, 'a proof login refused with a wait');
  first.end();
  await running;
  clock.ms = dueBack - 1;
  t.match(g.refuseWhileCrowded(), { code: 'RATE_LIMITED', retryAfterMs: Number, message: /^server busy: logins it turned away are due back within 1 s; retry after \d+ s$/ }, 'a slot is free, but the refused login is not back yet');
  for (let i = 0; i < 10; i++) g.refuseWhileCrowded();
  clock.ms = dueBack;
  t.equal(g.refuseWhileCrowded(), undefined, 'once it is due back, the check runs; the password refusals did not push that on');
});
