import t, { type Test } from 'tap';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { WebSocket } from 'ws';
import { AccessServer, type AccessServerOptions } from '../../server/access-server.ts';
import { serverCli } from '../../server/cli.ts';
import { hashPassword } from '../../server/passwords.ts';
import { AccessClient } from '../../runtime/access/access-client.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';

// Issue 12, item 4: identity is account plus endpoint id (A10).

const log = silentLogger();
const PASSWORDS: Record<string, string> = { alice: 'alice-pw', mallory: 'mallory-pw' };

function tempDir(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-identity-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** alice (a resident) and mallory (a buddy of the door, like alice). */
async function start(t: Test, opts: Partial<AccessServerOptions> = {}): Promise<AccessServer> {
  const server = await AccessServer.start({ dataDir: opts.dataDir ?? tempDir(t), port: 0, log, webRoot: tmpdir(), ...opts });
  t.teardown(() => server.close());
  if ((await server.store.listAccounts()).length === 0) {
    for (const [name, pw] of Object.entries(PASSWORDS)) await server.store.createAccount(name, name, await hashPassword(pw));
  }
  return server;
}

function client(t: Test, server: AccessServer, account: string, endpointId: string, kind: 'deskphone' | 'browser' = 'deskphone'): AccessClient {
  const c = new AccessClient({
    url: server.url, username: account, password: PASSWORDS[account] ?? 'x', endpointId, kind, label: '',
    ...fakeEndpointKeys(), serverPublicKeyRaw: server.publicKeyRaw, log, backoff: { initialMs: 20, maxMs: 100 }, requestTimeoutMs: 3000,
  });
  t.teardown(() => c.close());
  return c;
}

const FORBIDDEN_ID = { code: 'FORBIDDEN', message: /endpointId: "handset-1" belongs to another account/ };

void t.test('login with an endpoint id bound to another account while its owner is online is refused FORBIDDEN naming the field (issue 12, A10)', async (t) => {
  const server = await start(t);
  await client(t, server, 'alice', 'handset-1').start();
  await t.rejects(client(t, server, 'mallory', 'handset-1').start(), FORBIDDEN_ID);
});

void t.test('login with an endpoint id bound to another account while its owner is offline is refused FORBIDDEN; the owner gets it back (issue 12, A10)', async (t) => {
  const server = await start(t);
  const owner = client(t, server, 'alice', 'handset-1');
  await owner.start();
  await owner.close(); // the handset's socket is gone (Wi-Fi, server restart): nobody holds the id
  await t.rejects(client(t, server, 'mallory', 'handset-1').start(), FORBIDDEN_ID);
  const back = client(t, server, 'alice', 'handset-1');
  await back.start();
  t.equal(back.state, 'online');
});

void t.test('login of two accounts racing for a new endpoint id at the same moment lets exactly one have it (issue 12, A10)', async (t) => {
  const server = await start(t);
  for (let round = 0; round < 4; round++) {
    const id = `door-${round}`;
    const results = await Promise.allSettled([client(t, server, 'alice', id).start(), client(t, server, 'mallory', id).start()]);
    const won = results.filter((r) => r.status === 'fulfilled');
    t.equal(won.length, 1, `round ${round}: one winner`);
    const lost = results.find((r) => r.status === 'rejected');
    t.match(lost?.status === 'rejected' ? lost.reason : undefined, { code: 'FORBIDDEN', message: new RegExp(`endpointId: "${id}" belongs to another account`) });
    t.equal(await server.store.endpointOwner(id), won[0]?.status === 'fulfilled' ? won[0].value.profile.account : undefined, 'the store names the winner');
  }
});

void t.test('login of the owner and another account at the same moment while the owner is offline always lets the owner in (issue 12, A10)', async (t) => {
  const server = await start(t);
  const first = client(t, server, 'alice', 'handset-1');
  await first.start();
  await first.close();
  for (let round = 0; round < 3; round++) {
    const owner = client(t, server, 'alice', 'handset-1');
    const [mine, theirs] = await Promise.allSettled([owner.start(), client(t, server, 'mallory', 'handset-1').start()]);
    t.equal(mine.status, 'fulfilled', `round ${round}: the owner logged in`);
    t.match(theirs.status === 'rejected' ? theirs.reason : undefined, FORBIDDEN_ID, `round ${round}: the other account was refused`);
    await owner.close();
  }
});

void t.test('endpoint binding after a server restart still refuses another account, and sweep server endpoint release frees it (issue 12, A10)', async (t) => {
  const dataDir = tempDir(t);
  const first = await start(t, { dataDir });
  const owner = client(t, first, 'alice', 'handset-1');
  await owner.start();
  await owner.close();
  await first.close();
  const out = new PassThrough();
  let printed = '';
  out.on('data', (d: Buffer) => (printed += d.toString()));
  const io = { stdout: out, stderr: out, stdin: Readable.from([]) };
  t.equal(await serverCli(['endpoint', 'owner', 'handset-1', '--data', dataDir], io), 0);
  t.match(printed, /handset-1\talice/);
  const second = await start(t, { dataDir });
  await t.rejects(client(t, second, 'mallory', 'handset-1').start(), FORBIDDEN_ID);
  await second.close();
  t.equal(await serverCli(['endpoint', 'release', 'handset-1', '--data', dataDir], io), 0);
  t.match(printed, /endpoint handset-1 released from account alice/);
  t.equal(await serverCli(['endpoint', 'release', 'handset-1', '--data', dataDir], io), 0);
  t.match(printed, /handset-1 was not bound to an account/);
  const third = await start(t, { dataDir });
  await client(t, third, 'mallory', 'handset-1').start();
  t.equal(await third.store.endpointOwner('handset-1'), 'mallory');
});

void t.test('logout of a browser endpoint releases its id; a device keeps its binding after logout (A10)', async (t) => {
  const server = await start(t);
  const page = client(t, server, 'alice', 'web-1', 'browser');
  await page.start();
  await page.close(); // close() logs out
  t.equal(await server.store.endpointOwner('web-1'), undefined, 'a shared browser may log in to another account');
  await client(t, server, 'mallory', 'web-1', 'browser').start();
  const handset = client(t, server, 'alice', 'handset-1');
  await handset.start();
  await handset.close();
  t.equal(await server.store.endpointOwner('handset-1'), 'alice');
});

void t.test('resume with a token issued before the operator released the endpoint id is refused UNAUTHORIZED (issue 12, A10)', async (t) => {
  const server = await start(t);
  const keys = fakeEndpointKeys();
  const ws = new WebSocket(server.url);
  ws.on('error', () => undefined);
  t.teardown(() => ws.terminate());
  await new Promise((r) => ws.once('open', r));
  const who = { endpointId: 'handset-1', kind: 'deskphone', label: '', signingKey: keys.signingKeyRaw, dtlsFingerprint: keys.dtlsFingerprint };
  const login = await new Promise<{ data?: { session?: { token: string } } }>((resolve) => {
    ws.on('message', (raw: Buffer) => {
      const m = JSON.parse(raw.toString()) as { kind: string; data?: { session?: { token: string } } };
      if (m.kind === 'res') resolve(m);
    });
    ws.send(JSON.stringify({ kind: 'req', id: 'r1', type: 'login', body: { username: 'mallory', password: 'mallory-pw', ...who } }));
  });
  const token = login.data?.session?.token ?? '';
  t.ok(token, 'mallory logged in with the id first');
  ws.terminate(); // gone without logging out: her token stays stored
  while (server.registry.get('handset-1')) await new Promise((r) => setTimeout(r, 5));
  // The operator gives the id to alice's handset; mallory's old token must not win it back.
  t.equal(await server.store.releaseEndpoint('handset-1'), 'mallory');
  await client(t, server, 'alice', 'handset-1').start();
  const ws2 = new WebSocket(server.url);
  ws2.on('error', () => undefined);
  t.teardown(() => ws2.terminate());
  await new Promise((r) => ws2.once('open', r));
  const again = await new Promise<unknown>((resolve) => {
    ws2.on('message', (raw: Buffer) => resolve(JSON.parse(raw.toString())));
    ws2.send(JSON.stringify({ kind: 'req', id: 'r3', type: 'resume', body: { token, ...who } }));
  });
  t.match(again, { status: 'error', error: { code: 'UNAUTHORIZED' } });
});
