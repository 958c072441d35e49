import t, { type Test } from 'tap';
import { hashPassword } from '../../server/passwords.ts';
import type { AccessServer } from '../../server/access-server.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { PASSWORDS, onlineClient, testClient } from '../helpers/access-clients.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster, type TestCluster } from '../helpers/cluster.ts';

const log = silentLogger();
const pg = await startPostgres(t);
const nats = await startNats(t);

/** Three nodes; alice and bob are buddies, carol a stranger to both. */
async function threeNodes(t: Test): Promise<TestCluster> {
  const cluster = await startCluster(t, pg, nats, 3, { log });
  const store = cluster.nodes[0]!.store;
  for (const [name, pw] of Object.entries(PASSWORDS)) await store.createAccount(name, name.toUpperCase(), await hashPassword(pw));
  await store.addBuddies('alice', 'bob');
  return cluster;
}


async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

void t.test('signal to an endpoint on another node is relayed there; to a stranger FORBIDDEN, to an offline endpoint OFFLINE (A5)', async (t) => {
  const { nodes } = await threeNodes(t);
  const [n0, n1, n2] = nodes as [AccessServer, AccessServer, AccessServer];
  const a1 = await onlineClient(t, n0, 'alice', 'a1');
  const a2 = await onlineClient(t, n1, 'alice', 'a2');
  const b1 = await onlineClient(t, n2, 'bob', 'b1');
  const c1 = await onlineClient(t, n1, 'carol', 'c1');
  t.ok(n0.registry.get('a1') && n1.registry.get('a2') && n2.registry.get('b1'), 'each endpoint is held by its own node');
  t.notOk(n0.registry.get('a2') ?? n0.registry.get('b1'), 'node 0 holds no other endpoint');
  const got: Record<string, SignalIn[]> = { a2: [], b1: [] };
  a2.onSignal((s) => got.a2!.push(s));
  b1.onSignal((s) => got.b1!.push(s));
  await a1.signal('a2', { kind: 'connect', linkId: 'L1' });
  await a1.signal('b1', { kind: 'offer', linkId: 'L2', sdp: 'v=0' });
  await until('signals', () => got.a2!.length === 1 && got.b1!.length === 1);
  t.same(got.a2, [{ from: 'a1', fromAccount: 'alice', payload: { kind: 'connect', linkId: 'L1' } }]);
  t.same(got.b1, [{ from: 'a1', fromAccount: 'alice', payload: { kind: 'offer', linkId: 'L2', sdp: 'v=0' } }]);
  await t.rejects(a1.signal('c1', { kind: 'connect', linkId: 'L3' }), { code: 'FORBIDDEN', message: /"c1" is neither of account "alice" nor of a buddy/ });
  await t.rejects(c1.signal('b1', { kind: 'connect', linkId: 'L4' }), { code: 'FORBIDDEN' });
  await t.rejects(a1.signal('ghost', { kind: 'connect', linkId: 'L5' }), { code: 'OFFLINE', message: /"ghost" is not online/ });
  await a2.close();
  await t.rejects(a1.signal('a2', { kind: 'connect', linkId: 'L6' }), { code: 'OFFLINE' }, 'logged out on its node: no responders');
});

void t.test('signals from one endpoint to another on another node arrive in the order sent (A5)', async (t) => {
  const { nodes } = await threeNodes(t);
  const a1 = await onlineClient(t, nodes[0]!, 'alice', 'a1');
  const b1 = await onlineClient(t, nodes[2]!, 'bob', 'b1');
  const got: string[] = [];
  b1.onSignal((s) => got.push(s.payload.linkId));
  await Promise.all(Array.from({ length: 50 }, (_, i) => a1.signal('b1', { kind: 'connect', linkId: `L${i}` })));
  await until('50 signals', () => got.length === 50);
  t.same(got, Array.from({ length: 50 }, (_, i) => `L${i}`));
});

void t.test('login lists siblings and buddies on other nodes, and presence of a login and logout reaches them across nodes (A4)', async (t) => {
  const { nodes } = await threeNodes(t);
  const a1 = await onlineClient(t, nodes[0]!, 'alice', 'a1');
  const b1 = await onlineClient(t, nodes[1]!, 'bob', 'b1');
  const c1 = await onlineClient(t, nodes[1]!, 'carol', 'c1');
  const seen = { a1: [] as EndpointInfo[], b1: [] as EndpointInfo[], c1: [] as EndpointInfo[] };
  a1.onPresence((e) => seen.a1.push(e));
  b1.onPresence((e) => seen.b1.push(e));
  c1.onPresence((e) => seen.c1.push(e));
  const a2 = testClient(t, nodes[2]!, 'alice', 'a2', { kind: 'phone', label: 'Alice phone' });
  const result = await a2.start();
  t.same(result.profile.siblings.map((e) => e.endpointId), ['a1']);
  t.same(result.profile.buddies, [{ account: 'bob', displayName: 'BOB', endpoints: [{ endpointId: 'b1', account: 'bob', kind: 'deskphone', label: 'b1 label', online: true }] }]);
  await until('a2 online at a1 and b1', () => seen.a1.length === 1 && seen.b1.length === 1);
  t.match(seen.a1[0], { endpointId: 'a2', kind: 'phone', online: true });
  t.same(b1.profile?.buddies[0]?.endpoints.map((e) => e.endpointId).sort(), ['a1', 'a2']);
  await a2.close();
  await until('a2 offline at a1 and b1', () => seen.a1.length === 2 && seen.b1.length === 2);
  t.match(seen.b1[1], { endpointId: 'a2', online: false });
  t.same(seen.c1, [], 'a stranger hears nothing');
  const again = testClient(t, nodes[0]!, 'alice', 'a3');
  t.same((await again.start()).profile.siblings.map((e) => e.endpointId), ['a1'], 'the store no longer lists the one that left');
});

void t.test('a login of the same endpoint on another node kicks the older one; signals then reach the newer (A6)', async (t) => {
  const { nodes } = await threeNodes(t);
  const keys = fakeEndpointKeys();
  const old = testClient(t, nodes[0]!, 'alice', 'a1', keys);
  await old.start();
  const kicked = new Promise<string>((resolve) => old.onKicked(resolve));
  const b1 = await onlineClient(t, nodes[2]!, 'bob', 'b1');
  const seen: EndpointInfo[] = [];
  b1.onPresence((e) => seen.push(e));
  const newer = testClient(t, nodes[1]!, 'alice', 'a1', keys);
  await newer.start();
  t.match(await kicked, /replaced by a newer login/);
  await until('node 0 lets go', () => nodes[0]!.registry.get('a1') === undefined);
  const got: SignalIn[] = [];
  newer.onSignal((s) => got.push(s));
  await b1.signal('a1', { kind: 'connect', linkId: 'K' });
  await until('signal at the newer login', () => got.length === 1);
  await new Promise((r) => setTimeout(r, 300));
  t.notOk(seen.some((e) => e.endpointId === 'a1' && !e.online), 'the kicked login announces no offline');
});
