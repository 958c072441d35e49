import t from 'tap';
import { z } from 'zod';
import { RpcChannel } from '../../core/protocol/rpc.ts';
import { silentLogger } from '../../platform/log.ts';
import { SweepError } from '../../core/errors.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

const catalogue = {
  requests: {
    add: { body: z.strictObject({ a: z.number(), b: z.number() }), result: z.strictObject({ sum: z.number() }) },
    fail: { body: z.strictObject({}), result: z.strictObject({}) },
  },
  notes: { tick: z.strictObject({ n: z.number() }) },
};

function pair(clock = new FakeClock()) {
  const log = silentLogger();
  const bad: SweepError[] = [];
  // Delivery is asynchronous, like a data channel.
  const a: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log, clock, send: (m) => setImmediate(() => b.receive(m)) });
  const b: RpcChannel<typeof catalogue> = new RpcChannel({
    catalogue,
    log,
    clock,
    send: (m) => setImmediate(() => a.receive(m)),
    onBadMessage: (e) => bad.push(e),
  });
  return { a, b, bad, clock };
}

void t.test('request with a valid body resolves with the handler result', async (t) => {
  const { a, b } = pair();
  b.handle('add', ({ a: x, b: y }) => ({ sum: x + y }));
  t.same(await a.request('add', { a: 2, b: 3 }), { sum: 5 });
});

void t.test('request with a bad body is refused INVALID_MESSAGE naming the field (M2)', async (t) => {
  const { a, b } = pair();
  b.handle('add', ({ a: x, b: y }) => ({ sum: x + y }));
  const err = await a.request('add', { a: 2, b: 'x' } as never).catch((e: unknown) => e);
  t.ok(err instanceof SweepError);
  t.equal((err as SweepError).code, 'INVALID_MESSAGE');
  t.match((err as SweepError).message, /add: b: /);
});

void t.test('handler that throws a SweepError reaches the requester with its code', async (t) => {
  const { a, b } = pair();
  b.handle('fail', () => {
    throw new SweepError('BUSY', 'not now');
  });
  const err = (await a.request('fail', {}).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'BUSY');
  t.match(err.message, /fail: not now/);
  t.match(err.stack ?? '', /rpc\.test\.ts/, 'the caller stack is kept');
});

void t.test('handler that refuses with a retryAfterMs reaches the requester with it only when the channel sends it (A17)', async (t) => {
  const sent: string[] = [];
  const wired = (sendRetryAfter: boolean): RpcChannel<typeof catalogue> => {
    const log = silentLogger();
    const a: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log, send: (m) => setImmediate(() => b.receive(m)) });
    const b: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log, sendRetryAfter, send: (m) => (sent.push(m), setImmediate(() => a.receive(m))) });
    b.handle('fail', () => {
      throw new SweepError('RATE_LIMITED', 'server busy; retry after 2 s', { retryAfterMs: 1500 });
    });
    return a;
  };
  t.match(await wired(true).request('fail', {}).catch((e: unknown) => e), { code: 'RATE_LIMITED', message: 'fail: server busy; retry after 2 s', retryAfterMs: 1500 });
  const older = await wired(false).request('fail', {}).catch((e: unknown) => e);
  t.match(older, { code: 'RATE_LIMITED', retryAfterMs: undefined }, 'a peer that did not ask gets the message only');
  t.notMatch(sent[1], /retryAfterMs/);
});

void t.test('request with no answer rejects TIMEOUT when the clock passes its deadline', async (t) => {
  const clock = new FakeClock();
  const a = new RpcChannel({ catalogue, log: silentLogger(), clock, send: () => undefined, timeoutMs: 100 });
  const p = a.request('add', { a: 1, b: 1 });
  clock.advance(99);
  clock.advance(1);
  const err = (await p.catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'TIMEOUT');
  t.equal(clock.pending(), 0);
});

void t.test('close with pending requests rejects them all CLOSED and clears timers (M3)', async (t) => {
  const clock = new FakeClock();
  const a = new RpcChannel({ catalogue, log: silentLogger(), clock, send: () => undefined });
  const p1 = a.request('add', { a: 1, b: 1 });
  const p2 = a.request('fail', {});
  a.close('bye');
  a.close('again');
  const errs = (await Promise.all([p1.catch((e: unknown) => e), p2.catch((e: unknown) => e)])) as SweepError[];
  t.same(errs.map((e) => e.code), ['CLOSED', 'CLOSED']);
  t.equal(clock.pending(), 0);
  t.equal(((await a.request('fail', {}).catch((e: unknown) => e)) as SweepError).code, 'CLOSED');
});

