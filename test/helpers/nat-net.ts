/**
 * A small NAT'ed internet for tests, made of network namespaces (root only), with coturn on it.
 * Every call makes its own five namespaces (names carry the pid and a counter, so parallel test
 * files never meet), and nothing in them can reach an address outside them: no namespace has a
 * route out, and the host's own namespace, routes and firewall are never touched.
 *
 *   home host            home NAT                              mobile NAT            mobile host
 *   192.168.77.2 ──lan── 192.168.77.1                          10.77.0.1 ──lan────── 10.77.0.2
 *   (<ns>-home)          172.31.77.10 ─┐                  ┌─ 172.31.77.20         (<ns>-mobile)
 *                        (<ns>-hnat)    │                  │  (<ns>-mnat)
 *                                       └─── bridge br0 ───┘
 *                                       172.31.77.1  (<ns>-public): coturn and the test's servers
 *
 * - home NAT: nftables `masquerade`. Linux keeps the source port where it can, so one inside
 *   address:port maps to one outside address:port whatever the destination (endpoint-independent
 *   mapping); conntrack lets in only replies from the exact address:port contacted
 *   (address-and-port-dependent filtering).
 * - mobile NAT: symmetric. `masquerade to :20000-59999 fully-random` gives every new flow its own
 *   random outside port, so the port a STUN server sees is useless to anyone else; same filtering.
 * - Both routers forward only inside→outside and the replies (`ct state established,related`);
 *   blockMobileUdp() puts `meta l4proto udp drop` at the head of the mobile router's forward chain.
 * - IPv4 only: the links have IPv6 disabled (loopback keeps ::1). ip_forward is on in the two router
 *   namespaces only; `lo` is up everywhere.
 * - coturn (turnserver, in the public namespace, foreground, its own config; /etc/turnserver.conf is
 *   never read): STUN/TURN on 172.31.77.1:3478 UDP and TCP, TLS on 172.31.77.1:5349 with a
 *   self-signed certificate for IP 172.31.77.1 (turn.certPem), TURN REST credentials
 *   (`use-auth-secret`, turn.secret, realm "sweep.test"), relays on 172.31.77.1:49152-65535, peers
 *   allowed in 172.31.77.0/24 only (`denied-peer-ip` everything, `allowed-peer-ip` that range).
 */
import { execFile, spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NS_AGENT, NsSockets } from './ns-sockets.ts';

export interface NatNet {
  /** Namespace names, unique per call: sw<pid>n<k>-home, -hnat, -mobile, -mnat, -public. */
  ns: { home: string; mobile: string; public: string; homeNat: string; mobileNat: string };
  /** Host addresses: the home host (behind the home NAT), the mobile host (behind the mobile NAT), the public server host. */
  addr: { home: string; mobile: string; public: string };
  /** The NAT routers' outside addresses, as the public side sees them. */
  natOutside: { home: string; mobile: string };
  /** coturn in the public namespace with TURN REST credentials (use-auth-secret); addresses "host:port". */
  turn: {
    secret: string;
    realm: string;
    udp: string;
    tcp: string;
    tls: string;
    /** The TLS listener's self-signed certificate (PEM, for IP 172.31.77.1), to trust it. */
    certPem: string;
  };
  /** Spawns a command inside one of this topology's namespaces (`ip netns exec`); close() kills it. */
  spawnIn(ns: string, cmd: string, args: string[], opts?: SpawnOptions): ChildProcess;
  /** A socket agent inside a namespace (UDP, TCP/TLS, reflectors); close() ends it. */
  sockets(ns: string): Promise<NsSockets>;
  /** Drops all UDP forwarded through the mobile NAT (the mobile host can then reach the public side only over TCP). */
  blockMobileUdp(): Promise<void>;
  /** turnserver's output so far (the last 64 kB), for failure messages. */
  turnLog(): string;
  /** Kills turnserver and everything else in the namespaces, deletes them and the temp dir; idempotent. */
  close(): Promise<void>;
}

