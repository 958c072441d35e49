import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer } from '../../server/access-server.ts';
import { openStore } from '../../server/store/open.ts';
import { hashPassword } from '../../server/passwords.ts';
import { loadOrCreateServerKey } from '../../server/server-key.ts';
import { ChildEndpoint } from '../../lab/child-endpoint.ts';
import { silentLogger } from '../../platform/log.ts';
import { freePort } from '../helpers/ports.ts';

void t.test('sweep endpoint started while the access server is down logs in once it comes up', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-offline-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const data = join(dir, 'server');
  const key = await loadOrCreateServerKey(data);
  const store = await openStore({ kind: 'sqlite', dataDir: data });
  await store.createAccount('door', 'Front door', await hashPassword('a long test passphrase'));
  await store.close();
  const port = await freePort();

  const starting = ChildEndpoint.start(
    {
      endpoint: { id: 'intercom', kind: 'intercom', label: 'Front door' },
      access: { url: `ws://127.0.0.1:${port}/access`, serverPublicKey: key.publicKeyRaw, username: 'door', password: 'a long test passphrase' },
      stateDir: join(dir, 'intercom'),
      log: { level: 'warn' },
    },
    join(dir, 'intercom.json'),
    { timeoutMs: 30_000 },
  );
  await new Promise((r) => setTimeout(r, 2500));
  const server = await AccessServer.start({ dataDir: data, port, log: silentLogger() });
  t.teardown(() => server.close());
  const child = await starting;
  t.teardown(() => child.close());
  t.match(child.stderr, /login to the access server failed; retrying/, 'the endpoint said it was retrying');
  t.equal((await child.command({ cmd: 'state' })).call, null, 'it is up and idle');
});
