// Issue 16 item 3: a node fences itself only when it alone is cut off, never because the store
// was out of reach for everyone and it came back to it a moment after the others.
import t, { type Test } from 'tap';
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

/** Moves the fake clock on in 500 ms steps, letting the lease work that each step starts settle. */
async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let i = 0; i < ms / 500; i += 1) {
    clock.advance(500);
    for (let k = 0; k < 20; k += 1) await new Promise((r) => setImmediate(r));
  }
}

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
  const run = (ms: number) => advance(clock, ms);
  await run(4000);
  seenByA.down = seenByB.down = true;
  await run(16_000); // longer than a lease and its slack: every lease lapsed
  seenByA.down = seenByB.down = false;
  seenByB.failNext = 1; // node B's pool reconnects one query later than A's
  await run(6000);
  t.same(fenced, [], 'nobody fenced: the outage was everyone\'s');
});

/** Two nodes on one SQLite store, each with its own bus connection, driven by a fake clock. */
async function pair(t: Test) {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-liveness-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  t.teardown(() => store.close());
  const clock = new FakeClock();
  const fenced: string[] = [];
  const buses = { a: { connected: true }, b: { connected: true } };
  const node = (id: 'a' | 'b') =>
    new NodeLiveness(store, buses[id] as Bus, `node-${id}`, clock, silentLogger(), { fence: (r) => fenced.push(`${id}: ${r}`), reaped: () => {} }, { renewMs: 2000, ttlMs: 10_000 });
  const a = node('a');
  const b = node('b');
  await a.start();
  await b.start();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const run = (ms: number) => advance(clock, ms);
  return { buses, fenced, run };
}

void t.test('issue 16 bus-outage race: after a bus outage every node saw, a node whose bus reconnects a moment after the others\' is not fenced', async (t) => {
  const { buses, fenced, run } = await pair(t);
  await run(4000);
  buses.a.connected = buses.b.connected = false;
  await run(16_000); // every lease lapsed, and the slack after it
  buses.a.connected = true;
  await run(3000); // node A renewed its lease; node B's client is still reconnecting
  buses.b.connected = true;
  await run(4000);
  t.same(fenced, [], 'nobody fenced: node B was late back from everyone\'s outage, not cut off alone');
});

void t.test('a node whose bus stays down after the others came back fences once they held their leases a lease time and two renewals', async (t) => {
  const { buses, fenced, run } = await pair(t);
  await run(4000);
  buses.a.connected = buses.b.connected = false;
  await run(16_000);
  buses.a.connected = true;
  await run(12_000);
  t.same(fenced, [], 'not yet: node A is back for less than a lease time and two renewals');
  await run(4000);
  t.same(fenced, ['b: this node is cut off from the cluster'], 'node B alone is still cut off');
});

void t.test('a node cut off from the bus while the other stays up fences once its lease lapsed with slack', async (t) => {
  const { buses, fenced, run } = await pair(t);
  await run(20_000);
  buses.b.connected = false;
  await run(12_000);
  t.same(fenced, [], 'within a lease time and two renewals');
  await run(4000);
  t.same(fenced, ['b: this node is cut off from the cluster']);
});

void t.test('with the default lease, the others reap a node that died right after renewing within 10 s (issue 16: detect a dead node in ≤ 10 s)', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-liveness-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const store = await openStore({ kind: 'sqlite', dataDir: dir });
  t.teardown(() => store.close());
  const clock = new FakeClock();
  const deadView = { down: false, failNext: 0 };
  let reapedAt: number | undefined;
  const hooks = (onReap: () => void) => ({ fence: () => {}, reaped: onReap });
  const dying = new NodeLiveness(flaky(store, deadView), bus, 'node-dying', clock, silentLogger(), hooks(() => {}));
  const survivor = new NodeLiveness(store, bus, 'node-survivor', clock, silentLogger(), hooks(() => (reapedAt ??= clock.now())));
  const step = () => advance(clock, 500);
  await dying.start();
  await step(); // the survivor's reaper runs 500 ms after each of the dying node's renewals: the worst case but one step
  await survivor.start();
  t.teardown(() => Promise.all([dying.stop(), survivor.stop()]));
  for (let ms = 500; ms < 12_000; ms += 500) await step(); // the survivor is healthy for a whole lease; the dying node renewed just now
  const killedAt = clock.now();
  deadView.down = true; // from here on the dying node renews nothing, as after a SIGKILL
  for (let ms = 0; ms < 20_000 && reapedAt === undefined; ms += 500) await step();
  t.ok(reapedAt !== undefined, 'the dead node was reaped');
  t.ok(reapedAt! - killedAt <= 10_000, `reaped ${reapedAt! - killedAt} ms after its last renewal`);
});
