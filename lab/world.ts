import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AccessServer } from '../server/access-server.ts';
import type { StoreLocation } from '../server/store/open.ts';
import type { IceOptions } from '../server/ice.ts';
import type { PushOptions } from '../server/push/push-service.ts';
import { hashPassword } from '../server/passwords.ts';
import { SimulatedAnalysingSink, SimulatedToneSource } from '../drivers/audio/simulated.ts';
import { EndpointConfig } from '../firmware-config/endpoint-config.ts';
import type { EndpointKind } from '../core/protocol/common.ts';
import { Endpoint } from '../runtime/endpoint.ts';
import { systemClock, type Clock } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';

export interface WorldEndpointSpec {
  id: string;
  account: string;
  kind: EndpointKind;
  label: string;
  /** The simulated microphone's tone, so a listener can tell whom it hears. */
  frequencyHz: number;
  invites?: 'auto' | 'ask';
  /** S10 'ask': how long a pushed call rings here, ms. */
  inviteTimeoutMs?: number;
  pushTo?: string[];
  /** Which server node it logs in to (an index into `World.servers`); default the first. */
  node?: number;
  /** H7: config `calls.doNotDisturb`. */
  doNotDisturb?: boolean;
}

/** Several server nodes on one store and one bus (DESIGN.md §7), instead of one embedded server. */
export interface WorldCluster {
  nodes: number;
  store: StoreLocation;
  /** nats:// URL. */
  bus: string;
}

export interface WorldOptions {
  accounts: Array<{ name: string; displayName: string }>;
  buddies: Array<[string, string]>;
  endpoints: WorldEndpointSpec[];
  log: Logger;
  clock?: Clock;
  /** A directory to keep state in; a fresh temporary one (removed on close) otherwise. */
  dir?: string;
  host?: string;
  port?: number;
  sweepTimeoutMs?: number;
  /** The engine's crypto port on every endpoint: node:crypto (default) or WebCrypto, as the phone page. */
  crypto?: 'node' | 'webcrypto';
  /** A13: STUN/TURN servers the access server hands out. */
  ice?: IceOptions;
  /** A16: the access server's Web Push options (tests: a local push service over loopback http). */
  push?: PushOptions;
  /** Links no call uses close after this long (L3). */
  idleCloseMs?: number;
  ringTimeoutMs?: number;
  cluster?: WorldCluster;
}

export interface WorldEndpoint {
  endpoint: Endpoint;
  source: SimulatedToneSource;
  sink: SimulatedAnalysingSink;
  spec: WorldEndpointSpec;
}

/**
 * An access server and endpoints in one process on loopback with simulated audio: the lab,
 * the scenario tests and the benchmarks all run on it. Passwords are generated per run.
 */
export class World {
  private closed = false;
  private constructor(
    /** Every server node; `server` is the first. */
    readonly servers: AccessServer[],
    readonly endpoints: Map<string, WorldEndpoint>,
    readonly passwords: Map<string, string>,
    readonly dir: string,
    private readonly ownsDir: boolean,
    private readonly opts: WorldOptions,
  ) {}

  static async start(opts: WorldOptions): Promise<World> {
    const ownsDir = !opts.dir;
    const dir = opts.dir ?? (await mkdtemp(join(tmpdir(), 'sweep-world-')));
    const servers: AccessServer[] = [];
    // One after another: the first creates the server key the others read from the same data dir.
    for (let n = 0; n < (opts.cluster?.nodes ?? 1); n++) {
      try {
        servers.push(
          await AccessServer.start({
            dataDir: join(dir, 'server'),
            host: opts.host ?? '127.0.0.1',
            port: n === 0 ? (opts.port ?? 0) : 0,
            log: opts.cluster ? opts.log.child({ node: n }) : opts.log,
            ...(opts.cluster ? { store: opts.cluster.store, bus: opts.cluster.bus, nodeId: `node-${n}` } : {}),
            ...(opts.clock ? { clock: opts.clock } : {}),
            ...(opts.ice ? { ice: opts.ice } : {}),
            ...(opts.push ? { push: opts.push } : {}),
          }),
        );
      } catch (err) {
        for (const s of servers) await s.close();
        throw err;
      }
    }
    const server = servers[0] as AccessServer;
    const passwords = new Map<string, string>();
    const world = new World(servers, new Map(), passwords, dir, ownsDir, opts);
    try {
      for (const a of opts.accounts) {
        if (!(await server.store.getAccount(a.name))) {
          const password = randomBytes(18).toString('base64url');
          await server.store.createAccount(a.name, a.displayName, await hashPassword(password));
          passwords.set(a.name, password);
        }
      }
      for (const [a, b] of opts.buddies) if (!(await server.store.areBuddies(a, b))) await server.store.addBuddies(a, b);
      for (const spec of opts.endpoints) await world.startEndpoint(spec);
    } catch (err) {
      await world.close();
      throw err;
    }
    return world;
  }

