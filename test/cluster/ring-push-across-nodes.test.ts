import t from 'tap';
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

void t.test('the node that pushed the ring goes away mid-ring: the intercom moves to another node and the answer still replaces the closed page\'s notification (A16)', async (t) => {
  const store = { kind: 'postgres' as const, url: await pg.createDatabase('ringpush') };
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
  const intercom = world.get('intercom').endpoint;
  const handset = world.get('handset').endpoint;
  await intercom.calls.ringAccount('alice', { doorRights: true });
  await waitUntil(() => push.messages(sub.clientHash).length === 1, 8000, 'the ring push (sent by node 0)');
  await waitUntil(() => handset.calls.snapshot()?.state === 'ringing', 8000, 'the handset rings');
  await world.servers[0]!.close();
  await waitUntil(() => world.servers[1]!.registry.get('intercom') !== undefined, 15_000, 'the intercom logged in on node 1');
  await handset.calls.answer();
  await waitUntil(() => push.messages(sub.clientHash).length === 2, 8000, 'the follow-up push (sent by node 1)').catch(() => undefined);
  const payloads = push.messages(sub.clientHash).map((m) => JSON.parse(m) as PushPayload);
  t.match(payloads, [{ state: 'ringing' }, { state: 'answered', body: 'Answered on Desk handset' }], 'the closed phone stops ringing');
  t.equal(push.seen[1]?.topic, push.seen[0]?.topic, 'under the same topic: it replaces the ring');
});
