import t from 'tap';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { diagCli } from '../../tools/diag-cli.ts';
import { startDevice, type SuiteBroker } from '../helpers/diagnostics-suite.ts';
import { FakeEndpoint } from '../helpers/fake-endpoint.ts';
import { startAedes } from '../helpers/mqtt-brokers.ts';

function io() {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const stdin = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (d: Buffer) => (out += d.toString()));
  stderr.on('data', (d: Buffer) => (err += d.toString()));
  return { io: { stdout, stderr, stdin }, stdin, out: () => out, err: () => err };
}

void t.test('sweep diag against a device on aedes: keygen, cmd, signed cmd, watch, shell', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sweep-diag-cli-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const b = await startAedes(t);
  const broker: SuiteBroker = { name: 'aedes', protocolVersion: 4, device: () => ({ url: b.url }), operator: () => ({ url: b.url, protocolVersion: 4 }) };
  const common = ['--url', b.url, '--protocol', '4', '--device', 'intercom'];

  const keyFile = join(dir, 'operator.pem');
  const kg = io();
  t.equal(await diagCli(['keygen', '--out', keyFile], kg.io), 0);
  const publicKey = kg.out().trim();
  t.match(publicKey, /^[A-Za-z0-9_-]{43}$/, 'prints the raw public key');
  t.equal((await stat(keyFile)).mode & 0o777, 0o600, 'private key readable by its owner only');

  const endpoint = new FakeEndpoint();
  await startDevice(t, broker, {
    endpoint,
    operatorKeys: [publicKey],
    config: { shell: { enabled: true, ...(process.getuid?.() === 0 ? { user: 'nobody' } : {}), idleTimeoutMs: 5000 } },
  });

  void t.test('cmd ping prints the ok response and exits 0', async (t) => {
    const c = io();
    t.equal(await diagCli(['cmd', ...common, 'ping'], c.io), 0, c.err());
    t.match(JSON.parse(c.out()), { status: 'ok', data: { pong: true } });
  });

  void t.test('cmd setLogLevel without --operator-key exits 1 with UNAUTHORIZED; with it exits 0', async (t) => {
    const c = io();
    t.equal(await diagCli(['cmd', ...common, 'setLogLevel', '{"level":"debug"}'], c.io), 1);
    t.match(JSON.parse(c.out()), { status: 'error', error: { code: 'UNAUTHORIZED' } });
    const s = io();
    t.equal(await diagCli(['cmd', ...common, '--operator-key', keyFile, 'setLogLevel', '{"level":"debug"}'], s.io), 0, s.err());
    t.match(JSON.parse(s.out()), { status: 'ok', data: { level: 'debug' } });
  });

  void t.test('cmd with bad ARGS_JSON or an unknown subcommand exits 2 naming the problem', async (t) => {
    const c = io();
    t.equal(await diagCli(['cmd', ...common, 'getLogs', '{lines:'], c.io), 2);
    t.match(c.err(), /ARGS_JSON: not valid JSON/);
    const u = io();
    t.equal(await diagCli(['frobnicate'], u.io), 2);
    t.match(u.err(), /"frobnicate" is not one of keygen, watch, cmd, shell/);
  });

  void t.test('watch --count prints the device state and events', async (t) => {
    const c = io();
    const done = diagCli(['watch', '--url', b.url, '--protocol', '4', '--count', '2'], c.io);
    setTimeout(() => endpoint.bus.emit('access.state', { connected: true }), 300);
    t.equal(await done, 0);
    t.match(c.out(), /^intercom state \{"state":"online"/m);
    t.match(c.out(), /^intercom event\/access\.connected /m);
  });

  void t.test('shell runs a command and ends when stdin ends', async (t) => {
    const c = io();
    const done = diagCli(['shell', ...common, '--operator-key', keyFile], c.io);
    setTimeout(() => c.stdin.write('echo cli-$((6*7))\n'), 500);
    setTimeout(() => c.stdin.end(), 1500);
    t.equal(await done, 0, c.err());
    t.match(c.out(), /cli-42/);
    t.match(c.err(), /shell closed: closed/);
  });
});