  get server(): AccessServer {
    return this.servers[0] as AccessServer;
  }

  get(id: string): WorldEndpoint {
    const e = this.endpoints.get(id);
    if (!e) throw new Error(`no endpoint ${id} in this world`);
    return e;
  }

  /** Starts (or restarts) one endpoint with its own state directory and simulated audio. */
  async startEndpoint(spec: WorldEndpointSpec): Promise<WorldEndpoint> {
    const password = this.passwords.get(spec.account);
    if (!password) throw new Error(`no password for account ${spec.account} in this world`);
    const clock = this.opts.clock ?? systemClock;
    const config = EndpointConfig.parse({
      endpoint: { id: spec.id, kind: spec.kind, label: spec.label },
      access: {
        url: this.nodeFor(spec).url,
        // A cluster's devices list every node, as a fleet's configs do: the next one takes over when one goes.
        ...(this.servers.length > 1 ? { fallbackUrls: this.servers.filter((s) => s !== this.nodeFor(spec)).map((s) => s.url) } : {}),
        serverPublicKey: this.server.publicKeyRaw,
        username: spec.account,
        password,
      },
      stateDir: join(this.dir, 'endpoints', spec.id),
      sweep: {
        timeoutMs: this.opts.sweepTimeoutMs ?? 3000,
        invites: spec.invites ?? 'ask',
        pushTo: spec.pushTo ?? [],
        ...(spec.inviteTimeoutMs ? { inviteTimeoutMs: spec.inviteTimeoutMs } : {}),
      },
      audio: { source: { driver: 'simulated', frequencyHz: spec.frequencyHz }, sink: { driver: 'simulated' } },
      calls: { ...(this.opts.ringTimeoutMs ? { ringTimeoutMs: this.opts.ringTimeoutMs } : {}), ...(spec.doNotDisturb ? { doNotDisturb: true } : {}) },
      ...(this.opts.idleCloseMs ? { links: { idleCloseMs: this.opts.idleCloseMs, setupTimeoutMs: 8000 } } : {}),
    });
    const source = new SimulatedToneSource({ frequencyHz: spec.frequencyHz, clock });
    const sink = new SimulatedAnalysingSink({ clock });
    const endpoint = await Endpoint.start(config, {
      source,
      sink,
      clock,
      log: this.opts.log.child({ endpoint: spec.id }),
      ...(this.opts.crypto ? { crypto: this.opts.crypto } : {}),
    });
    const we = { endpoint, source, sink, spec };
    this.endpoints.set(spec.id, we);
    return we;
  }

  private nodeFor(spec: WorldEndpointSpec): AccessServer {
    const node = this.servers[spec.node ?? 0];
    if (!node) throw new Error(`endpoint ${spec.id}: node ${spec.node} is not one of this world's ${this.servers.length} server nodes`);
    return node;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all([...this.endpoints.values()].map((e) => e.endpoint.close()));
    for (const s of this.servers) await s.close();
    if (this.ownsDir) await rm(this.dir, { recursive: true, force: true });
  }
}

/** The lab's cast: a door intercom, a desk handset and a smartphone of the resident "alice". */
export const LAB_CAST: Pick<WorldOptions, 'accounts' | 'buddies' | 'endpoints'> = {
  accounts: [
    { name: 'alice', displayName: 'Alice (flat 4)' },
    { name: 'door', displayName: 'Front door' },
  ],
  buddies: [['alice', 'door']],
  endpoints: [
    { id: 'intercom', account: 'door', kind: 'intercom', label: 'Front door intercom', frequencyHz: 330 },
    { id: 'handset', account: 'alice', kind: 'deskphone', label: 'Desk handset', frequencyHz: 550, pushTo: ['phone'] },
    { id: 'phone', account: 'alice', kind: 'phone', label: 'Smartphone (simulated)', frequencyHz: 770, invites: 'auto' },
  ],
};
