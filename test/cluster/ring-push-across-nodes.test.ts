import t, { type Test } from 'tap';
import { World, LAB_CAST } from '../../lab/world.ts';
import { waitUntil } from '../../lab/story.ts';
import { migrateStore } from '../../server/store/open.ts';
import { createLogger } from '../../platform/log.ts';
import type { PushPayload } from '../../core/protocol/push.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startLocalPushService } from '../helpers/local-push-service.ts';
import { closedPage } from '../helpers/push-page.ts';

/** A16 on a cluster: the follow-up push does not depend on the node that sent the ring push. */
const pg = await startPostgres(t);
const nats = await startNats(t);

async function ringingWithClosedPage(t: Test) {
  const store = { kind: 'postgres' as const, url: await pg.createDatabase(`ringpush${++databases}`) };
  await migrateStore(store);
  const world = await World.start({
    accounts: LAB_CAST.accounts,
    buddies: LAB_CAST.buddies,
    endpoints: LAB_CAST.endpoints.filter((e) => e.id !== 'phone').map((e) => ({ ...e, node: e.id === 'intercom' ? 0 : 1 })),
    log: createLogger({ level: process.env.SWEEP_TEST_LOG ?? 'silent', destination: process.stderr }),
    cluster: { nodes: 2, store, bus: nats.url },
    push: { allowLoopbackHttp: true },
    ringTimeoutMs: 20_000,
  });
  t.teardown(() => world.close());
  const push = await startLocalPushService(t);
  const sub = await closedPage(t, world, push, 'alice-page');
  await world.get('intercom').endpoint.calls.ringAccount('alice', { doorRights: true });
  await waitUntil(() => push.messages(sub.clientHash).length === 1, 8000, 'the ring push (sent by node 0)');
  await waitUntil(() => world.get('handset').endpoint.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
  const followUp = async () => {
    await waitUntil(() => push.messages(sub.clientHash).length === 2, 15_000, 'the follow-up push (sent by node 1)').catch(() => undefined);
    return { payloads: push.messages(sub.clientHash).map((m) => JSON.parse(m) as PushPayload), topics: push.seen.map((s) => s.topic) };
  };
  return { world, followUp };
}
let databases = 0;

void t.test('the node that pushed the ring goes away mid-ring: the intercom moves to another node and the answer still replaces the closed page\'s notification (A16)', async (t) => {
  const { world, followUp } = await ringingWithClosedPage(t);
  await world.servers[0]!.close();
  await waitUntil(() => world.servers[1]!.registry.get('intercom') !== undefined, 15_000, 'the intercom logged in on node 1');
  await world.get('handset').endpoint.calls.answer();
  const { payloads, topics } = await followUp();
  t.match(payloads, [{ state: 'ringing' }, { state: 'answered', body: 'Answered on Desk handset' }], 'the closed phone stops ringing');
  t.equal(topics[1], topics[0], 'under the same topic: it replaces the ring');
});

void t.test('answered while the intercom has no access server (its node just went): the follow-up goes once it is logged in again (A16)', async (t) => {
  const { world, followUp } = await ringingWithClosedPage(t);
  await world.servers[0]!.close();
  await world.get('handset').endpoint.calls.answer();
  const { payloads } = await followUp();
  t.match(payloads, [{ state: 'ringing' }, { state: 'answered', body: 'Answered on Desk handset' }], 'the closed phone stops ringing');
});
