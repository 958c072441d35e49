// Issue 16 item 3: a node fences itself only when it alone is cut off, never because the store
// was out of reach for everyone and it came back to it a moment after the others.
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeLiveness } from '../../server/node-liveness.ts';
import { openStore } from '../../server/store/open.ts';
import type { AccountStore } from '../../server/store.ts';
import type { Bus } from '../../server/bus/bus.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeClock } from '../helpers/fake-clock.ts';

/** The store as one node sees it: out of reach while `down`, and `failNext` more lease renewals after. */
function flaky(store: AccountStore, state: { down: boolean; failNext: number }): AccountStore {
  const gate = <A extends unknown[], R>(fn: (...a: A) => Promise<R>, renewal = false) => async (...a: A): Promise<R> => {
    if (state.down) throw new Error('connection refused');
    if (renewal && state.failNext > 0) {
      state.failNext -= 1;
      throw new Error('Connection terminated unexpectedly');
    }
    return fn(...a);
  };
  return Object.assign(Object.create(store) as AccountStore, {
    renewLease: gate(store.renewLease.bind(store), true),
    countFreshLeases: gate(store.countFreshLeases.bind(store)),
    reapExpiredNodes: gate(store.reapExpiredNodes.bind(store)),
  });
}

const bus = { connected: true } as Bus;

void t.test('after a store outage every node saw, a node whose first renewal fails once more is not fenced: it is late, not cut off', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-liveness-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  t.teardown(() => store.close());
  const clock = new FakeClock();
  const seenByA = { down: false, failNext: 0 };
  const seenByB = { down: false, failNext: 0 };
  const fenced: string[] = [];
  const node = (id: string, view: { down: boolean; failNext: number }) =>
    new NodeLiveness(flaky(store, view), bus, id, clock, silentLogger(), { fence: (r) => fenced.push(`${id}: ${r}`), reaped: () => {} }, { renewMs: 2000, ttlMs: 10_000 });
  const a = node('node-a', seenByA);
  const b = node('node-b', seenByB);
  await a.start();
  await b.start();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const run = async (ms: number) => {
    for (let i = 0; i < ms / 500; i += 1) {
      clock.advance(500);
      for (let k = 0; k < 20; k += 1) await new Promise((r) => setImmediate(r));
    }
  };
  await run(4000);
  seenByA.down = seenByB.down = true;
  await run(16_000); // longer than a lease and its slack: every lease lapsed
  seenByA.down = seenByB.down = false;
  seenByB.failNext = 1; // node B's pool reconnects one query later than A's
  await run(6000);
  t.same(fenced, [], 'nobody fenced: the outage was everyone\'s');
});
