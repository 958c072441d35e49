import t, { type Test } from 'tap';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccessServer } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { createProvisionCode } from '../../server/provisioning.ts';
import { AccessClient, accessOptionsFromConfig } from '../../runtime/access/access-client.ts';
import { loadOrCreateKeys } from '../../runtime/identity/keys.ts';
import { provision } from '../../runtime/provision.ts';
import { loadEndpointConfig } from '../../firmware-config/load.ts';
import { silentLogger } from '../../platform/log.ts';
import { fakeEndpointKeys } from '../helpers/endpoint-keys.ts';

const log = silentLogger();
const PROFILE = fileURLToPath(new URL('../../firmware-config/profiles/intercom.json', import.meta.url));
const CLI = fileURLToPath(new URL('../../tools/cli.ts', import.meta.url));

interface Setup {
  server: AccessServer;
  dir: string;
  configFile: string;
  secretsFile: string;
}

async function setup(t: Test, over: { serverPublicKey?: string; endpointId?: string } = {}): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-provision-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const server = await AccessServer.start({ dataDir: join(dir, 'server'), port: 0, log, rateLimit: { perUsername: { maxFailures: 100, windowMs: 60_000 }, perAddress: { maxFailures: 100, windowMs: 60_000 } } });
  t.teardown(() => server.close());
  await server.store.createAccount('door', 'Front door', await hashPassword('account-password-not-on-the-device'));
  const profile = JSON.parse(await readFile(PROFILE, 'utf8')) as Record<string, Record<string, unknown>>;
  const config = {
    ...profile,
    endpoint: { ...profile.endpoint, id: over.endpointId ?? 'door-1' },
    access: { ...profile.access, url: server.url, serverPublicKey: over.serverPublicKey ?? server.publicKeyRaw },
    stateDir: join(dir, 'state'),
    network: { bindAddress: '127.0.0.1' },
    panel: undefined,
  };
  const configFile = join(dir, 'sweep.json');
  await writeFile(configFile, JSON.stringify(config));
  return { server, dir, configFile, secretsFile: join(dir, 'secrets.json') };
}

async function login(t: Test, s: Setup, keys: { signingKeyRaw: string; dtlsFingerprint: string }): Promise<AccessClient> {
  const config = await loadEndpointConfig(s.configFile);
  const client = new AccessClient({
    ...accessOptionsFromConfig(config, keys),
    log,
    backoff: { initialMs: 20, maxMs: 200 },
    requestTimeoutMs: 3000,
  });
  t.teardown(() => client.close());
  return client;
}

async function refused(p: Promise<unknown>): Promise<Error & { code?: string }> {
  return p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as Error & { code?: string },
  );
}

void t.test('provision with a fresh code writes a 0600 secrets file the device then logs in with', async (t) => {
  const s = await setup(t);
  const { code } = await createProvisionCode(s.server.store, 'door', 'door-1', 60_000);
  const r = await provision({ configFile: s.configFile, code });
  t.same(r, { account: 'door', endpointId: 'door-1', secretsFile: s.secretsFile });
  t.equal((await stat(s.secretsFile)).mode & 0o777, 0o600, 'secrets file is 0600');
  const secrets = JSON.parse(await readFile(s.secretsFile, 'utf8')) as { password: string };
  t.ok(secrets.password.length >= 32, 'a long random password made on the device');
  const keys = await loadOrCreateKeys(join(s.dir, 'state'));
  t.equal((await s.server.store.listEndpointCredentials('door'))[0]?.signingKey, keys.signingKeyRaw, 'the credential is bound to the key made on the device');
  const client = await login(t, s, keys);
  const result = await client.start();
  t.equal(result.profile.account, 'door');
  t.equal(result.profile.endpointId, 'door-1');
});

