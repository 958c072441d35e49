import { createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { WebSocket } from 'ws';
import type { AccessCatalogue, LoginResult, SignalIn } from '../core/protocol/access.ts';
import type { EndpointKind } from '../core/protocol/common.ts';
import type { RpcChannel } from '../core/protocol/rpc.ts';
import { Backoff } from '../core/backoff.ts';
import { systemClock } from '../core/clock.ts';
import { SweepError, toSweepError } from '../core/errors.ts';
import { CertificatePayload } from '../platform/certificate.ts';
import { peekToken, rawPublicKey } from '../platform/token.ts';
import type { Logger } from '../platform/log.ts';
import { loginByProof } from '../runtime/access/resume-proof-login.ts';
import { openAccessSocket } from '../runtime/access/access-socket.ts';

export interface FleetOptions {
  url: string;
  password: string;
  log: Logger;
  /** Per request and for the WebSocket handshake. */
  timeoutMs: number;
  /** A device's reconnect back-off (AccessClient's default, RECONNECT_BACKOFF). */
  backoff: { initialMs: number; maxMs: number };
}

export type LoginHow = 'proof' | 'resume' | 'password';

/** RFC 8410's PKCS#8 wrapping of an Ed25519 private key: the 32-byte seed follows it. */
const ED25519_PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

/**
 * An Ed25519 key pair from a random seed, not from generateKeyPairSync: on Node 20 a garbage
 * collection that frees a key-generation job while its key is exported as JWK (rawPublicKey)
 * deadlocks the process in the job's destructor. With 10k endpoints the bench hung that way.
 */
export function ed25519KeyPair(): { publicKey: KeyObject; privateKey: KeyObject } {
  const privateKey = createPrivateKey({ key: Buffer.concat([ED25519_PKCS8_PREFIX, randomBytes(32)]), format: 'der', type: 'pkcs8' });
  return { publicKey: createPublicKey(privateKey), privateKey };
}

/** What the bench needs of one endpoint's identity. */
export interface FleetIdentity {
  account: string;
  endpointId: string;
  kind: EndpointKind;
  /** The client address the node sees (X-Forwarded-For through a trusted proxy, A11): one per home. */
  address: string;
  /** An A8 session token seeded into the store, as an earlier login would have left it. */
  token?: string;
}

/**
 * A fleet of endpoints for the cluster bench. Each speaks the access protocol on its own real
 * WebSocket with the runtime's own pieces (RpcChannel, Backoff, loginByProof for A14), without
 * AccessClient's per-client extras (profile copies, renewal timers, listener sets), so ten
 * thousand fit in one process beside the node's. Its first login is an A8 resume with a seeded
 * token; after a lost connection it reconnects with back-off and a resume proof.
 */
export class Fleet {
  readonly endpoints: FleetEndpoint[] = [];
  readonly logins: Record<LoginHow, number> = { proof: 0, resume: 0, password: 0 };
  readonly failures = new Map<string, number>();
  presenceNotes = 0;
  /** Told of every signal that reaches an endpoint. */
  onSignal: (to: FleetEndpoint, signal: SignalIn) => void = () => undefined;
  constructor(readonly opts: FleetOptions) {}

  add(id: FleetIdentity): FleetEndpoint {
    const e = new FleetEndpoint(this, id);
    this.endpoints.push(e);
    return e;
  }

  get online(): number {
    let n = 0;
    for (const e of this.endpoints) if (e.state === 'online') n += 1;
    return n;
  }

  failed(err: unknown): void {
    const code = toSweepError(err).code;
    this.failures.set(code, (this.failures.get(code) ?? 0) + 1);
  }

  /** Logs every endpoint in, `parallel` at a time; resolves with how many made it. */
  async startAll(parallel: number, deadline: number): Promise<number> {
    let next = 0;
    let ok = 0;
    const worker = async (): Promise<void> => {
      while (next < this.endpoints.length && performance.now() < deadline) {
        const e = this.endpoints[next++]!;
        if (await e.start()) ok += 1;
      }
    };
    await Promise.all(Array.from({ length: parallel }, worker));
    return ok;
  }

  /** Stops reconnecting and cuts every socket (no logout: the node goes next). */
  stop(): void {
    for (const e of this.endpoints) e.stop();
  }
}

export class FleetEndpoint {
  state: 'down' | 'connecting' | 'online' | 'stopped' = 'down';
  /** performance.now() of the last login and of the last loss. */
  onlineAt = 0;
  lostAt = 0;
  readonly signingKeyRaw: string;
  readonly dtlsFingerprint: string;
  private readonly privateKey: KeyObject;
  private readonly backoff: Backoff;
  private ws: WebSocket | undefined;
  private channel: RpcChannel<AccessCatalogue> | undefined;
  private certificate: string | undefined;
  private payload: CertificatePayload | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly fleet: Fleet,
    readonly id: FleetIdentity,
  ) {
    const { publicKey, privateKey } = ed25519KeyPair();
    this.privateKey = privateKey;
    this.signingKeyRaw = rawPublicKey(publicKey);
    this.dtlsFingerprint = `sha-256 ${randomBytes(32).toString('hex').toUpperCase().match(/../g)!.join(':')}`;
    this.backoff = new Backoff(fleet.opts.backoff);
  }

  /** One attempt; true once logged in. After a failed one the endpoint retries by itself, as a device would. */
  async start(): Promise<boolean> {
    try {
      await this.connect();
      return true;
    } catch (err) {
      this.fleet.failed(err);
      this.drop();
      if (this.state !== 'stopped') this.reconnectLater(toSweepError(err).retryAfterMs);
      return false;
    }
  }

  /** A5: a link set-up signal through the node's relay. */
  async signal(to: string, linkId: string): Promise<void> {
    if (this.state !== 'online' || !this.channel) throw new SweepError('OFFLINE', `${this.id.endpointId} is not logged in`);
    await this.channel.request('signal', { to, payload: { kind: 'connect', linkId } });
  }

  /** Closes the socket as a lost connection would (presence churn); the endpoint comes back by itself. */
  dropConnection(): void {
    this.ws?.terminate();
  }

  stop(): void {
    this.state = 'stopped';
    clearTimeout(this.timer);
    this.drop();
  }

  private async connect(): Promise<void> {
    this.state = 'connecting';
    const { opts } = this.fleet;
    const socket = openAccessSocket(opts.url, { log: opts.log, timeoutMs: opts.timeoutMs, headers: { 'x-forwarded-for': this.id.address }, askNonce: true });
    const { ws, channel } = socket;
    this.ws = ws;
    this.channel = channel;
    channel.onNote('signal', (b) => this.fleet.onSignal(this, b));
    channel.onNote('presence', () => (this.fleet.presenceNotes += 1));
    ws.on('message', (data: Buffer, isBinary) => {
      if (!isBinary) channel.receive(data);
    });
    await new Promise<void>((resolve, reject) => {
      // Only the first outcome makes an error: 10,000 failing attempts a few seconds long add up.
      let settled = false;
      const fail = (make: () => SweepError): void => {
        if (!settled) reject(make());
        settled = true;
      };
      ws.once('open', () => {
        settled = true;
        resolve();
      });
      ws.on('error', (err) => fail(() => (err instanceof SweepError ? err : new SweepError('OFFLINE', `cannot reach ${opts.url}: ${err.message}`))));
      ws.on('close', () => {
        fail(() => new SweepError('CLOSED', 'socket closed'));
        this.lost(ws);
      });
    });
    const result = await this.login(channel, socket.handshakeNonce);
    if (this.ws !== ws) throw new SweepError('CLOSED', 'socket closed during login');
    this.certificate = result.certificate;
    // Read, not verified: the bench's CPU is the node's neighbour (the node's answer is trusted here).
    this.payload = peekToken(result.certificate, CertificatePayload, 'certificate');
    this.id.token = result.session?.token;
    this.backoff.reset();
    this.state = 'online';
    this.onlineAt = performance.now();
  }

  private async login(channel: RpcChannel<AccessCatalogue>, nonce: string | undefined): Promise<LoginResult> {
    const { opts, logins } = this.fleet;
    const body = { endpointId: this.id.endpointId, kind: this.id.kind, label: this.id.endpointId, signingKey: this.signingKeyRaw, dtlsFingerprint: this.dtlsFingerprint };
    const proved = await loginByProof(channel, { ...body, signingKeyRaw: this.signingKeyRaw, certificate: this.certificate, payload: this.payload, clock: systemClock, timeoutMs: opts.timeoutMs, log: opts.log, nonce, signProof: (text) => sign(null, Buffer.from(text), this.privateKey).toString('base64url') });
    if (proved) {
      logins.proof += 1;
      return proved;
    }
    const token = this.id.token;
    this.id.token = undefined;
    if (token) {
      const resumed = await channel.request('resume', { token, ...body }).catch((err: unknown) => {
        if (toSweepError(err).code !== 'UNAUTHORIZED') throw err;
        return undefined;
      });
      if (resumed) {
        logins.resume += 1;
        return resumed;
      }
    }
    const result = await channel.request('login', { username: this.id.account, password: opts.password, ...body });
    logins.password += 1;
    return result;
  }

  private lost(ws: WebSocket): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    this.channel?.close('socket closed');
    this.channel = undefined;
    if (this.state !== 'online') return;
    this.lostAt = performance.now();
    this.reconnectLater();
  }

  /** As AccessClient: the wait a busy node asked for (A17), or the back-off. */
  private reconnectLater(retryAfterMs?: number): void {
    this.state = 'down';
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.state !== 'down') return;
      this.connect().catch((err: unknown) => {
        if (this.state === 'stopped') return;
        this.fleet.failed(err);
        this.drop();
        this.reconnectLater(toSweepError(err).retryAfterMs);
      });
    }, retryAfterMs === undefined ? this.backoff.next() : this.backoff.asked(retryAfterMs));
  }

  /** Lets go of the socket without treating it as a loss. */
  private drop(): void {
    const ws = this.ws;
    this.ws = undefined;
    this.channel?.close('dropped');
    this.channel = undefined;
    ws?.terminate();
  }
}
