import t from 'tap';
import { hashPassword } from '../../server/passwords.ts';
import type { AccessServer } from '../../server/access-server.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import type { SignalIn } from '../../core/protocol/access.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster } from '../helpers/cluster.ts';

const log = silentLogger();
const PASSWORDS: Record<string, string> = { alice: 'alice-pw-1', bob: 'bob-pw-2' };
const liveness = { renewMs: 300, ttlMs: 1500 };

void t.test('PostgreSQL stopped for 10 s: logged-in endpoints keep relaying, nothing is reaped, a password login is refused BUSY with a clear message', async (t) => {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const { nodes } = await startCluster(t, pg, nats, 2, { log, liveness });
  const [n0, n1] = nodes as [AccessServer, AccessServer];
  for (const [name, pw] of Object.entries(PASSWORDS)) await n0.store.createAccount(name, name, await hashPassword(pw));
  await n0.store.addBuddies('alice', 'bob');
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
