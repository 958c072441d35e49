import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { WebSocketServer, type WebSocket } from 'ws';
import { MAX_MESSAGE_BYTES } from '../core/protocol/validate.ts';
import { issueNonce } from './resume-proof.ts';
import { NONCE_HEADER, NONCE_PARAM, RETRY_AFTER_PARAM } from '../core/protocol/access.ts';
import { SweepError, toWireError } from '../core/errors.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import { NS, type Logger } from '../platform/log.ts';
import { AccessConnection, CLOSE } from './connection.ts';
import { LoginRateLimiter, type RateRule } from './rate-limit.ts';
import { ClientAddresses } from './client-address.ts';
import { PasswordGate, type PasswordCheckOptions } from './password-gate.ts';
import { OnlineRegistry } from './registry.ts';
import { loadOrCreateServerKey } from './server-key.ts';
import { handleProvision, type ProvisionContext } from './provisioning.ts';
import { PROVISION_PATH } from '../core/protocol/provision.ts';
import { serveStatic } from './static.ts';
import type { Bus } from './bus/bus.ts';
import { InProcessBus } from './bus/in-process-bus.ts';
import { NatsBus } from './bus/nats-bus.ts';
import { NodeBus } from './node-bus.ts';
import { localLimiter, PostgresLoginLimiter, type LoginLimiter } from './shared-rate-limit.ts';
import { BackgroundWork } from './background-work.ts';
import { NodeLiveness, type LivenessOptions } from './node-liveness.ts';
import { OnlineRows } from './online-rows.ts';
import { Revocations } from './revocations.ts';
import { EndpointKind } from '../core/protocol/common.ts';
import type { OnlineRow } from './store.ts';
import { checkIceOptions, iceConfigured, type IceOptions } from './ice.ts';
import type { AccountStore } from './store.ts';
import { openStore, type StoreLocation } from './store/open.ts';
import { loadOrCreateVapidKeys } from './push/vapid.ts';
import { DEFAULT_HISTORY_DAYS } from './history.ts';
import { PushService, type PushOptions } from './push/push-service.ts';
import { LOAD_PATH, LoadMonitor } from './load-monitor.ts';
import { Heartbeat } from './heartbeat.ts';
import { LoginGate, type LoginGateOptions } from './login-gate.ts';

export interface AccessServerOptions {
  /** Holds server-key.pem, and accounts.db unless `store` says otherwise; created if missing. */
  dataDir: string;
  /** Where accounts and sessions live; default SQLite (accounts.db in the data dir). */
  store?: StoreLocation;
  /** The bus between nodes: a nats:// URL (several comma-separated) for a cluster; default in-process (one node). */
  bus?: string;
  /** This node's id in the store and on the bus; default a random one per start. */
  nodeId?: string;
  /** Lease renewal and lifetime (node liveness, the reaper, fencing). */
  liveness?: LivenessOptions;
  /** Default 127.0.0.1. */
  host?: string;
  /** 0 picks a free port. */
  port?: number;
  /** Lifetime of endpoint certificates; default 24 h. */
  certTtlMs?: number;
  /** Lifetime of login session tokens (A7); default 1 h. */
  sessionTtlMs?: number;
  log: Logger;
  clock?: Clock;
  rateLimit?: { perUsername?: RateRule; perAddress?: RateRule };
  /** Static files for GET requests (the smartphone web client); default phone/dist. */
  webRoot?: string;
  /** Ping interval; a socket that missed one pong is dropped. Default 30 s. */
  heartbeatMs?: number;
  /** A socket must log in within this time. Default 30 s. */
  loginTimeoutMs?: number;
  /**
   * A11: reverse proxies (addresses or CIDR ranges) whose X-Forwarded-For names the client for
   * the per-address login limit. Empty by default: the socket's peer is the client.
   */
  trustedProxies?: readonly string[];
  /** A11: bounds on the Argon2 work of logins (default 2 at once, 16 waiting). */
  passwordChecks?: PasswordCheckOptions;
  /** A11: bounds on token and proof logins in progress (default 32 at once, the rest waiting at most 5 s), or the gate itself. */
  logins?: Omit<LoginGateOptions, 'now'> | LoginGate;
  /** A13: STUN and TURN servers for endpoints' links; none by default (links on the local network only). */
  ice?: IceOptions;
  /** A16: Web Push (VAPID keys in the data dir, made on first start). */
  push?: PushOptions;
  /** A15: days a household's call records are kept; default 90. */
  historyDays?: number;
}

