import t, { type Test } from 'tap';
import { hashPassword } from '../../server/passwords.ts';
import type { AccessServer } from '../../server/access-server.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import { rawAccess, testClient } from '../helpers/access-clients.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster } from '../helpers/cluster.ts';

const log = silentLogger();
const PASSWORDS: Record<string, string> = { alice: 'alice-pw-1', bob: 'bob-pw-2' };
const liveness = { renewMs: 300, ttlMs: 1500 };

/** PostgreSQL, NATS and two nodes with short leases; alice and bob are buddies. */
async function twoNodes(t: Test) {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const { nodes } = await startCluster(t, pg, nats, 2, { log, liveness });
  const [n0, n1] = nodes as [AccessServer, AccessServer];
  for (const [name, pw] of Object.entries(PASSWORDS)) await n0.store.createAccount(name, name, await hashPassword(pw));
  await n0.store.addBuddies('alice', 'bob');
  return { pg, n0, n1 };
}

void t.test('PostgreSQL stopped for 10 s: logged-in endpoints keep relaying, nothing is reaped, a password login is refused BUSY with a clear message', async (t) => {
  const { pg, n0, n1 } = await twoNodes(t);
  const make = (server: AccessServer, account: string, endpointId: string): AccessClient => {
    const c = new AccessClient({ url: server.url, username: account, password: PASSWORDS[account] ?? 'x', endpointId, kind: 'phone', label: endpointId, ...fakeEndpointKeys(), serverPublicKeyRaw: server.publicKeyRaw, log, backoff: { initialMs: 100, maxMs: 1000 }, requestTimeoutMs: 8000 });
    t.teardown(() => c.close());
    return c;
  };
  const b1 = make(n0, 'bob', 'b1');
  await b1.start();
  const a1 = make(n1, 'alice', 'a1');
  await a1.start();
  const drops: boolean[] = [];
  b1.onConnectionChange((up) => drops.push(up));
  a1.onConnectionChange((up) => drops.push(up));
  const got: SignalIn[] = [];
  a1.onSignal((s) => got.push(s));

  await pg.stop();
  const outageEnds = Date.now() + 10_000;
  let sent = 0;
  while (Date.now() < outageEnds) {
    await b1.signal('a1', { kind: 'connect', linkId: `L${sent++}` });
    await new Promise((r) => setTimeout(r, 500));
  }
  t.equal(got.length, sent, `all ${sent} signals relayed while the database was down`);
  const late = make(n0, 'alice', 'a2');
  await t.rejects(late.start(), { code: 'BUSY', message: /account store.* is not reachable; retry in a few seconds/ }, 'a password login says what is wrong');
  const ready = await fetch(`${n0.httpUrl}/health/ready`);
  t.equal(ready.status, 503, 'the node is not ready without its database');
  t.match(await ready.json(), { ready: false, store: false, bus: true });

  await pg.start();
  await new Promise((r) => setTimeout(r, 4 * liveness.ttlMs));
  t.same(drops, [], 'no socket was closed: nobody fenced');
  t.same((await n0.store.onlineForAccount('alice')).map((r) => r.endpointId), ['a1', 'b1'], 'nothing was reaped');
  const again = make(n1, 'alice', 'a3');
  t.same((await again.start()).profile.siblings.map((e) => e.endpointId), ['a1'], 'password logins work again');
});

void t.test('an endpoint that logs out while PostgreSQL is down is shown offline once it is back: its node removes the row then (A4)', async (t) => {
  const { pg, n0, n1 } = await twoNodes(t);
  const b1 = testClient(t, n0, 'bob', 'b1', { password: PASSWORDS.bob, requestTimeoutMs: 8000 });
  await b1.start();
  const a2 = testClient(t, n1, 'alice', 'a2', { password: PASSWORDS.alice, requestTimeoutMs: 8000 });
  await a2.start();
  const seen: EndpointInfo[] = [];
  b1.onPresence((e) => seen.push(e));

  await pg.stop();
  await a2.close(); // its node cannot remove its online row now
  await new Promise((r) => setTimeout(r, 2 * liveness.ttlMs));
  t.same(seen.filter((e) => e.endpointId === 'a2' && !e.online), [], 'no offline note while the row could not be removed');
  await pg.start();
  const end = Date.now() + 30_000;
  while (!seen.some((e) => e.endpointId === 'a2' && !e.online)) {
    if (Date.now() > end) throw new Error('timed out waiting for a2 offline at b1');
    await new Promise((r) => setTimeout(r, 50));
  }
  t.same((await n0.store.onlineForAccount('bob')).map((r) => r.endpointId), ['b1'], 'a2 has no online row left');
  const again = testClient(t, n0, 'bob', 'b2', { password: PASSWORDS.bob });
  t.same((await again.start()).profile.buddies.flatMap((b) => b.endpoints.map((e) => e.endpointId)), [], 'a new login of a buddy does not list a2');
});

void t.test('a session token whose login logged out while PostgreSQL was down does not log in once it is back: its node revokes it then (A9)', async (t) => {
  const { pg, n0, n1 } = await twoNodes(t);
  const keys = fakeEndpointKeys();
  const a2 = testClient(t, n1, 'alice', 'a2', { password: PASSWORDS.alice, requestTimeoutMs: 8000, ...keys });
  const token = (await a2.start()).session?.token;
  t.type(token, 'string', 'the login gave a session token');

  await pg.stop();
  await a2.close(); // logs out: its node cannot revoke the token now
  await pg.start();
  await new Promise((r) => setTimeout(r, 4 * liveness.ttlMs));
  const send = await rawAccess(t, n0.url);
  const resume = { token, endpointId: 'a2', kind: 'deskphone', label: 'a2 label', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint };
  t.match(await send('resume', resume), { status: 'error', error: { code: 'UNAUTHORIZED', message: /session token is unknown, expired or already used/ } }, 'the logged-out token is refused on any node');
});