void t.test('provision with a used, expired or other-endpoint code is refused and writes nothing', async (t) => {
  const s = await setup(t);
  const { code } = await createProvisionCode(s.server.store, 'door', 'door-1', 60_000);
  await provision({ configFile: s.configFile, code });
  const again = await refused(provision({ configFile: s.configFile, code, force: true }));
  t.match(again.message, /provisioning code is unknown, expired, already used/);
  t.equal(again.code, 'REFUSED');
  const exists = await refused(provision({ configFile: s.configFile, code }));
  t.match(exists.message, /exists: this device is provisioned already \(use --force/);

  await rm(s.secretsFile);
  const expired = await createProvisionCode(s.server.store, 'door', 'door-1', 1, Date.now() - 10);
  t.match((await refused(provision({ configFile: s.configFile, code: expired.code }))).message, /unknown, expired, already used/);
  const other = await createProvisionCode(s.server.store, 'door', 'door-2', 60_000);
  t.match((await refused(provision({ configFile: s.configFile, code: other.code }))).message, /for another account or endpoint/);
  t.match((await refused(provision({ configFile: s.configFile, code: 'short' }))).message, /code: a provisioning code/);
  await t.rejects(stat(s.secretsFile), 'no secrets file written');
  t.ok(await s.server.store.findProvisionCode((await import('../../server/provisioning.ts')).hashCode(other.code), Date.now()), 'a refused code for another endpoint is not used up');
});

void t.test('provision with a config naming another server key is refused before the code is spent', async (t) => {
  const s = await setup(t, { serverPublicKey: fakeEndpointKeys().signingKeyRaw });
  const { code } = await createProvisionCode(s.server.store, 'door', 'door-1', 60_000);
  const err = await refused(provision({ configFile: s.configFile, code }));
  t.match(err.message, /access\.serverPublicKey .* differs from the key .* served by/);
  t.equal((await s.server.store.listEndpointCredentials('door')).length, 0);
});

void t.test('login with a provisioned password but another signing key, or after revoke, is refused', async (t) => {
  const s = await setup(t);
  const { code } = await createProvisionCode(s.server.store, 'door', 'door-1', 60_000);
  await provision({ configFile: s.configFile, code });
  const stolen = await login(t, s, fakeEndpointKeys());
  t.equal((await refused(stolen.start())).code, 'UNAUTHORIZED', 'the password alone is not enough');
  t.ok(await s.server.store.removeEndpointCredential('door', 'door-1'));
  const revoked = await login(t, s, await loadOrCreateKeys(join(s.dir, 'state')));
  t.equal((await refused(revoked.start())).code, 'UNAUTHORIZED', 'revoked');
});

void t.test('sweep provision and sweep server provision-code add work from the command line', async (t) => {
  const s = await setup(t);
  const run = (args: string[], input?: string) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { timeout: 60_000 }, (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
      });
      child.stdin?.end(input ?? '');
    });
  // The running server holds the database; a second writer is fine (SQLite WAL, busy timeout).
  const made = await run(['server', 'provision-code', 'add', 'door', '--endpoint', 'door-1', '--ttl', '5', '--data', join(s.dir, 'server')]);
  t.equal(made.code, 0, made.stderr);
  const code = made.stdout.trim().split('\n').at(-1)!;
  t.match(code, /^[A-Za-z0-9_-]{22}$/);
  const prov = await run(['provision', '--config', s.configFile], `${code}\n`);
  t.equal(prov.code, 0, prov.stderr);
  t.match(prov.stdout, /provisioned door\/door-1; password written to .*secrets\.json \(0600\)/);
  t.notMatch(prov.stdout + prov.stderr, new RegExp((JSON.parse(await readFile(s.secretsFile, 'utf8')) as { password: string }).password), 'the password is never printed');
  const check = await run(['config', 'check', s.configFile]);
  t.equal(check.code, 0, check.stderr);
  const list = await run(['server', 'endpoint', 'list', 'door', '--data', join(s.dir, 'server')]);
  t.match(list.stdout, /^door-1\t/);
});
