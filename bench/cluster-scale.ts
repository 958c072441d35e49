import type { Test } from 'tap';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, getPriority, loadavg, setPriority, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { RECONNECT_BACKOFF } from '../core/protocol/access.ts';
import { SweepError, toSweepError } from '../core/errors.ts';
import { silentLogger } from '../platform/log.ts';
import { rawPublicKey } from '../platform/token.ts';
import { hashToken } from '../server/credentials.ts';
import type { LoadFigures } from '../server/load-monitor.ts';
import { hashPassword } from '../server/passwords.ts';
import { loadOrCreateServerKey } from '../server/server-key.ts';
import { buildBundle } from '../deploy/bundle.ts';
import { SupervisedNode } from './supervised-node.ts';
import { migrateStore, openStore, type StoreLocation } from '../server/store/open.ts';
import { freePort } from '../test/helpers/ports.ts';
import { ed25519KeyPair, Fleet, type FleetEndpoint } from './fleet.ts';
import { openAccessSocket } from '../runtime/access/access-socket.ts';
import { percentile, round } from './stats.ts';

/**
 * The 10k figures of `npm run bench -- cluster`: one server node, a process of its own run from
 * the `sweep` bundle as systemd runs it (deploy/systemd: no TypeScript loader at start), holding
 * ENDPOINTS logged-in endpoints (households of PER_HOME, each home its own client address
 * through a trusted proxy) while relay and presence traffic flows; then SIGKILLed and restarted
 * as systemd would, while the whole fleet comes back with resume proofs (A14) and a burst of
 * password logins arrives. Every wait is bounded.
 */
const ENDPOINTS = 10_000;
const PER_HOME = 4;
const PW = 'bench-password-1';
const log = silentLogger();
/** The node's figures are its last whole 10 s window (server/load-monitor.ts). */
const LOAD_WINDOW_MS = 10_000;
const HOLD_MS = 30_000;
const SIGNALS_PER_S = 200;
const RECONNECTS_PER_S = 20;
/** deploy/systemd/sweep-server*.service: Restart=on-failure, RestartSec=2s. */
const RESTART_SEC_MS = 2_000;
const PASSWORD_LOGINS = 300;
const PASSWORD_LOGINS_PER_S = 50;
const STORM_LIMIT_MS = 90_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const home = (h: number): string => `h${String(h).padStart(5, '0')}`;

