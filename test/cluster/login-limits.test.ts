import t, { type Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { WebSocket } from 'ws';
import { hashPassword } from '../../server/passwords.ts';
import { hashToken } from '../../server/credentials.ts';
import type { AccessServer } from '../../server/access-server.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { askingRetryAfter } from '../../core/protocol/access.ts';
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

/** One request on each of `bodies.length` fresh sockets, all written in one synchronous run; resolves with the answers. */
async function burst(t: Test, server: AccessServer, type: string, bodies: object[]): Promise<Array<{ status: string; error?: { code: string; message: string; retryAfterMs?: number } }>> {
  const sockets = await Promise.all(
    bodies.map(async (_, i) => {
      // Every other socket asks for A17's retryAfterMs, as current clients do; the rest are older clients.
      const ws = new WebSocket(i % 2 === 0 ? askingRetryAfter(server.url) : server.url);
      t.teardown(() => ws.terminate());
      await new Promise<void>((resolve, reject) => {
        ws.once('open', () => resolve());
        ws.once('error', reject);
      });
      return ws;
    }),
  );
  const answers = sockets.map((ws) => new Promise<{ status: string; error?: { code: string; message: string; retryAfterMs?: number } }>((resolve) => ws.on('message', (raw: Buffer) => resolve(JSON.parse(raw.toString()) as never))));
  sockets.forEach((ws, i) => ws.send(JSON.stringify({ kind: 'req', id: 'r1', type, body: bodies[i] })));
  return Promise.all(answers);
}

void t.test('resumes beyond the login gate are refused RATE_LIMITED "server busy" before their tokens are used, and the node answers the rest (issue 16, A11)', async (t) => {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const { nodes } = await startCluster(t, pg, nats, 1, { log, logins: { concurrency: 1, queue: 2 } });
  const node = nodes[0]!;
  await node.store.createAccount('alice', 'Alice', await hashPassword('alice-pw-1'));
  const tokens = Array.from({ length: 12 }, (_, i) => ({ token: randomBytes(32).toString('base64url'), endpointId: `a${i}` }));
  for (const { token, endpointId } of tokens) await node.store.addLoginSession(hashToken(token), 'alice', endpointId, Date.now() + 60_000);
  const body = ({ token, endpointId }: { token: string; endpointId: string }): object => {
    const keys = fakeEndpointKeys();
    return { token, endpointId, kind: 'phone', label: '', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint };
  };
  const answers = await burst(t, node, 'resume', tokens.map(body));
  const busy = answers.filter((a) => a.error?.code === 'RATE_LIMITED');
  t.comment(`${answers.filter((a) => a.status === 'ok').length} ok, ${busy.length} refused busy`);
  t.ok(answers.filter((a) => a.status === 'ok').length >= 3, 'the one in progress and the two waiting are answered');
  t.ok(busy.length >= 6, `most of the rest were refused at once (got ${busy.length} of 12)`);
  t.match(busy[0]?.error?.message, /^server busy with logins \(1 in progress, 2 waiting, none longer than 5 s\); retry after \d+ s$/);
  const asked = answers.filter((a, i) => i % 2 === 0 && a.error?.code === 'RATE_LIMITED');
  const older = answers.filter((a, i) => i % 2 === 1 && a.error?.code === 'RATE_LIMITED');
  t.ok(asked.length > 0 && asked.every((a) => (a.error?.retryAfterMs ?? 0) > 0), `a client that asked is told when to come back (A17): ${asked.map((a) => a.error?.retryAfterMs).join(', ')} ms`);
  t.ok(older.every((a) => a.error && !('retryAfterMs' in a.error)), 'an older client gets the message only');
  t.equal(answers.filter((a) => a.status !== 'ok' && a.error?.code !== 'RATE_LIMITED').length, 0, 'no other failure');
  // Refused before the token was looked at: it still works.
  const again = tokens[answers.findIndex((a) => a.error?.code === 'RATE_LIMITED')]!;
  t.equal((await burst(t, node, 'resume', [body(again)]))[0]?.status, 'ok', `${again.endpointId}'s token still works`);
});
