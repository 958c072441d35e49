import t from 'tap';
import { execFileSync } from 'node:child_process';
import { createSdNotifier } from '../../runtime/sd-notify.ts';
import { createLogger, silentLogger } from '../../platform/log.ts';
import { FakeNotifySocket } from '../helpers/notify-socket.ts';

function has(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const missing = ['systemd-notify', 'python3'].filter((c) => !has(c));
const skip = missing.length ? `needs ${missing.join(' and ')} (apt-get install systemd python3)` : false;
const log = silentLogger();

void t.test('createSdNotifier without NOTIFY_SOCKET is disabled and sends nothing', async (t) => {
  const n = createSdNotifier({ log, env: { WATCHDOG_USEC: '1000000' } });
  t.equal(n.enabled, false);
  t.equal(n.watchdogIntervalMs, undefined);
  n.ready();
  n.stopping();
  await n.close();
});

void t.test('createSdNotifier under a fake NOTIFY_SOCKET sends READY, WATCHDOG every half WATCHDOG_USEC, then STOPPING', { skip }, async (t) => {
  const sock = await FakeNotifySocket.start();
  t.teardown(() => sock.close());
  const n = createSdNotifier({ log, env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '300000', PATH: process.env.PATH }, pid: 4242 });
  t.teardown(() => n.close());
  t.equal(n.watchdogIntervalMs, 150);
  n.ready('logged in as door/door-1');
  await sock.waitFor((m) => m.filter((x) => x.includes('WATCHDOG=1')).length >= 3);
  n.stopping();
  await n.close();
  const msgs = sock.messages;
  t.match(msgs[0], /READY=1/);
  t.match(msgs[0], /STATUS=logged in as door\/door-1/);
  t.ok(msgs.every((m) => m.includes('MAINPID=4242')), 'every message names the main pid');
  t.match(msgs.at(-1), /STOPPING=1/, 'STOPPING comes last');
  const count = msgs.length;
  await new Promise((r) => setTimeout(r, 400));
  t.equal(sock.messages.length, count, 'no watchdog pings after stopping');
});

void t.test('createSdNotifier with WATCHDOG_PID of another process keeps no watchdog', { skip }, async (t) => {
  const sock = await FakeNotifySocket.start();
  t.teardown(() => sock.close());
  const n = createSdNotifier({ log, env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: '100000', WATCHDOG_PID: '1', PATH: process.env.PATH }, pid: 4242 });
  t.equal(n.watchdogIntervalMs, undefined);
  n.ready();
  await n.close();
  t.equal(sock.messages.length, 1);
});

void t.test('createSdNotifier with a missing systemd-notify logs one warning and never throws', async (t) => {
  const lines: string[] = [];
  const warnLog = createLogger({ level: 'warn', destination: { write: (s: string) => void lines.push(s) } });
  const n = createSdNotifier({ log: warnLog, env: { NOTIFY_SOCKET: '/nonexistent/sock', PATH: '/nonexistent' }, command: 'no-such-systemd-notify' });
  n.ready();
  n.status('x');
  n.stopping();
  await n.close();
  t.equal(lines.length, 1, lines.join(''));
  t.match(lines[0], /sd_notify failed/);
});