async function until(cond: () => boolean, ms: number): Promise<boolean> {
  const end = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

async function loadOf(node: { httpUrl: string }): Promise<LoadFigures> {
  const res = await fetch(`${node.httpUrl}/health/load`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as LoadFigures;
}

/** Accounts with one Argon2 hash for all (a hash is ~24 ms; the bench logs in by token, not password), buddies in pairs, and an A8 session token per endpoint. */
async function seed(location: StoreLocation, homes: number): Promise<string[]> {
  if (location.kind === 'postgres') await migrateStore(location);
  const store = await openStore(location);
  const hash = await hashPassword(PW);
  const expiresAt = Date.now() + 3600_000;
  const tokens: string[] = [];
  try {
    await store.transaction(async (tx) => {
      for (let h = 0; h < homes; h++) await tx.createAccount(home(h), `Home ${h}`, hash);
      for (let h = 0; h + 1 < homes; h += 2) await tx.addBuddies(home(h), home(h + 1));
      for (let i = 0; i < homes * PER_HOME; i++) {
        const token = randomBytes(32).toString('base64url');
        tokens.push(token);
        await tx.addLoginSession(hashToken(token), home(Math.floor(i / PER_HOME)), `${home(Math.floor(i / PER_HOME))}-e${i % PER_HOME}`, expiresAt);
      }
    });
  } finally {
    await store.close();
  }
  return tokens;
}

/** Relay and presence traffic for `ms`: signals between siblings and endpoints dropping and coming back. Returns relay one-way latencies. */
async function traffic(fleet: Fleet, ms: number, during: (elapsed: number) => Promise<void>): Promise<{ relayMs: number[]; signalErrors: number; reconnects: number }> {
  const sent = new Map<string, number>();
  const relayMs: number[] = [];
  fleet.onSignal = (_to, s) => {
    const linkId = s.payload.kind === 'connect' ? s.payload.linkId : '';
    const t0 = sent.get(linkId);
    if (t0 !== undefined) relayMs.push(performance.now() - t0);
    sent.delete(linkId);
  };
  let signalErrors = 0;
  let reconnects = 0;
  let n = 0;
  const tickMs = 50;
  const pick = (): FleetEndpoint => fleet.endpoints[Math.floor(Math.random() * fleet.endpoints.length)]!;
  const timer = setInterval(() => {
    for (let i = 0; i < (SIGNALS_PER_S * tickMs) / 1000; i++) {
      const from = pick();
      if (from.state !== 'online') continue;
      const base = from.id.endpointId.slice(0, -1);
      const to = `${base}${(Number(from.id.endpointId.slice(-1)) + 1 + Math.floor(Math.random() * (PER_HOME - 1))) % PER_HOME}`;
      const linkId = `L${n++}`;
      sent.set(linkId, performance.now());
      from.signal(to, linkId).catch(() => {
        sent.delete(linkId);
        signalErrors += 1;
      });
    }
    for (let i = 0; i < (RECONNECTS_PER_S * tickMs) / 1000; i++) {
      const e = pick();
      if (e.state === 'online') {
        e.dropConnection();
        reconnects += 1;
      }
    }
  }, tickMs);
  const start = performance.now();
  try {
    while (performance.now() - start < ms) {
      await sleep(1000);
      await during(performance.now() - start);
    }
  } finally {
    clearInterval(timer);
    fleet.onSignal = () => undefined;
  }
  return { relayMs, signalErrors, reconnects };
}

/** One password login on a fresh socket (a new device of a home): ok, or the refusal's code and message. */
export async function passwordLogin(url: string, account: string, endpointId: string, address: string): Promise<{ code: string; message: string }> {
  // As a device opens it: a busy node may refuse the handshake itself (A17).
  const { ws, channel } = openAccessSocket(url, { log, timeoutMs: 15_000, headers: { 'x-forwarded-for': address } });
  ws.on('message', (d: Buffer) => channel.receive(d));
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', resolve);
      ws.on('error', (err) => reject(err instanceof SweepError ? err : new SweepError('OFFLINE', `no socket: ${err.message}`)));
    });
    const fingerprint = randomBytes(32).toString('hex').toUpperCase().match(/../g)!.join(':');
    const signingKey = rawPublicKey(ed25519KeyPair().publicKey);
    await channel.request('login', { username: account, password: PW, endpointId, kind: 'phone', label: endpointId, signingKey, dtlsFingerprint: `sha-256 ${fingerprint}` });
    return { code: 'OK', message: '' };
  } catch (err) {
    const e = toSweepError(err);
    return { code: e.code, message: e.message };
  } finally {
    channel.close('done');
    ws.terminate();
  }
}

/** PASSWORD_LOGINS password logins at PASSWORD_LOGINS_PER_S from their own addresses and homes, while the fleet storms back. */
async function passwordBurst(url: string, homes: number): Promise<Record<string, unknown>> {
  const results: Array<Promise<{ code: string; message: string }>> = [];
  for (let i = 0; i < PASSWORD_LOGINS; i++) {
    const h = (i * 7) % homes;
    results.push(passwordLogin(url, home(h), `${home(h)}-pw${i}`, `10.250.${i >> 8}.${i & 255}`));
    await sleep(1000 / PASSWORD_LOGINS_PER_S);
  }
  const done = await Promise.all(results);
  const count = (code: string): number => done.filter((r) => r.code === code).length;
  const limited = done.filter((r) => r.code === 'RATE_LIMITED');
  const others = done.filter((r) => r.code !== 'OK' && r.code !== 'RATE_LIMITED');
  return {
    attempts: done.length,
    accepted: count('OK'),
    rateLimited: limited.length,
    rateLimitedWithRetryAfter: limited.filter((r) => /retry after \d+ s/.test(r.message)).length,
    rateLimitedExample: limited[0]?.message ?? '',
    errors: others.length,
    errorCodes: [...new Set(others.map((r) => r.code))].join(','),
    errorExample: others[0]?.message ?? '',
  };
}

