/**
 * The child half of NsSockets (ns-sockets.ts): runs inside a network namespace (started by
 * NatNet.spawnIn) and opens sockets there on the test's behalf. One JSON command a line on stdin,
 * one JSON line per reply or event on stdout; payloads travel as base64. It exits when stdin ends.
 *
 *   {id, op:'udp', port?}                 → {id, ok, sock, port}   bind 0.0.0.0:port (0: any)
 *   {id, op:'tcp', host, port, ca?}       → {id, ok, sock, port}   connect (TLS when ca is given)
 *   {id, op:'reflect', proto, port}       → {id, ok}               answer every datagram or chunk
 *                                                                   with the sender's "address:port"
 *   {id, op:'send', sock, data, host?, port?} → {id, ok}
 *   {id, op:'close', sock}                → {id, ok}
 *   events: {ev:'data', sock, data, address, port} · {ev:'end', sock}
 */
import { createSocket, Socket as UdpSocket } from 'node:dgram';
import { connect as tcpConnect, createServer, type Socket } from 'node:net';
import { createInterface } from 'node:readline';
import { connect as tlsConnect } from 'node:tls';

export type AgentCommand =
  | { id: number; op: 'udp'; port?: number }
  | { id: number; op: 'tcp'; host: string; port: number; ca?: string }
  | { id: number; op: 'reflect'; proto: 'udp' | 'tcp'; port: number }
  | { id: number; op: 'send'; sock: number; data: string; host?: string; port?: number }
  | { id: number; op: 'close'; sock: number };

export type AgentLine =
  | { ev: 'ready' }
  | { id: number; ok: true; sock?: number; port?: number }
  | { id: number; ok: false; error: string }
  | { ev: 'data'; sock: number; data: string; address: string; port: number }
  | { ev: 'end'; sock: number };

const sockets = new Map<number, UdpSocket | Socket>();
const servers: { close(): unknown }[] = [];
let nextSock = 1;

function out(line: AgentLine): void {
  process.stdout.write(`${JSON.stringify(line)}\n`);
}

function bindUdp(port: number): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const s = createSocket('udp4');
    s.once('error', reject);
    s.bind(port, '0.0.0.0', () => {
      s.off('error', reject);
      resolve(s);
    });
  });
}

async function run(cmd: AgentCommand): Promise<{ sock?: number; port?: number }> {
  switch (cmd.op) {
    case 'udp': {
      const s = await bindUdp(cmd.port ?? 0);
      const sock = nextSock++;
      sockets.set(sock, s);
      s.on('message', (m, r) => out({ ev: 'data', sock, data: m.toString('base64'), address: r.address, port: r.port }));
      s.on('error', () => undefined); // ICMP errors (port unreachable) surface here: a lost datagram, nothing more
      return { sock, port: s.address().port };
    }
    case 'tcp': {
      const s = await new Promise<Socket>((resolve, reject) => {
        const c = cmd.ca === undefined ? tcpConnect(cmd.port, cmd.host) : tlsConnect({ host: cmd.host, port: cmd.port, ca: cmd.ca });
        c.once('error', reject);
        c.once(cmd.ca === undefined ? 'connect' : 'secureConnect', () => {
          c.off('error', reject);
          resolve(c);
        });
      });
      const sock = nextSock++;
      sockets.set(sock, s);
      s.on('data', (d: Buffer) => out({ ev: 'data', sock, data: d.toString('base64'), address: cmd.host, port: cmd.port }));
      s.on('error', () => s.destroy());
      s.on('close', () => {
        sockets.delete(sock);
        out({ ev: 'end', sock });
      });
      return { sock, port: s.localPort ?? 0 };
    }
    case 'reflect': {
      if (cmd.proto === 'udp') {
        const s = await bindUdp(cmd.port);
        s.on('message', (_m, r) => s.send(`${r.address}:${r.port}`, r.port, r.address));
        s.on('error', () => undefined);
        servers.push(s);
      } else {
        const srv = createServer((c) => {
          c.on('data', () => c.write(`${c.remoteAddress ?? ''}:${c.remotePort ?? 0}`));
          c.on('error', () => c.destroy());
        });
        await new Promise<void>((resolve, reject) => {
          srv.once('error', reject);
          srv.listen(cmd.port, '0.0.0.0', () => resolve());
        });
        servers.push(srv);
      }
      return {};
    }
    case 'send': {
      const s = sockets.get(cmd.sock);
      if (!s) throw new Error(`no socket ${cmd.sock}`);
      const data = Buffer.from(cmd.data, 'base64');
      if (s instanceof UdpSocket) {
        if (cmd.host === undefined || cmd.port === undefined) throw new Error('a UDP send needs host and port');
        const { host, port } = cmd;
        await new Promise<void>((resolve, reject) => s.send(data, port, host, (err) => (err ? reject(err) : resolve())));
      } else {
        await new Promise<void>((resolve, reject) => s.write(data, (err) => (err ? reject(err) : resolve())));
      }
      return {};
    }
    case 'close': {
      const s = sockets.get(cmd.sock);
      sockets.delete(cmd.sock);
      if (s instanceof UdpSocket) s.close();
      else s?.destroy();
      return {};
    }
  }
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  const cmd = JSON.parse(line) as AgentCommand;
  run(cmd).then(
    (r) => out({ id: cmd.id, ok: true, ...r }),
    (err: unknown) => out({ id: cmd.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
  );
});
lines.on('close', () => {
  for (const s of sockets.values()) {
    if (s instanceof UdpSocket) s.close();
    else s.destroy();
  }
  for (const s of servers) s.close();
  process.exit(0);
});
out({ ev: 'ready' });
