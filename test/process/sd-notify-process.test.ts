import t from 'tap';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { AccessServer } from '../../server/access-server.ts';
import { hashPassword } from '../../server/passwords.ts';
import { silentLogger } from '../../platform/log.ts';
import { FakeNotifySocket } from '../helpers/notify-socket.ts';

const CLI = fileURLToPath(new URL('../../tools/cli.ts', import.meta.url));
const missing = ['systemd-notify', 'python3'].filter((c) => {
  try {
    execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
    return false;
  } catch {
    return true;
  }
});
const skip = missing.length ? `needs ${missing.join(' and ')} (apt-get install systemd python3)` : false;

void t.test('sweep endpoint under a fake NOTIFY_SOCKET sends READY after login, WATCHDOG pings and STOPPING on SIGTERM', { skip }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-sdnotify-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const server = await AccessServer.start({ dataDir: join(dir, 'server'), port: 0, log: silentLogger() });
  t.teardown(() => server.close());
  await server.store.createAccount('door', 'Door', await hashPassword('door-password-1'));
  const sock = await FakeNotifySocket.start();
  t.teardown(() => sock.close());
  const configFile = join(dir, 'sweep.json');
  await writeFile(
    configFile,
    JSON.stringify({
      configVersion: 2,
      endpoint: { id: 'door-1', kind: 'intercom', label: 'Door' },
      access: { url: server.url, serverPublicKey: server.publicKeyRaw, username: 'door', password: 'door-password-1' },
      stateDir: join(dir, 'state'),
      log: { level: 'warn' },
    }),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'endpoint', '--config', configFile], {
    env: { ...process.env, NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '400000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdout.resume();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  await sock.waitFor((m) => m.filter((x) => x.includes('WATCHDOG=1')).length >= 2, 30_000);
  t.match(sock.messages[0], /READY=1/, 'READY first');
  t.match(sock.messages[0], /STATUS=logged in as door\/door-1/);
  t.match(sock.messages[0], new RegExp(`MAINPID=${child.pid}\\b`), 'the main pid is the runtime, not systemd-notify');
  child.kill('SIGTERM');
  t.equal(await exited, 0, stderr);
  t.match(sock.messages.at(-1), /STOPPING=1/, 'STOPPING last');
});