/** CPU seconds a process has used (Linux /proc/PID/stat: utime and stime, in clock ticks of 1/100 s). */
function cpuSecondsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds used so far by the running processes named `comm` (all of PostgreSQL's, say); those that exited are not counted. */
function cpuSecondsOfCommand(comm: string): number {
  let total = 0;
  for (const pid of readdirSync('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === comm) total += cpuSecondsOf(Number(pid)) || 0;
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** TCP connections the kernel dropped because a listener's accept queue was full (host-wide, Linux). */
function listenOverflows(): number {
  try {
    const lines = readFileSync('/proc/net/netstat', 'utf8').split('\n').filter((l) => l.startsWith('TcpExt:'));
    const [names, values] = lines.map((l) => l.split(/\s+/));
    const i = names?.indexOf('ListenOverflows') ?? -1;
    return i > 0 ? Number(values?.[i]) : Number.NaN;
  } catch {
    return Number.NaN;
  }
}

/** When the node's latest start began listening (epoch ms), from its log. */
function listeningAt(logFile: string): number {
  const line = readFileSync(logFile, 'utf8').split('\n').findLast((l) => l.includes('"access server listening"'));
  return line ? (JSON.parse(line) as { time: number }).time : Number.NaN;
}

interface Setup {
  logFile: string;
  fleet: Fleet;
  homes: number;
  /** A PostgreSQL + NATS node (its CPU neighbours include PostgreSQL). */
  cluster: boolean;
}

/** Every endpoint logs in once (A8, by token), then relay and presence traffic flows for HOLD_MS while the node's own figures are read. */
async function hold(s: Setup, node: SupervisedNode): Promise<Record<string, number>> {
  const t0 = performance.now();
  const started = await s.fleet.startAll(64, t0 + 240_000);
  const loginAllMs = performance.now() - t0;
  const windows: LoadFigures[] = [];
  let lastRead = 0;
  const flow = await traffic(s.fleet, HOLD_MS, async (elapsed) => {
    // A window read at `elapsed` began no earlier than `elapsed - 2 windows`: all of it under traffic.
    if (elapsed < 2 * LOAD_WINDOW_MS || elapsed - lastRead < LOAD_WINDOW_MS / 2) return;
    lastRead = elapsed;
    windows.push(await loadOf(node));
  });
  await until(() => s.fleet.online === ENDPOINTS, 30_000);
  const held = await loadOf(node);
  return {
    endpoints: held.endpoints,
    sockets: held.sockets,
    rssMb: held.rssMb,
    heapUsedMb: held.heapUsedMb,
    loopDelayP99Ms: Math.max(...windows.map((w) => w.loopDelayMs.p99)),
    loopDelayMaxMs: Math.max(...windows.map((w) => w.loopDelayMs.max)),
    loadWindows: windows.length,
    loginAllMs: round(loginAllMs, 0),
    loggedInFirstTry: started,
    signalsPerS: SIGNALS_PER_S,
    reconnectsPerS: RECONNECTS_PER_S,
    relayP50Ms: round(percentile(flow.relayMs, 0.5), 2),
    relayP99Ms: round(percentile(flow.relayMs, 0.99), 2),
    relayed: flow.relayMs.length,
    signalErrors: flow.signalErrors,
    reconnects: flow.reconnects,
    presenceNotes: s.fleet.presenceNotes,
  };
}

/** SIGKILL, RestartSec, the same node on the same data; the fleet comes back by itself while PASSWORD_LOGINS arrive. */
async function storm(s: Setup, node: SupervisedNode): Promise<Record<string, unknown>> {
  const { fleet } = s;
  const before = { ...fleet.logins };
  const overflowsBefore = listenOverflows();
  const killedAt = performance.now();
  const killedAtEpoch = Date.now();
  const starts = node.startCount;
  await node.crash();
  // The supervisor starts it node after RestartSec; the node's own log says when it listened
  // (the bench, busy with the fleet, notices later).
  await node.listening(starts);
  const listeningAfterMs = listeningAt(s.logFile) - killedAtEpoch;
  const lags: number[] = [];
  const sampler = setInterval(() => {
    loadOf(node).then(
      (w) => lags.push(w.loopDelayMs.p99),
      () => undefined,
    );
  }, LOAD_WINDOW_MS / 2);
  // Each second: how much of one core the node used (idle seconds while clients wait show a
  // back-off too long), and what its neighbours on the same cores used: the fleet (this process)
  // and, in a cluster, PostgreSQL.
  const cpu = { node: [] as number[], fleet: [] as number[], postgres: [] as number[] };
  const cpuNow = (): { node: number; fleet: number; postgres: number } => {
    const { user, system } = process.cpuUsage();
    return { node: cpuSecondsOf(node.pid), fleet: (user + system) / 1e6, postgres: s.cluster ? cpuSecondsOfCommand('postgres') : 0 };
  };
  let cpuBefore = cpuNow();
  const cpuSampler = setInterval(() => {
    const now = cpuNow();
    for (const k of ['node', 'fleet', 'postgres'] as const) cpu[k].push(round(100 * (now[k] - cpuBefore[k]), 0));
    cpuBefore = now;
  }, 1000);
  const burst = passwordBurst(node.url, s.homes);
  const allBack = await until(() => fleet.online === ENDPOINTS, STORM_LIMIT_MS);
  const passwords = await burst;
  clearInterval(sampler);
  clearInterval(cpuSampler);
  const after = await loadOf(node);
  const nodeUp = node.alive && node.startCount === starts + 1 ? 1 : 0;
  const backAt = fleet.endpoints.map((e) => (e.state === 'online' && e.onlineAt > killedAt ? e.onlineAt - killedAt : Number.POSITIVE_INFINITY));
  const share = (sec: number): number => round((100 * backAt.filter((ms) => ms <= sec * 1000).length) / ENDPOINTS, 2);
  const allBackMs = allBack ? Math.max(...backAt) : Number.NaN;
  const finite = backAt.filter((ms) => ms !== Number.POSITIVE_INFINITY);
  const perSecond = Array.from({ length: Math.floor(Math.max(0, ...finite) / 1000) + 1 }, () => 0);
  for (const ms of finite) perSecond[Math.floor(ms / 1000)]! += 1;
  if (process.env.SWEEP_BENCH_CPU_PROF) {
    node.signal('SIGTERM');
    while (node.alive) await sleep(50);
  }
  return {
    listeningAfterMs: round(listeningAfterMs, 0),
    allBackMs: round(allBackMs, 0),
    allBackAfterListeningMs: round(allBackMs - listeningAfterMs, 0),
    back99pctMs: round(percentile(backAt, 0.99), 0),
    back: backAt.filter((ms) => ms !== Number.POSITIVE_INFINITY).length,
    backPct5s: share(5),
    backPct10s: share(10),
    backPct20s: share(20),
    backPct30s: share(30),
    loginsByProof: fleet.logins.proof - before.proof,
    loginsByToken: fleet.logins.resume - before.resume,
    loginsByPassword: fleet.logins.password - before.password,
    loginsRefusedBusy: after.loginsRefusedBusy,
    passwordChecksRefusedBusy: after.passwordChecksRefusedBusy,
    loopDelayP99Ms: lags.length ? Math.max(...lags) : Number.NaN,
    rssMbAfter: after.rssMb,
    nodeUp,
    passwordLogins: passwords,
    clientFailures: Object.fromEntries(fleet.failures),
    backPerSecond: perSecond.join(' '),
    nodeCpuPctPerSecondFromListening: cpu.node.join(' '),
    fleetCpuPctPerSecondFromListening: cpu.fleet.join(' '),
    ...(s.cluster && { postgresCpuPctPerSecondFromListening: cpu.postgres.join(' ') }),
    hostListenOverflows: listenOverflows() - overflowsBefore,
  };
}

/** The figures of one node holding ENDPOINTS endpoints, then of its restart storm; `cluster` makes it a PostgreSQL + NATS node. */
export async function tenThousand(t: Test, cluster?: { pgUrl: string; natsUrl: string }): Promise<Record<string, unknown>> {
  const dir = mkdtempSync(join(tmpdir(), 'sweep-bench-10k-'));
  // SWEEP_BENCH_NODE_LOG=FILE keeps the node's log there (the run's directory goes at the end).
  t.teardown(() => {
    if (process.env.SWEEP_BENCH_NODE_LOG) copyFileSync(join(dir, 'node.log'), process.env.SWEEP_BENCH_NODE_LOG);
    rmSync(dir, { recursive: true, force: true });
  });
  const data = join(dir, 'data');
  await loadOrCreateServerKey(data);
  writeFileSync(join(dir, 'index.html'), '<!doctype html>');
  const loadAtStart = loadavg()[0] ?? 0;
  const homes = ENDPOINTS / PER_HOME;
  const t0 = performance.now();
  const tokens = await seed(cluster ? { kind: 'postgres', url: cluster.pgUrl } : { kind: 'sqlite', dataDir: data }, homes);
  const seedMs = performance.now() - t0;
  const port = await freePort();
  const args = ['--data', data, '--web', dir, '--port', String(port), '--trusted-proxy', '127.0.0.1', ...(cluster ? ['--db', cluster.pgUrl, '--bus', cluster.natsUrl, '--node-id', 'n10k'] : [])];
  const logFile = join(dir, 'node.log');
  const bundle = await buildBundle();
  // SWEEP_BENCH_CPU_PROF=DIR: the restarted node writes a CPU profile of the storm there (stopped by SIGTERM to write it).
  const profileDir = process.env.SWEEP_BENCH_CPU_PROF;
  const node = await SupervisedNode.start(t, { bundle, args, logFile, restartSecMs: RESTART_SEC_MS, nodeArgs: profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [] });
  const fleet = new Fleet({ url: node.url, password: PW, log, timeoutMs: 10_000, backoff: RECONNECT_BACKOFF });
  t.teardown(() => fleet.stop());
  for (let i = 0; i < ENDPOINTS; i++) {
    const h = Math.floor(i / PER_HOME);
    fleet.add({ account: home(h), endpointId: `${home(h)}-e${i % PER_HOME}`, kind: i % PER_HOME === 0 ? 'deskphone' : 'phone', address: `10.${h >> 16}.${(h >> 8) & 255}.${h & 255}`, token: tokens[i]! });
  }
  // The fleet stands for devices on other machines: it yields the CPU to the node it measures.
  const priority = getPriority();
  setPriority(Math.min(19, priority + 10));
  t.teardown(() => {
    try {
      setPriority(priority);
    } catch {
      // Raising it again needs privileges; what runs after this bench runs at the lower priority.
    }
  });
  const setup = { logFile, fleet, homes, cluster: cluster !== undefined };
  const held = { ...(await hold(setup, node)), seedMs: round(seedMs, 0) };
  const restartStorm = { store: cluster ? 'postgres+nats' : 'sqlite+in-process bus', ...(await storm(setup, node)) };
  fleet.stop();
  // The host is shared: its load says how much of the two cores the node and the fleet had.
  const host = { cpus: availableParallelism(), loadAvg1mAtStart: round(loadAtStart, 1), loadAvg1mAtEnd: round(loadavg()[0] ?? 0, 1) };
  return { held, restartStorm, host };
}