const ADDR = {
  home: '192.168.77.2',
  homeNatInside: '192.168.77.1',
  homeNatOutside: '172.31.77.10',
  mobile: '10.77.0.2',
  mobileNatInside: '10.77.0.1',
  mobileNatOutside: '172.31.77.20',
  public: '172.31.77.1',
} as const;
const TURN_PORT = 3478;
const TURN_TLS_PORT = 5349;
/** Our namespaces (and natNetProblem's probe): sw<pid>n<k>-<role>, sw<pid>probe. */
const NAME = /^sw(\d+)(?:n\d+-(?:home|hnat|mobile|mnat|public)|probe)$/;
const TMP_PREFIX = 'sweep-nat-';
const TSX = import.meta.resolve('tsx');

let problem: string | undefined | null = null;
let counter = 0;

/** undefined when namespaces, nftables and coturn are usable here, else a sentence saying why not (cached). */
export function natNetProblem(): string | undefined {
  if (problem === null) problem = findProblem();
  return problem;
}

function findProblem(): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux, this is ${process.platform}`;
  const uid = process.getuid?.();
  if (uid !== 0) return `network namespaces need root, this process runs as uid ${uid}`;
  const tools: [string, string[], string][] = [
    ['ip', ['-V'], 'iproute2'],
    ['nft', ['--version'], 'nftables'],
    ['turnserver', ['--version'], 'coturn'],
    ['turnutils_stunclient', [], 'coturn'],
    ['openssl', ['version'], 'openssl'],
  ];
  for (const [cmd, args, pkg] of tools) {
    const r = spawnSync(cmd, args, { stdio: 'ignore', timeout: 5000 });
    if (r.error) return `${cmd} does not run (${r.error.message}); CI installs it with apt-get install ${pkg}`;
  }
  const probe = `sw${process.pid}probe`;
  const ip = (...args: string[]) => spawnSync('ip', args, { encoding: 'utf8', timeout: 5000 });
  const added = ip('netns', 'add', probe);
  if (added.status !== 0) return `ip netns add fails here: ${added.stderr.trim()}`;
  try {
    const nft = ip('netns', 'exec', probe, 'nft', 'add', 'table', 'ip', 'probe');
    if (nft.status !== 0) return `nftables does not work inside a network namespace: ${nft.stderr.trim()}`;
  } finally {
    ip('netns', 'delete', probe);
  }
  return undefined;
}

function exec(cmd: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${cmd} ${args.join(' ')} failed: ${stderr.trim() || err.message}`));
      else resolve(stdout);
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Alive and not a zombie (a zombie has released everything but its pid). */
function running(pid: number): boolean {
  try {
    return !/^\S+ \(.*\) Z /s.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

function kill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

async function pidsIn(ns: string): Promise<number[]> {
  const out = await exec('ip', ['netns', 'pids', ns]).catch(() => '');
  return out.split(/\s+/).filter(Boolean).map(Number);
}

/** Removes what a crashed test process (its pid no longer alive) left behind: its namespaces, their processes, its temp dirs. */
async function removeStale(): Promise<void> {
  const names = (await exec('ip', ['netns', 'list'])).split('\n').map((l) => l.split(' ')[0] ?? '');
  for (const name of names) {
    const m = NAME.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    for (const pid of await pidsIn(name)) kill(pid, 'SIGKILL');
    await exec('ip', ['netns', 'delete', name]).catch(() => undefined);
  }
  for (const entry of await readdir(tmpdir())) {
    const m = new RegExp(`^${TMP_PREFIX}(\\d+)-`).exec(entry);
    if (m && !alive(Number(m[1]))) await rm(join(tmpdir(), entry), { recursive: true, force: true });
  }
}

/** Builds the topology drawn at the top of this file and starts coturn in it; on failure removes what it made and rejects. */
export async function makeNatNet(): Promise<NatNet> {
  const why = natNetProblem();
  if (why !== undefined) throw new Error(why);
  await removeStale();
  const net = new Topology(`sw${process.pid}n${++counter}`);
  try {
    await net.build();
  } catch (err) {
    await net.close();
    throw err;
  }
  return net;
}

class Topology implements NatNet {
  readonly ns;
  readonly addr = { home: ADDR.home, mobile: ADDR.mobile, public: ADDR.public };
  readonly natOutside = { home: ADDR.homeNatOutside, mobile: ADDR.mobileNatOutside };
  readonly turn = {
    secret: randomBytes(24).toString('hex'),
    realm: 'sweep.test',
    udp: `${ADDR.public}:${TURN_PORT}`,
    tcp: `${ADDR.public}:${TURN_PORT}`,
    tls: `${ADDR.public}:${TURN_TLS_PORT}`,
    certPem: '',
  };
  #made: string[] = [];
  #children = new Set<ChildProcess>();
  #dir: string | undefined;
  #log = '';
  #closing: Promise<void> | undefined;

  constructor(prefix: string) {
    this.ns = { home: `${prefix}-home`, homeNat: `${prefix}-hnat`, mobile: `${prefix}-mobile`, mobileNat: `${prefix}-mnat`, public: `${prefix}-public` };
  }

  async build(): Promise<void> {
    this.#dir = await mkdtemp(join(tmpdir(), `${TMP_PREFIX}${process.pid}-`));
    const { home, homeNat, mobile, mobileNat, public: pub } = this.ns;
    for (const ns of [home, homeNat, mobile, mobileNat, pub]) {
      await exec('ip', ['netns', 'add', ns]);
      this.#made.push(ns);
      // Links made from now on get no IPv6; loopback keeps ::1.
      await this.#sysctl(ns, 'net.ipv6.conf.default.disable_ipv6=1');
      await exec('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    }
    await this.#ip(pub, 'link add br0 type bridge forward_delay 0');
    await this.#ip(pub, `addr add ${ADDR.public}/24 dev br0`);
    await this.#ip(pub, 'link set br0 up');
    const router = async (host: string, nat: string, port: string, hostAddr: string, inside: string, outside: string, masq: string) => {
      await this.#ip(host, `link add lan type veth peer name lan netns ${nat}`);
      await this.#ip(nat, `link add wan type veth peer name ${port} netns ${pub}`);
      await this.#ip(pub, `link set ${port} master br0`);
      await this.#ip(pub, `link set ${port} up`);
      await this.#ip(host, `addr add ${hostAddr}/24 dev lan`);
      await this.#ip(host, 'link set lan up');
      await this.#ip(host, `route add default via ${inside}`);
      await this.#ip(nat, `addr add ${inside}/24 dev lan`);
      await this.#ip(nat, `addr add ${outside}/24 dev wan`);
      await this.#ip(nat, 'link set lan up');
      await this.#ip(nat, 'link set wan up');
      await this.#sysctl(nat, 'net.ipv4.ip_forward=1');
      const file = join(this.#dir!, `${nat}.nft`);
      await writeFile(file, nftRules(masq));
      await exec('ip', ['netns', 'exec', nat, 'nft', '-f', file]);
    };
    await router(home, homeNat, 'home', ADDR.home, ADDR.homeNatInside, ADDR.homeNatOutside, 'masquerade');
    await router(mobile, mobileNat, 'mobile', ADDR.mobile, ADDR.mobileNatInside, ADDR.mobileNatOutside, 'meta l4proto { tcp, udp } masquerade to :20000-59999 fully-random\n    oifname "wan" masquerade');
    await this.#startTurn();
  }

  #ip(ns: string, command: string): Promise<string> {
    return exec('ip', ['-n', ns, ...command.split(' ')]);
  }

  #sysctl(ns: string, setting: string): Promise<string> {
    return exec('ip', ['netns', 'exec', ns, 'sysctl', '-qw', setting]);
  }

  async #startTurn(): Promise<void> {
    const dir = this.#dir!;
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    await exec('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${ADDR.public}`, '-addext', `subjectAltName=IP:${ADDR.public}`, '-keyout', key, '-out', cert]);
    this.turn.certPem = await readFile(cert, 'utf8');
    const conf = join(dir, 'turnserver.conf');
    await writeFile(
      conf,
      [
        `listening-ip=${ADDR.public}`,
        `relay-ip=${ADDR.public}`,
        `listening-port=${TURN_PORT}`,
        `tls-listening-port=${TURN_TLS_PORT}`,
        'use-auth-secret',
        `static-auth-secret=${this.turn.secret}`,
        `realm=${this.turn.realm}`,
        'fingerprint',
        'no-cli',
        `cert=${cert}`,
        `pkey=${key}`,
        // Peers: the test network only (allowed-peer-ip wins over denied-peer-ip).
        'denied-peer-ip=0.0.0.0-255.255.255.255',
        'allowed-peer-ip=172.31.77.0-172.31.77.255',
        // Its own files, not the system's (/var/run/turnserver.pid, /var/lib/turn/turndb), so parallel servers never share one.
        `pidfile=${join(dir, 'turnserver.pid')}`,
        `userdb=${join(dir, 'turndb')}`,
        'log-file=stdout',
        'simple-log',
        ...(process.env.SWEEP_TURN_VERBOSE ? ['verbose'] : []),
        '',
      ].join('\n'),
    );
    const turn = this.spawnIn(this.ns.public, 'turnserver', ['-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
    const keep = (d: Buffer) => (this.#log = (this.#log + d.toString()).slice(-65536));
    turn.stdout?.on('data', keep);
    turn.stderr?.on('data', keep);
    let exited: string | undefined;
    turn.once('exit', (code, signal) => (exited = `turnserver exited (${code ?? signal})`));
    turn.once('error', (err) => (exited = `turnserver did not start (${err.message})`));
    const want = [`udp ${ADDR.public}:${TURN_PORT}`, `tcp ${ADDR.public}:${TURN_PORT}`, `tcp ${ADDR.public}:${TURN_TLS_PORT}`];
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (exited !== undefined) throw new Error(`${exited}:\n${this.#log.slice(-3000)}`);
      const listening = (await exec('ip', ['netns', 'exec', this.ns.public, 'ss', '-Hlnut'])).split('\n').map((l) => {
        const f = l.trim().split(/\s+/);
        return `${f[0]} ${f[4]}`;
      });
      if (want.every((w) => listening.includes(w))) return;
      if (Date.now() > deadline) throw new Error(`turnserver did not listen on ${want.join(', ')} within 10 s:\n${this.#log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  spawnIn(ns: string, cmd: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
    if (this.#closing) throw new Error(`spawnIn(${ns}, ${cmd}) after close()`);
    if (!this.#made.includes(ns)) throw new Error(`spawnIn: ${ns} is not one of this topology's namespaces (${this.#made.join(', ')})`);
    const child = spawn('ip', ['netns', 'exec', ns, cmd, ...args], opts);
    this.#children.add(child);
    const forget = () => this.#children.delete(child);
    child.once('exit', forget);
    child.once('error', forget);
    return child;
  }

  async sockets(ns: string): Promise<NsSockets> {
    return NsSockets.start(this.spawnIn(ns, process.execPath, ['--import', TSX, NS_AGENT], { stdio: ['pipe', 'pipe', 'pipe'] }), ns);
  }

  async blockMobileUdp(): Promise<void> {
    await exec('ip', ['netns', 'exec', this.ns.mobileNat, 'nft', 'insert', 'rule', 'ip', 'filter', 'forward', 'meta', 'l4proto', 'udp', 'drop']);
  }

  turnLog(): string {
    return this.#log;
  }

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    // Our children first, politely (turnserver removes its pid file), then anything else in the namespaces.
    const children = [...this.#children].filter((c) => c.exitCode === null && c.signalCode === null);
    const exits = children.map((c) => new Promise<void>((r) => (c.exitCode !== null || c.signalCode !== null ? r() : c.once('exit', () => r()))));
    for (const c of children) c.kill('SIGTERM');
    const hard = setTimeout(() => children.forEach((c) => c.kill('SIGKILL')), 2000);
    await Promise.all(exits);
    clearTimeout(hard);
    const strays: number[] = [];
    for (const ns of this.#made) for (const pid of await pidsIn(ns)) strays.push(pid);
    for (const pid of strays) kill(pid, 'SIGKILL');
    // SIGKILL is not instant on a loaded machine: wait until they are gone (or zombies, which
    // hold no socket and no namespace), at most 3 s.
    const deadline = Date.now() + 3000;
    while (strays.some(running) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const ns of this.#made.splice(0).reverse()) await exec('ip', ['netns', 'delete', ns]).catch(() => undefined);
    if (this.#dir) await rm(this.#dir, { recursive: true, force: true });
  }
}

/** A router's ruleset: NAT out of wan (masq: the masquerade statement), forward inside→outside and replies only. */
function nftRules(masq: string): string {
  return `table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" ${masq}
  }
}
table ip filter {
  chain forward {
    type filter hook forward priority filter; policy drop;
    ct state established,related accept
    iifname "lan" oifname "wan" accept
  }
}
`;
}
