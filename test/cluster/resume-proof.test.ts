import t from 'tap';
import { generateKeyPairSync, sign } from 'node:crypto';
import { hashPassword } from '../../server/passwords.ts';
import { resumeProofMessage } from '../../core/protocol/access.ts';
import { rawPublicKey } from '../../platform/token.ts';
import { silentLogger } from '../../platform/log.ts';
import { PASSWORDS, rawAccess, testClient } from '../helpers/access-clients.ts';
import { startPostgres } from '../helpers/postgres.ts';
import { startNats } from '../helpers/nats.ts';
import { startCluster } from '../helpers/cluster.ts';

void t.test('a resume proof used on one node is refused REPLAYED on every node; a nonce of one node is good on another (A14)', async (t) => {
  const pg = await startPostgres(t);
  const nats = await startNats(t);
  const { nodes } = await startCluster(t, pg, nats, 2, { log: silentLogger() });
  const [n0, n1] = [nodes[0]!, nodes[1]!];
  await n0.store.createAccount('alice', 'Alice', await hashPassword(PASSWORDS.alice!));
  const { privateKey } = generateKeyPairSync('ed25519');
  const c = testClient(t, n0, 'alice', 'a1', { signingKeyRaw: rawPublicKey(privateKey) });
  const { certificate } = await c.start();
  const nonce = String((await (await rawAccess(t, n1.url))('challenge', {})).data?.nonce);
  const body = { certificate, nonce, proof: sign(null, Buffer.from(resumeProofMessage(nonce)), privateKey).toString('base64url'), label: 'a1' };
  t.equal((await (await rawAccess(t, n0.url))('resumeProof', body)).status, 'ok', "node 1's nonce logs in on node 0");
  const replayed = { status: 'error', error: { code: 'REPLAYED', message: /resumeProof\.nonce: already used/ } };
  t.match(await (await rawAccess(t, n1.url))('resumeProof', body), replayed, 'the captured proof on node 1');
  t.match(await (await rawAccess(t, n0.url))('resumeProof', body), replayed, 'and again on node 0');
});
