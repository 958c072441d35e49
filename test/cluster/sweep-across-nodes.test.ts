import t, { type Test } from 'tap';
import { performance } from 'node:perf_hooks';
import { World, LAB_CAST } from '../../lab/world.ts';
import { pullSweep, pushSweep, waitForWarmLinks, waitUntil } from '../../lab/story.ts';
import { migrateStore } from '../../server/store/open.ts';
import { createLogger } from '../../platform/log.ts';
import { inCall, sleep, states } from '../helpers/world.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';

const ALL = ['intercom', 'handset', 'phone'];
const TONE = { intercom: 330, handset: 550, phone: 770 } as const;
const pg = await startPostgres(t);
const nats = await startNats(t);

/** The lab cast on three nodes: intercom on node 0, handset on node 1, phone on node 2. */
async function clusterWorld(t: Test): Promise<World> {
  const store = { kind: 'postgres' as const, url: await pg.createDatabase('world') };
  await migrateStore(store);
  const world = await World.start({
    accounts: LAB_CAST.accounts,
    buddies: LAB_CAST.buddies,
    endpoints: LAB_CAST.endpoints.map((e, i) => ({ ...e, node: i })),
    log: createLogger({ level: process.env.SWEEP_TEST_LOG ?? 'silent', destination: process.stderr }),
    sweepTimeoutMs: 3000,
    cluster: { nodes: 3, store, bus: nats.url },
  });
  t.teardown(() => world.close());
  await waitForWarmLinks(world, [['handset', 'phone']]);
  return world;
}

async function hears(world: World, id: string, ms = 300): Promise<number | string | null> {
  const since = performance.now();
  await sleep(ms);
  const hz = world.get(id).sink.frequencyHz(since);
  if (hz === null) return null;
  return Object.values(TONE).find((f) => Math.abs(f - hz) <= 20) ?? `${hz} Hz`;
}

void t.test('pull from the phone on node 2 moves the call from the handset on node 1 to the intercom on node 0 (claim 1 across nodes)', async (t) => {
  const world = await clusterWorld(t);
  t.same(
    ALL.map((id) => world.servers.findIndex((s) => s.registry.get(id) !== undefined)),
    [0, 1, 2],
    'each endpoint is held by its own node, so every link set-up crossed nodes',
  );
  await inCall(world);
  t.equal(await hears(world, 'intercom'), TONE.handset, 'intercom hears the handset before');
  const { finished } = await pullSweep(world, 'phone', 'handset');
  t.equal(finished.outcome, 'completed');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 5000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.phone, 'intercom hears the phone after');
  t.equal(await hears(world, 'phone'), TONE.intercom, 'phone hears the intercom');
});

void t.test('push from the handset on node 1 to the phone on node 2 and back (S10 across nodes)', async (t) => {
  const world = await clusterWorld(t);
  await inCall(world);
  await pushSweep(world, 'handset', 'phone');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ended', 5000, 'handset leg ended');
  t.same(states(world, ALL), { intercom: 'active@phone', handset: 'ended@intercom', phone: 'active@intercom' });
  await waitUntil(() => world.get('handset').endpoint.calls.siblingCallsSnapshot().length > 0, 5000, 'handset knows the phone call');
  await pullSweep(world, 'handset', 'phone');
  await waitUntil(() => world.get('phone').endpoint.calls.snapshot()?.state === 'ended', 5000, 'phone leg ended');
  t.same(states(world, ALL), { intercom: 'active@handset', handset: 'active@intercom', phone: 'ended@intercom' });
  t.equal(await hears(world, 'intercom'), TONE.handset);
});