export const ACCESS_PATH = '/access';
/** 200 only while the node reaches its store and its bus (a load balancer's health check); 503 otherwise. */
export const READY_PATH = '/health/ready';

export interface Readiness {
  ready: boolean;
  node: string;
  store: boolean;
  bus: boolean;
}
const LISTEN_BACKLOG = 4096;
const DEFAULT_WEB_ROOT = fileURLToPath(new URL('../phone/dist', import.meta.url));

/**
 * The access server (DESIGN.md §1–2): accounts, login with endpoint certificates, presence,
 * and the rendezvous relay, over a WebSocket at /access; /health and the web client over HTTP.
 */
export class AccessServer {
  readonly url: string;
  readonly httpUrl: string;
  private readonly connections = new Set<AccessConnection>();
  /** What else ends with the server (after its sockets, before the store). */
  private readonly closers: Array<() => Promise<void>> = [];
  private closing: Promise<void> | undefined;
  private heartbeat: Heartbeat<AccessConnection> | undefined;

  private constructor(
    readonly store: AccountStore,
    readonly publicKeyRaw: string,
    private readonly http: Server,
    private readonly wss: WebSocketServer,
    private readonly log: Logger,
    readonly registry: OnlineRegistry,
    /** A11: the server's Argon2 work (checks run, logins refused busy). */
    readonly passwordChecks: PasswordGate,
    readonly nodeId: string,
    private readonly nodeBus: NodeBus,
    private readonly background: BackgroundWork,
    private readonly liveness: NodeLiveness,
  ) {
    const { address, port } = http.address() as AddressInfo;
    const host = address.includes(':') ? `[${address}]` : address;
    this.httpUrl = `http://${host}:${port}`;
    this.url = `ws://${host}:${port}${ACCESS_PATH}`;
  }