void t.test('receive with garbage, oversize or unknown types drops it and reports it', async (t) => {
  const { a, b, bad } = pair();
  b.receive('not json');
  b.receive('x'.repeat(17 * 1024));
  b.receive(JSON.stringify({ kind: 'note', type: 'nope', body: {} }));
  b.receive(JSON.stringify({ kind: 'req', id: 'a b', type: 'add', body: {} }));
  t.same(bad.map((e) => e.code), ['INVALID_MESSAGE', 'TOO_LARGE', 'UNKNOWN_TYPE', 'INVALID_MESSAGE']);
  const err = (await a.request('nope' as 'add', { a: 1, b: 1 }).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'UNKNOWN_TYPE');
});

void t.test('notification after a response is delivered after the response continuation (M3)', async (t) => {
  const { a, b } = pair();
  const order: string[] = [];
  a.onNote('tick', () => order.push('note'));
  b.handle('add', ({ a: x, b: y }) => {
    setImmediate(() => b.notify('tick', { n: 1 }));
    return { sum: x + y };
  });
  await a.request('add', { a: 1, b: 2 });
  order.push('response');
  await new Promise((r) => setTimeout(r, 20));
  t.same(order, ['response', 'note']);
});

void t.test('admit that throws refuses the request before the handler runs', async (t) => {
  let ran = false;
  const log = silentLogger();
  const a: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log, send: (m) => setImmediate(() => b.receive(m)) });
  const b: RpcChannel<typeof catalogue> = new RpcChannel({
    catalogue,
    log,
    send: (m) => setImmediate(() => a.receive(m)),
    admit: () => {
      throw new SweepError('UNAUTHORIZED', 'hello first');
    },
  });
  b.handle('add', () => {
    ran = true;
    return { sum: 0 };
  });
  const err = (await a.request('add', { a: 1, b: 1 }).catch((e: unknown) => e)) as SweepError;
  t.equal(err.code, 'UNAUTHORIZED');
  t.notOk(ran);
  a.close();
  b.close();
});

void t.test('request named like an Object.prototype member is refused UNKNOWN_TYPE, not INTERNAL (issue 12 item 10, M2)', async (t) => {
  const { a, b, bad } = pair();
  b.handle('add', ({ a: x, b: y }) => ({ sum: x + y }));
  for (const type of ['constructor', 'toString', 'valueOf']) {
    const err = (await a.request(type as 'add', { a: 1, b: 1 }).catch((e: unknown) => e)) as SweepError;
    t.equal(err.code, 'UNKNOWN_TYPE', `${type} is unknown`);
  }
  b.receive(JSON.stringify({ kind: 'note', type: 'constructor', body: {} }));
  t.equal(bad.at(-1)?.code, 'UNKNOWN_TYPE', 'a note named constructor is unknown too');
  t.same(await a.request('add', { a: 2, b: 2 }), { sum: 4 }, 'the channel still works');
});

void t.test('a handler that fails with an error of no Sweep code answers INTERNAL without its message, which goes to the log instead', async (t) => {
  const logged: unknown[] = [];
  const log = silentLogger();
  log.error = ((obj: unknown) => void logged.push(obj));
  const b: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log, send: (m) => setImmediate(() => a.receive(m)) });
  const a: RpcChannel<typeof catalogue> = new RpcChannel({ catalogue, log: silentLogger(), send: (m) => setImmediate(() => b.receive(m)) });
  b.handle('fail', () => {
    throw new Error('connect ECONNREFUSED /run/postgresql/.s.PGSQL.5432');
  });
  const err = await a.request('fail', {}).catch((e: SweepError) => e);
  t.match(err, { code: 'INTERNAL', message: 'fail: internal error (the details are in the answering side\'s log)' });
  t.notMatch(err.message, /ECONNREFUSED|postgresql/, 'no driver message, path or host crosses the wire');
  t.match(logged, [{ type: 'fail', err: { message: /ECONNREFUSED/ } }], 'the answering side logs it');
  b.handle('fail', () => {
    throw new SweepError('BUSY', 'fail: the store is not reachable');
  });
  t.match(await a.request('fail', {}).catch((e: unknown) => e), { code: 'BUSY', message: 'fail: the store is not reachable' }, 'a Sweep error keeps its code and message');
});
