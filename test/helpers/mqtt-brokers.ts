import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Aedes, type AedesOptions } from 'aedes';
import type { Test } from 'tap';

const run = promisify(execFile);

export const MOSQUITTO = ['/usr/sbin/mosquitto', '/usr/bin/mosquitto', '/usr/local/sbin/mosquitto'].find((p) => existsSync(p));
/** tap's `skip` option: a reason when mosquitto is missing, false otherwise. */
export const mosquittoSkip: string | false = MOSQUITTO ? false : 'mosquitto is not installed (CI installs it: apt-get install mosquitto)';

import { freePort } from './ports.ts';

export { freePort };

export interface AedesBroker {
  broker: Aedes;
  url: string;
  port: number;
  /** Stops listening and drops every connection abruptly (no will suppression: wills fire). */
  stop(): Promise<void>;
  /** Listens again on the same port with a fresh broker (retained messages are lost, as after a crash). */
  start(): Promise<void>;
  /** Drops one client's socket abruptly, so the broker publishes its will. */
  dropClient(clientId: string): void;
}

/** An aedes broker on 127.0.0.1 (MQTT 3.1.1), closed when the test ends. */
export async function startAedes(t: Test, opts: AedesOptions = {}, port?: number): Promise<AedesBroker> {
  const p = port ?? (await freePort());
  let broker!: Aedes;
  let server!: Server;
  const sockets = new Set<Socket>();
  const start = async () => {
    broker = await Aedes.createBroker({ drainTimeout: 1000, ...opts });
    server = createServer((s) => {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      broker.handle(s);
    });
    await new Promise<void>((r) => server.listen(p, '127.0.0.1', r));
  };
  const stop = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((r) => server.close(r));
    await new Promise<void>((r) => broker.close(() => r()));
  };
  await start();
  let stopped = false;
  const b: AedesBroker = {
    get broker() {
      return broker;
    },
    url: `mqtt://127.0.0.1:${p}`,
    port: p,
    stop: async () => {
      stopped = true;
      await stop();
    },
    start: async () => {
      stopped = false;
      await start();
    },
    dropClient: (clientId) => {
      const c = (broker as unknown as { clients: Record<string, { conn: Socket }> }).clients[clientId];
      c?.conn.destroy();
    },
  };
  t.teardown(async () => {
    if (!stopped) await stop();
  });
  return b;
}

export interface MosquittoUser {
  username: string;
  password: string;
  passwordFile: string;
}

export interface Mosquitto {
  url: string;
  port: number;
  dir: string;
  caFile: string;
  /** Users: one per device id given, plus "operator". */
  users: Record<string, MosquittoUser>;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
}

/**
 * A real mosquitto 2 on a free loopback port, TLS only, with a throwaway CA (openssl), a password
 * file (mosquitto_passwd), per-device credentials and an ACL like deploy/mosquitto/acl (each device
 * confined to sweep/<its id>/…, the operator reads all and writes commands and shell input).
 */
export async function startMosquitto(t: Test, devices: string[]): Promise<Mosquitto> {
  if (!MOSQUITTO) throw new Error('mosquitto missing');
  const dir = await mkdtemp(join(tmpdir(), 'sweep-mosquitto-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const f = (n: string) => join(dir, n);
  const ssl = (args: string[]) => run('openssl', args, { cwd: dir });
  await ssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=Sweep test CA', '-keyout', 'ca.key', '-out', 'ca.crt']);
  await ssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', 'server.key', '-out', 'server.csr']);
  await writeFile(f('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  await ssl(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'server.crt']);
  const users: Record<string, MosquittoUser> = {};
  let first = true;
  for (const name of [...devices, 'operator']) {
    const password = `pw-${name}-${Math.random().toString(36).slice(2)}`;
    const passwordFile = f(`${name}.password`);
    await writeFile(passwordFile, `${password}\n`, { mode: 0o600 });
    await run('mosquitto_passwd', [...(first ? ['-c'] : []), '-b', f('passwd'), name, password]);
    first = false;
    users[name] = { username: name, password, passwordFile };
  }
  await writeFile(
    f('acl'),
    [
      '# devices: their own subtree only (as deploy/mosquitto/acl)',
      'pattern readwrite sweep/%u/#',
      'pattern write homeassistant/sensor/%u/#',
      'pattern write homeassistant/button/%u/#',
      '',
      'user operator',
      'topic read sweep/#',
      'topic read homeassistant/#',
      'topic write sweep/+/cmd',
      'topic write sweep/+/shell/+/in',
      '',
    ].join('\n'),
  );
  const port = await freePort();
  await writeFile(
    f('mosquitto.conf'),
    [
      // As root, mosquitto would switch to the "mosquitto" user, who cannot read this private temp dir.
      `user ${userInfo().username}`,
      'per_listener_settings false',
      'persistence false',
      `listener ${port} 127.0.0.1`,
      `cafile ${f('ca.crt')}`,
      `certfile ${f('server.crt')}`,
      `keyfile ${f('server.key')}`,
      'allow_anonymous false',
      `password_file ${f('passwd')}`,
      `acl_file ${f('acl')}`,
      'log_dest stderr',
      'log_type error',
      'log_type warning',
      '',
    ].join('\n'),
  );
  let child: ChildProcess | undefined;
  const start = async () => {
    const c = spawn(MOSQUITTO, ['-c', f('mosquitto.conf')], { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    let err = '';
    c.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    const deadline = Date.now() + 5000;
    for (;;) {
      if (c.exitCode !== null) throw new Error(`mosquitto exited ${c.exitCode}: ${err}`);
      if (await canConnect(port)) break;
      if (Date.now() > deadline) throw new Error(`mosquitto did not listen on ${port}: ${err}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  const stop = async (signal: NodeJS.Signals = 'SIGTERM') => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    const exited = new Promise((r) => c.once('exit', r));
    c.kill(signal);
    await exited;
  };
  t.teardown(() => stop('SIGKILL'));
  await start();
  return { url: `mqtts://127.0.0.1:${port}`, port, dir, caFile: f('ca.crt'), users, stop, start };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface TcpProxy {
  port: number;
  url(scheme: 'mqtt' | 'mqtts'): string;
  /** Cuts every connection abruptly (the broker sees a dead client and fires its will). */
  dropAll(): void;
  /** While blocked, new connections are refused (closed at once): the broker is "unreachable". */
  setBlocked(blocked: boolean): void;
}

/** A loopback TCP proxy in front of a broker, to cut a client off without its cooperation. */
export async function startProxy(t: Test, targetPort: number): Promise<TcpProxy> {
  const pairs = new Set<[Socket, Socket]>();
  let blocked = false;
  const server = createServer((inbound) => {
    if (blocked) {
      inbound.destroy();
      return;
    }
    const outbound = connect(targetPort, '127.0.0.1');
    const pair: [Socket, Socket] = [inbound, outbound];
    pairs.add(pair);
    const end = () => {
      inbound.destroy();
      outbound.destroy();
      pairs.delete(pair);
    };
    inbound.on('error', end).on('close', end);
    outbound.on('error', end).on('close', end);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const dropAll = () => {
    for (const [a, b] of pairs) {
      a.resetAndDestroy();
      b.resetAndDestroy();
    }
    pairs.clear();
  };
  t.teardown(async () => {
    dropAll();
    await new Promise((r) => server.close(r));
  });
  return { port, url: (scheme) => `${scheme}://127.0.0.1:${port}`, dropAll, setBlocked: (b) => (blocked = b) };
}
