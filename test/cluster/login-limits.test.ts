import t from 'tap';
import { hashPassword } from '../../server/passwords.ts';
import type { AccessServer } from '../../server/access-server.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster } from '../helpers/cluster.ts';

const log = silentLogger();

void t.test('failed logins on one node count on every node: the sixth attempt on another node is RATE_LIMITED with the wait (A11 across nodes)', async (t) => {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const { nodes } = await startCluster(t, pg, nats, 3, { log });
  await nodes[0]!.store.createAccount('alice', 'Alice', await hashPassword('alice-pw-1'));
  const attempt = async (server: AccessServer, password: string, endpointId: string): Promise<void> => {
    const c = new AccessClient({ url: server.url, username: 'alice', password, endpointId, kind: 'phone', label: endpointId, ...fakeEndpointKeys(), serverPublicKeyRaw: server.publicKeyRaw, log, requestTimeoutMs: 8000 });
    try {
      await c.start();
    } finally {
      await c.close();
    }
  };
  // Five wrong guesses spread over the nodes, from the same address (loopback).
  for (let i = 0; i < 5; i++) await t.rejects(attempt(nodes[i % 3]!, 'wrong-guess', `g${i}`), { code: 'UNAUTHORIZED' }, `guess ${i + 1} on node ${i % 3}`);
  await t.rejects(attempt(nodes[2]!, 'alice-pw-1', 'a1'), { code: 'RATE_LIMITED', message: /too many failed logins for username "alice"; retry after \d+ s/ }, 'even the right password waits');
  t.equal(nodes[2]!.passwordChecks.checked, 1, 'the refused attempt cost node 2 no Argon2 check');
});