  static async start(opts: AccessServerOptions): Promise<AccessServer> {
    const log = opts.log.child({ ns: NS.server });
    const clock = opts.clock ?? systemClock;
    const host = opts.host ?? '127.0.0.1';
    const port = opts.port ?? 0;
    if (!Number.isInteger(port) || port < 0 || port > 65535) {
      throw new SweepError('INVALID_CONFIG', `port: ${port} is not a port number (0-65535)`);
    }
    if (opts.ice) checkIceOptions(opts.ice);
    const addresses = new ClientAddresses(opts.trustedProxies ?? []);
    const logins = opts.logins instanceof LoginGate ? opts.logins : new LoginGate({ onRefusals: (report) => log.info(report, 'logins refused busy'), ...opts.logins });
    const passwordChecks = new PasswordGate({ yieldTo: () => logins.refuseWhileCrowded(), ...opts.passwordChecks });
    // Where a start's time goes (logged when listening): a node restarted under a storm starts on busy cores.
    const took = startPhases();
    const key = await loadOrCreateServerKey(opts.dataDir);
    const vapid = await loadOrCreateVapidKeys(opts.dataDir);
    took('keys');
    const store = await openStore(opts.store ?? { kind: 'sqlite', dataDir: opts.dataDir });
    took('store');
    // A12: session tokens that expired while the server was down are dropped at once.
    await store.purgeExpiredLoginSessions(clock.now());
    took('purge');
    const registry = new OnlineRegistry();
    const nodeId = opts.nodeId ?? `node-${randomBytes(6).toString('hex')}`;
    let bus: Bus;
    try {
      bus = opts.bus ? await NatsBus.connect({ url: opts.bus, name: nodeId, onStatus: (event, data, routine) => log[routine ? 'debug' : 'info']({ event, data: String(data) }, 'bus status') }) : new InProcessBus();
    } catch (err) {
      await store.close();
      throw err;
    }
    took('bus');
    const nodeBus = new NodeBus(bus, registry, log, (target, signal) => target.peer.notify('signal', signal), store);
    const background = new BackgroundWork(log);
    // Set once the server exists: the liveness hooks reach its connections.
    let fence: (reason: string) => void = () => undefined;
    const readiness = (): Promise<Readiness> => checkReadiness(store, bus, liveness, nodeId, clock);
    const onlineRows = new OnlineRows(store, (endpoint) => nodeBus.announce(endpoint), log);
    const revocations = new Revocations(store, log);
    const liveness = new NodeLiveness(
      store,
      bus,
      nodeId,
      clock,
      log,
      { fence: (reason) => fence(reason), reaped: (rows) => announceReaped(nodeBus, rows), renewed: () => background.add(Promise.all([onlineRows.retry(), revocations.retry()])) },
      opts.liveness,
    );
    try {
      // The embedded default is one node: whatever a previous run left online is stale.
      if (store.dialect === 'sqlite') await store.reapExpiredNodes(Number.MAX_SAFE_INTEGER);
      await liveness.start();
      took('lease');
    } catch (err) {
      await bus.close();
      await store.close();
      throw err;
    }
    // A11: a cluster's login limits are shared by every node (in PostgreSQL); one node keeps them in memory.
    const location = opts.store ?? { kind: 'sqlite' as const, dataDir: opts.dataDir };
    const limiter: LoginLimiter = location.kind === 'postgres' ? new PostgresLoginLimiter(location.url, opts.rateLimit ?? {}) : localLimiter(new LoginRateLimiter({ clock, ...opts.rateLimit }));
    const webRoot = opts.webRoot ?? DEFAULT_WEB_ROOT;
    const load = new LoadMonitor({ clock });
    // Set once the server exists: the figures count its sockets.
    let loadFigures = (): unknown => undefined;
    const provisioning: ProvisionContext = { store, limiter, clock, log, publicKeyRaw: key.publicKeyRaw, addresses };
    const http = createServer((req, res) => {
      if (req.method === 'POST' && (req.url ?? '/').split('?')[0] === PROVISION_PATH) {
        handleProvision(provisioning, req, res).catch((err: unknown) => {
          log.error({ err }, 'provisioning request failed');
          res.destroy();
        });
        return;
      }
      if ((req.url ?? '/').split('?')[0] === READY_PATH) {
        void readiness().then((r) => res.writeHead(r.ready ? 200 : 503, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(r)));
        return;
      }
      if (req.method === 'GET' && (req.url ?? '/').split('?')[0] === LOAD_PATH) {
        res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify(loadFigures()));
        return;
      }
      handleHttp(webRoot, key.publicKeyRaw, req, res, log);
    });
    // A17: a node whose logins are full refuses the handshake itself, before it costs more.
    const verifyClient = (_info: unknown, accept: (ok: boolean, code?: number, body?: string, headers?: Record<string, string>) => void): void => {
      const refusal = logins.refuseNow();
      if (!refusal) return accept(true);
      accept(false, 503, JSON.stringify({ error: { ...toWireError(refusal, true), message: `handshake: ${refusal.message}` } }), { 'Content-Type': 'application/json', 'Retry-After': String(Math.ceil((refusal.retryAfterMs ?? 0) / 1000)) });
    };
    const wss = new WebSocketServer({ server: http, path: ACCESS_PATH, maxPayload: MAX_MESSAGE_BYTES, verifyClient });
    // A14: a nonce with the upgrade answer spares a proof login the `challenge` round trip (a restart storm's crowd makes one less).
    wss.on('headers', (headers, req) => {
      if (asks(req, NONCE_PARAM)) headers.push(`${NONCE_HEADER}: ${issueNonce(key, clock.now()).nonce}`);
    });
    try {
      await listen(http, host, port);
      took('listen');
    } catch (err) {
      wss.close();
      await limiter.close();
      await liveness.stop();
      await bus.close();
      await store.close();
      const code = (err as NodeJS.ErrnoException).code ?? 'error';
      throw new SweepError('INVALID_CONFIG', `cannot listen on ${host}:${port}: ${code}`, { cause: err });
    }

