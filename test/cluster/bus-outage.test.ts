import { testClient } from '../helpers/access-clients.ts';
import t, { type Test } from 'tap';
import { hashPassword } from '../../server/passwords.ts';
import type { AccessServer } from '../../server/access-server.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster, type TestCluster } from '../helpers/cluster.ts';

const log = silentLogger();
const PASSWORDS: Record<string, string> = { alice: 'alice-pw-1', bob: 'bob-pw-2' };
// Short leases so the test takes seconds; the rules are the same as with 2 s / 10 s.
const liveness = { renewMs: 300, ttlMs: 1500 };
const pg = await startPostgres(t);
const nats = await startNats(t);

async function cluster(t: Test): Promise<TestCluster> {
  const c = await startCluster(t, pg, nats, 2, { log, liveness });
  for (const [name, pw] of Object.entries(PASSWORDS)) await c.nodes[0]!.store.createAccount(name, name, await hashPassword(pw));
  await c.nodes[0]!.store.addBuddies('alice', 'bob');
  return c;
}

/** A phone that knows every node (`access.fallbackUrls`), so it moves when its node fences itself. */
function client(t: Test, nodes: AccessServer[], account: string, endpointId: string): AccessClient {
  const [first, ...rest] = nodes.map((n) => n.url);
  return testClient(t, { url: first ?? '', publicKeyRaw: nodes[0]!.publicKeyRaw }, account, endpointId, { fallbackUrls: rest, kind: 'phone', label: endpointId, backoff: { initialMs: 100, maxMs: 1000 } });
}

async function until(what: string, cond: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

void t.test('NATS stopped for a few seconds: no node fences, nothing is reaped, presence converges once it is back', async (t) => {
  const { nodes } = await cluster(t);
  const [n0, n1] = nodes as [AccessServer, AccessServer];
  const b1 = client(t, [n0], 'bob', 'b1');
  await b1.start();
  const a1 = client(t, [n1], 'alice', 'a1');
  await a1.start();
  const a2 = client(t, [n1], 'alice', 'a2');
  await a2.start();
  const drops: boolean[] = [];
  b1.onConnectionChange((up) => drops.push(up));
  a1.onConnectionChange((up) => drops.push(up));
  const seen: EndpointInfo[] = [];
  b1.onPresence((e) => seen.push(e));
  await nats.stop();
  await a2.close(); // its offline note cannot cross the bus now
  await new Promise((r) => setTimeout(r, 4 * liveness.ttlMs));
  t.same(drops, [], 'no socket was closed: no node fenced itself during an outage every node saw');
  await nats.start();
  await until('a2 offline at b1', () => seen.some((e) => e.endpointId === 'a2' && !e.online));
  await until('both nodes ready', () => n0.ready && n1.ready);
  const got: SignalIn[] = [];
  a1.onSignal((s) => got.push(s));
  await until('relay works again', () => {
    void b1.signal('a1', { kind: 'connect', linkId: 'again' }).catch(() => undefined);
    return got.length > 0;
  });
  t.same((await n0.store.onlineForAccount('alice')).map((r) => r.endpointId), ['a1', 'b1'], 'a1 was not reaped');
  t.same(drops, [], 'still nobody dropped');
});

void t.test('a node cut off from the bus while the others are not fences itself, and its endpoints move', async (t) => {
  const { nodes, addNode } = await cluster(t);
  const own = await startNats(t);
  // Node 2 is on a NATS of its own: stopping it cuts node 2 off while nodes 0 and 1 keep theirs.
  const lonely = await addNode({ bus: own.url, nodeId: 'node-lonely' });
  const b1 = client(t, [nodes[0]!], 'bob', 'b1');
  await b1.start();
  const a1 = client(t, [lonely, nodes[1]!], 'alice', 'a1');
  await a1.start();
  t.ok(lonely.registry.get('a1'), 'a1 starts on the lonely node');
  await own.stop();
  await until('the lonely node fences and a1 logs in on node 1', () => nodes[1]!.registry.get('a1') !== undefined && a1.state === 'online');
  t.equal(lonely.registry.get('a1'), undefined, 'the fenced node let go');
  t.notOk(lonely.ready, 'the fenced node is not ready');
  const got: SignalIn[] = [];
  a1.onSignal((s) => got.push(s));
  await b1.signal('a1', { kind: 'connect', linkId: 'moved' });
  await until('signal at the moved a1', () => got.length === 1);
  t.pass('a1 reachable on its new node');
});