    const server = new AccessServer(store, key.publicKeyRaw, http, wss, log, registry, passwordChecks, nodeId, nodeBus, background, liveness);
    fence = (reason) => server.fence(reason);
    server.closers.push(() => limiter.close());
    load.start();
    loadFigures = () => load.figures({ node: nodeId, sockets: server.connections.size, endpoints: registry.size, loginsRefusedBusy: logins.refusedBusy, passwordChecksRefusedBusy: passwordChecks.refusedBusy });
    server.closers.push(() => {
      load.stop();
      return Promise.resolve();
    });
    const connections = server.connections;
    const heartbeat = new Heartbeat<AccessConnection>(clock, opts.heartbeatMs ?? 30_000);
    server.heartbeat = heartbeat;
    heartbeat.start();
    const ctx = {
      store,
      registry,
      limiter,
      passwords: passwordChecks,
      logins,
      key,
      clock,
      log,
      certTtlMs: opts.certTtlMs ?? 24 * 3600_000,
      sessionTtlMs: opts.sessionTtlMs ?? 3600_000,
      loginTimeoutMs: opts.loginTimeoutMs ?? 30_000,
      ice: iceConfigured(opts.ice) ? opts.ice : undefined,
      nodeId,
      nodeBus,
      background: (work: Promise<unknown>) => background.add(work),
      onlineRows,
      revocations,
      push: new PushService(store, vapid, log.child({ ns: 'server:push' }), opts.push),
      historyRetentionMs: (opts.historyDays ?? DEFAULT_HISTORY_DAYS) * 24 * 3600_000,
    };
    wss.on('connection', (ws: WebSocket, req: IncomingMessage) => {
      if (server.closing) {
        ws.terminate();
        return;
      }
      const conn = new AccessConnection(ws, addresses.resolve(req.socket.remoteAddress, req.headers['x-forwarded-for']), ctx, asks(req, RETRY_AFTER_PARAM));
      connections.add(conn);
      heartbeat.add(conn);
      ws.on('message', (data, isBinary) => conn.receive(data, isBinary));
      ws.on('pong', () => conn.pong());
      ws.on('error', (err) => log.warn({ address: conn.address, reason: err.message }, 'socket error'));
      ws.on('close', (code) => {
        connections.delete(conn);
        heartbeat.delete(conn);
        if (code === 1009) log.warn({ address: conn.address, limit: MAX_MESSAGE_BYTES }, 'closed a socket that sent an oversized message');
        conn.onSocketClosed(code);
      });
    });
    wss.on('error', (err) => log.error({ err }, 'websocket server error'));
    http.on('clientError', (err, socket) => {
      log.debug({ reason: err.message }, 'bad HTTP request');
      socket.destroy();
    });
    log.info({ url: server.url, publicKey: key.publicKeyRaw, trustedProxies: addresses.count, startMs: took.phases, processUpMs: Math.round(process.uptime() * 1000) }, 'access server listening');
    return server;
  }

  /** Sockets currently open (logged in or not). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /** Ready for traffic: the store and the bus reachable (the lease renewed, the bus up). */
  get ready(): boolean {
    return this.liveness.ready;
  }

  /** Fencing: every socket closes, so its endpoint logs in again (elsewhere, or here once healthy). */
  fence(reason: string): void {
    this.log.warn({ node: this.nodeId, sockets: this.connections.size, reason }, 'fencing: closing every socket');
    for (const c of [...this.connections]) c.closeSocket(CLOSE.fenced, reason);
  }

  /** Idempotent: closes every socket, the listener and the database. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    this.heartbeat?.stop();
    for (const c of [...this.connections]) c.closeSocket(CLOSE.shutdown, 'server shutting down');
    // Give close frames a moment, then cut whatever is left.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, 500);
      const check = (): void => {
        if (this.connections.size === 0) {
          clearTimeout(timer);
          resolve();
        } else setImmediate(check);
      };
      check();
    });
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.http.closeAllConnections();
    await new Promise<void>((resolve) => this.http.close(() => resolve()));
    // Logouts' store writes (online rows) finish before the store and the bus close.
    await this.background.settle(5_000);
    await this.liveness.stop();
    for (const close of this.closers) await close().catch((err: unknown) => this.log.warn({ err }, 'close failed'));
    this.nodeBus.close();
    await this.nodeBus.bus.close();
    await this.store.close();
    this.log.info('access server closed');
  }
}

function listen(http: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    http.once('error', onError);
    // A restarted node takes its whole fleet back within seconds, and Node 20 accepts one
    // connection per turn of its event loop (libuv #3696): Node's default queue of 511 overflowed,
    // each dropped connection waiting for a TCP retransmission (1 s, 3 s…). Capped by somaxconn.
    http.listen({ port, host, backlog: LISTEN_BACKLOG }, () => {
      http.off('error', onError);
      resolve();
    });
  });
}

function handleHttp(webRoot: string, publicKey: string, req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' }).end('method not allowed\n');
    return;
  }
  if (path === '/server.json') {
    // The web client's trust anchor (P3): served by the same origin that serves the client itself.
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify({ publicKey, accessPath: ACCESS_PATH }));
    return;
  }
  if (path === '/health') {
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' }).end(JSON.stringify({ ok: true }));
    return;
  }
  serveStatic(webRoot, req, res).catch((err: unknown) => {
    log.warn({ err, path }, 'static file not served');
    if (!res.headersSent) res.writeHead(500).end();
    else res.destroy();
  });
}

/** A4: the reaper removed a dead node's logins; their followers hear they are offline. */
function announceReaped(nodeBus: NodeBus, rows: readonly OnlineRow[]): void {
  for (const row of rows) {
    const kind = EndpointKind.safeParse(row.kind);
    if (kind.success) nodeBus.announce({ endpointId: row.endpointId, account: row.account, kind: kind.data, label: row.label, online: false });
  }
}

/** Asks the store now (bounded to 2 s) and looks at the bus and the lease. */
async function checkReadiness(store: AccountStore, bus: Bus, liveness: NodeLiveness, node: string, clock: Clock): Promise<Readiness> {
  let timer: NodeJS.Timeout | undefined;
  const storeOk = await Promise.race([
    store.countFreshLeases(clock.now(), node).then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), 2_000))),
  ]);
  clearTimeout(timer);
  const busOk = bus.connected;
  return { ready: storeOk && busOk && liveness.ready, node, store: storeOk, bus: busOk };
}

/** The handshake's URL asks for something (A14, A17: `param=1`). */
function asks(req: IncomingMessage, param: string): boolean {
  const query = (req.url ?? '').split('?')[1];
  return query !== undefined && new URLSearchParams(query).get(param) === '1';
}

/** Milliseconds each named step of a start took, in order. */
function startPhases(): ((name: string) => void) & { phases: Record<string, number> } {
  let last = performance.now();
  const phases: Record<string, number> = {};
  return Object.assign(
    (name: string) => {
      const now = performance.now();
      phases[name] = Math.round(now - last);
      last = now;
    },
    { phases },
  );
}
