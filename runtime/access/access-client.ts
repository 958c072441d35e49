import { WebSocket } from 'ws';
import { isFinalLoginRefusal, RECONNECT_BACKOFF, type AccessCatalogue, type LoginBody, type LoginResult, type ProfilePage, type SignalIn, type SignalPayload } from '../../core/protocol/access.ts';
import type { EndpointInfo, EndpointKind } from '../../core/protocol/common.ts';
import type { IceConfig } from '../../core/protocol/ice.ts';
import type { RpcChannel } from '../../core/protocol/rpc.ts';
import type { RequestBody, RequestResult, RequestType } from '../../core/protocol/envelope.ts';
import { ProfileCollector } from '../../core/protocol/profile-collector.ts';
import { MAX_MESSAGE_BYTES } from '../../core/protocol/validate.ts';
import type { CertificatePayload } from '../../platform/certificate.ts';
import { publicKeyFromRaw } from '../../platform/token.ts';
import { Backoff } from '../../core/backoff.ts';
import { systemClock, type Clock, type TimerHandle } from '../../core/clock.ts';
import { SweepError, toSweepError } from '../../core/errors.ts';
import { NS, type Logger } from '../../platform/log.ts';
import { openAccessSocket } from './access-socket.ts';
import { checkOwnCertificate } from './own-certificate.ts';
import { applyPresence } from './profile-presence.ts';
import { loginByProof } from './resume-proof-login.ts';

export interface AccessClientOptions {
  /** ws://host:port/access */
  url: string;
  /**
   * Other nodes of the same cluster (same server key): after a lost connection or a failed
   * attempt, the next attempt goes to the next URL in turn, so a dead node's endpoints log in
   * elsewhere.
   */
  fallbackUrls?: readonly string[];
  username: string;
  password: string;
  endpointId: string;
  kind: EndpointKind;
  label: string;
  /** This endpoint's Ed25519 public key (raw, base64url), to be certified. */
  signingKeyRaw: string;
  /** This endpoint's DTLS fingerprint ("sha-256 AB:…"), to be certified. */
  dtlsFingerprint: string;
  /** The access server's Ed25519 public key (raw, base64url): certificates must verify with it. */
  serverPublicKeyRaw: string;
  log: Logger;
  clock?: Clock;
  /** Reconnect delays after a lost connection; default RECONNECT_BACKOFF (500 ms doubling to 10 s, full jitter). */
  backoff?: { initialMs: number; maxMs: number };
  /** Per request (login, signal, logout); default 10 s. */
  requestTimeoutMs?: number;
  /**
   * A15: signs with this endpoint's signing key (base64url Ed25519 signature of the text). With
   * it, a reconnect proves the endpoint with its certificate and a server nonce instead of the
   * password, so a fleet coming back costs the server no Argon2.
   */
  signProof?: (text: string) => string | Promise<string>;
}

/**
 * idle → starting → online ⇄ reconnecting; kicked, refused and closed are final.
 * `starting` failing returns to idle (start() rejected); `online` losing its socket goes to
 * `reconnecting`, which retries with back-off until it logs in again, unless the server refuses
 * the credentials (A10, `isFinalLoginRefusal`): then `refused`.
 */
export type AccessClientState = 'idle' | 'starting' | 'online' | 'reconnecting' | 'kicked' | 'refused' | 'closed';

/** Renew the certificate when this fraction of its lifetime has passed. */
const RENEW_AT = 0.8;
const CLOSE_WAIT_MS = 1000;

type Listener<T> = (value: T) => void;

/**
 * An endpoint's connection to the access server: logs in, keeps a verified certificate of its
 * own keys, follows presence, relays link set-up signals, and reconnects after a lost connection.
 */
export class AccessClient {
  private readonly log: Logger;
  private readonly clock: Clock;
  private readonly backoff: Backoff;
  /** Which of the access URLs the next connection uses (they take turns after each loss). */
  private urlTurn = 0;
  private readonly timeoutMs: number;
  private readonly serverKey;
  private stateNow: AccessClientState = 'idle';
  private ws: WebSocket | undefined;
  private channel: RpcChannel<AccessCatalogue> | undefined;
  private current: LoginResult | undefined;
  private certPayload: CertificatePayload | undefined;
  private reconnectTimer: TimerHandle | undefined;
  private renewTimer: TimerHandle | undefined;
  private closing: Promise<void> | undefined;
  /** A12: the profile pages being collected after a login answer with `profileFollows`. */
  private pages: { channel: RpcChannel<AccessCatalogue>; add: (page: ProfilePage) => void; fail: (err: SweepError) => void } | undefined;
  private readonly listeners = {
    profile: new Set<Listener<LoginResult>>(),
    presence: new Set<Listener<EndpointInfo>>(),
    signal: new Set<Listener<SignalIn>>(),
    connection: new Set<Listener<boolean>>(),
    kicked: new Set<Listener<string>>(),
    refused: new Set<Listener<SweepError>>(),
    ice: new Set<Listener<IceConfig>>(),
  };

  constructor(private readonly opts: AccessClientOptions) {
    this.log = opts.log.child({ ns: NS.access, endpointId: opts.endpointId });
    this.clock = opts.clock ?? systemClock;
    this.backoff = new Backoff(opts.backoff ?? RECONNECT_BACKOFF);
    this.timeoutMs = opts.requestTimeoutMs ?? 10_000;
    try {
      this.serverKey = publicKeyFromRaw(opts.serverPublicKeyRaw);
    } catch (err) {
      throw new SweepError('INVALID_CONFIG', 'serverPublicKeyRaw: not an Ed25519 public key (32 bytes, base64url)', { cause: err });
    }
  }

  get state(): AccessClientState {
    return this.stateNow;
  }

  /** The current endpoint certificate (token), once logged in. */
  get certificate(): string | undefined {
    return this.current?.certificate;
  }

  /** What the certificate says, verified. */
  get certificatePayload(): CertificatePayload | undefined {
    return this.certPayload;
  }

  /** A13: the STUN/TURN servers to make links with, the credentials renewed by `ice` notes. */
  get ice(): IceConfig | undefined {
    return this.current?.ice;
  }

  /** The profile of the last login, kept up to date with presence notes since. */
  get profile(): LoginResult['profile'] | undefined {
    return this.current?.profile;
  }

  onProfile(fn: Listener<LoginResult>): () => void {
    return this.listen(this.listeners.profile, fn);
  }

  onPresence(fn: Listener<EndpointInfo>): () => void {
    return this.listen(this.listeners.presence, fn);
  }

  onSignal(fn: Listener<SignalIn>): () => void {
    return this.listen(this.listeners.signal, fn);
  }

  onConnectionChange(fn: Listener<boolean>): () => void {
    return this.listen(this.listeners.connection, fn);
  }

  /** The server ended this login for good (a newer login took this endpoint id); no reconnect follows. */
  onKicked(fn: Listener<string>): () => void {
    return this.listen(this.listeners.kicked, fn);
  }

  /** A13: fresh TURN credentials arrived (L9: relayed links are remade with them). */
  onIce(fn: Listener<IceConfig>): () => void {
    return this.listen(this.listeners.ice, fn);
  }

  /** A reconnect was refused for good (A10: wrong credentials); no reconnect follows. */
  onRefused(fn: Listener<SweepError>): () => void {
    return this.listen(this.listeners.refused, fn);
  }

  /**
   * Connects and logs in once. Resolves with the first login; rejects with the reason if that
   * first attempt fails (UNAUTHORIZED, RATE_LIMITED, OFFLINE, FORBIDDEN, TIMEOUT…), leaving the
   * client idle. Only after a successful start does a lost connection lead to reconnecting.
   */
  async start(): Promise<LoginResult> {
    if (this.stateNow !== 'idle') throw new SweepError('BAD_STATE', `start: the client is ${this.stateNow}, not idle`);
    this.stateNow = 'starting';
    try {
      const result = await this.connectAndLogin();
      if (this.stateNow !== 'starting') throw new SweepError('CLOSED', 'start: the client was closed while logging in');
      this.enterOnline(result);
      return result;
    } catch (err) {
      await this.dropSocket();
      if (this.stateNow === 'starting') this.stateNow = 'idle';
      throw toSweepError(err);
    }
  }

  /** Sends a link set-up message to another endpoint via the relay (same account or buddy only). */
  async signal(to: string, payload: SignalPayload): Promise<void> {
    await this.request('signal', { to, payload });
  }
  /** One request on the logged-in connection (signal, A5; history, A15); OFFLINE while not logged in. */
  async request<T extends RequestType<AccessCatalogue>>(type: T, body: RequestBody<AccessCatalogue, T>): Promise<RequestResult<AccessCatalogue, T>> {
    if (this.stateNow !== 'online' || !this.channel) throw new SweepError('OFFLINE', `${type}: not logged in to the access server (client is ${this.stateNow})`);
    return await this.channel.request(type, body, { timeoutMs: this.timeoutMs });
  }

  /** Idempotent: logs out if logged in, stops reconnecting, clears timers and listeners. */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const wasOnline = this.stateNow === 'online';
    this.stateNow = 'closed';
    this.clearTimers();
    const channel = this.channel;
    if (wasOnline && channel) {
      await channel.request('logout', {}, { timeoutMs: CLOSE_WAIT_MS }).catch((err: unknown) => {
        this.log.debug({ reason: (err as Error).message }, 'logout not confirmed');
      });
    }
    await this.dropSocket();
    if (wasOnline) this.emit(this.listeners.connection, false);
    for (const set of Object.values(this.listeners)) set.clear();
  }

  private loginBody(): LoginBody {
    const o = this.opts;
    return {
      username: o.username,
      password: o.password,
      endpointId: o.endpointId,
      kind: o.kind,
      label: o.label,
      signingKey: o.signingKeyRaw,
      dtlsFingerprint: o.dtlsFingerprint,
    };
  }

  private async connectAndLogin(): Promise<LoginResult> {
    const { channel, nonce } = await this.connect();
    const result = await this.login(channel, nonce);
    this.certPayload = this.checkCertificate(result);
    return result;
  }

  /** Logs in on `channel`; resolves once the profile is whole (A12: after its last page, if paged). */
  private async login(channel: RpcChannel<AccessCatalogue>, nonce?: string): Promise<LoginResult> {
    const result = (await this.loginByProof(channel, nonce)) ?? (await channel.request('login', this.loginBody(), { timeoutMs: this.timeoutMs }));
    if (result.profileFollows) await this.collectPages(channel, result);
    return result;
  }

  /** A14: a resume proof instead of the password when we hold a fitting certificate (resume-proof-login.ts). */
  private loginByProof(channel: RpcChannel<AccessCatalogue>, nonce: string | undefined): Promise<LoginResult | undefined> {
    return loginByProof(channel, { ...this.opts, certificate: this.current?.certificate, payload: this.certPayload, clock: this.clock, timeoutMs: this.timeoutMs, log: this.log, nonce });
  }

  /** A12: fills `result.profile` from the pages that follow the answer (the rpc channel delivers them after it, M3). */
  private async collectPages(channel: RpcChannel<AccessCatalogue>, result: LoginResult): Promise<void> {
    const collector = new ProfileCollector(result, this.clock, this.timeoutMs);
    const pages = { channel, add: (page: ProfilePage) => collector.add(page), fail: (err: SweepError) => collector.fail(err) };
    this.pages = pages;
    try {
      await collector.whole;
    } finally {
      if (this.pages === pages) this.pages = undefined;
    }
  }

  private onProfilePage(channel: RpcChannel<AccessCatalogue>, page: ProfilePage): void {
    if (this.pages?.channel === channel) this.pages.add(page);
    else this.log.warn({ page: page.page }, 'profile page without a login waiting for it; ignored');
  }

  /** P3 for our own certificate: signed by our server, unexpired, and about our own keys. */
  private checkCertificate(result: LoginResult): CertificatePayload {
    return checkOwnCertificate(result, this.serverKey, this.clock.now(), this.opts);
  }

  /** Opens a socket and its channel (with the handshake's nonce, A14); rejects OFFLINE if the server cannot be reached. */
  private connect(): Promise<{ channel: RpcChannel<AccessCatalogue>; nonce: string | undefined }> {
    const urls = [this.opts.url, ...(this.opts.fallbackUrls ?? [])];
    const url = urls[this.urlTurn % urls.length] ?? this.opts.url;
    const socket = openAccessSocket(url, { log: this.log, clock: this.clock, timeoutMs: this.timeoutMs, askNonce: this.opts.signProof !== undefined });
    const { ws, channel } = socket;
    this.ws = ws;
    this.channel = channel;
    channel.onNote('presence', (b) => this.onPresenceNote(b.endpoint));
    channel.onNote('profilePage', (b) => this.onProfilePage(channel, b));
    channel.onNote('ice', (b) => {
      if (!this.current) return;
      this.current.ice = b;
      this.emit(this.listeners.ice, b);
    });
    channel.onNote('signal', (b) => this.emit(this.listeners.signal, b));
    channel.onNote('kicked', (b) => this.onKickedNote(ws, b.reason));
    channel.onNote('error', (b) => this.log.warn({ code: b.code, reason: b.message }, 'the access server refused a message'));

    ws.on('message', (data: Buffer, isBinary) => {
      if (this.ws !== ws) return;
      if (isBinary) this.log.warn('binary frame from the access server ignored');
      else channel.receive(data);
    });
    ws.on('error', (err) => this.log.debug({ reason: err.message }, 'socket error'));
    return new Promise((resolve, reject) => {
      let opened = false;
      ws.once('open', () => {
        opened = true;
        resolve({ channel, nonce: socket.handshakeNonce });
      });
      ws.on('close', (code, reason) => {
        if (!opened) {
          const why = reason.length ? reason.toString() : `code ${code}`;
          reject(new SweepError('OFFLINE', `cannot reach the access server at ${url} (${why})`));
        }
        this.onSocketClosed(ws, code, reason.toString());
      });
      ws.once('error', (err) => {
        if (!opened) reject(err instanceof SweepError ? err : new SweepError('OFFLINE', `cannot reach the access server at ${url}: ${err.message}`));
      });
    });
  }

  private onSocketClosed(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return; // a socket we already let go of
    this.ws = undefined;
    const why = `access server connection closed (${code}${reason ? ` ${reason}` : ''})`;
    this.channel?.close(why);
    this.channel = undefined;
    this.pages?.fail(new SweepError('CLOSED', `login: ${why} before the profile was whole`));
    if (code === 1009) this.log.error({ limit: MAX_MESSAGE_BYTES }, 'the access server closed the connection: a message was too large');
    if (this.stateNow !== 'online') return;
    this.log.warn({ code, reason }, 'lost the access server; reconnecting');
    this.clearTimers();
    this.emit(this.listeners.connection, false);
    this.scheduleReconnect();
  }

  /** A17: the wait a busy server asked for, if it did (its ceiling starts over); otherwise back-off. */
  private scheduleReconnect(retryAfterMs?: number): void {
    this.stateNow = 'reconnecting';
    this.urlTurn += 1;
    const delayMs = retryAfterMs === undefined ? this.backoff.next() : this.backoff.asked(retryAfterMs);
    this.reconnectTimer = this.clock.setTimeout(() => {
      this.reconnectTimer = undefined;
      void this.reconnect();
    }, delayMs);
  }

  private async reconnect(): Promise<void> {
    if (this.stateNow !== 'reconnecting') return;
    try {
      const result = await this.connectAndLogin();
      if (this.stateNow !== 'reconnecting') return; // closed meanwhile; close() drops the socket
      this.backoff.reset();
      this.enterOnline(result);
    } catch (err) {
      if (this.stateNow !== 'reconnecting') return;
      const e = toSweepError(err);
      await this.dropSocket();
      if (this.stateNow !== 'reconnecting') return;
      // A10: only wrong credentials are final; a busy, restarting or unreachable server is waited out.
      if (isFinalLoginRefusal(e.code)) {
        this.log.error({ code: e.code, reason: e.message }, 'reconnect refused for good; not retrying');
        this.stateNow = 'refused';
        this.clearTimers();
        this.emit(this.listeners.refused, e);
        return;
      }
      this.log.warn({ code: e.code, reason: e.message, retryAfterMs: e.retryAfterMs }, 'reconnect failed; retrying');
      this.scheduleReconnect(e.retryAfterMs);
    }
  }

  private enterOnline(result: LoginResult): void {
    this.stateNow = 'online';
    this.current = structuredClone(result);
    this.log.info({ account: result.profile.account, siblings: result.profile.siblings.length }, 'logged in');
    this.scheduleRenewal();
    this.emit(this.listeners.connection, true);
    this.emit(this.listeners.profile, result);
  }

  /** Logs in again on the same socket before the certificate expires. */
  private scheduleRenewal(): void {
    const cert = this.certPayload;
    if (!cert) return;
    const delayMs = Math.max(1000, Math.floor((cert.expiresAt - cert.issuedAt) * RENEW_AT));
    this.renewTimer = this.clock.setTimeout(() => {
      this.renewTimer = undefined;
      void this.renew();
    }, delayMs);
  }

  private async renew(): Promise<void> {
    const channel = this.channel;
    if (this.stateNow !== 'online' || !channel) return;
    try {
      const result = await this.login(channel);
      const cert = this.checkCertificate(result);
      if (this.stateNow !== 'online' || this.channel !== channel) return;
      this.certPayload = cert;
      this.current = structuredClone(result);
      this.scheduleRenewal();
      this.emit(this.listeners.profile, result);
    } catch (err) {
      if (this.stateNow !== 'online' || this.channel !== channel) return;
      const e = toSweepError(err);
      this.log.warn({ code: e.code, reason: e.message }, 'certificate renewal failed; reconnecting');
      // Losing the socket leads to reconnect and a fresh login.
      this.ws?.terminate();
    }
  }

  private onPresenceNote(endpoint: EndpointInfo): void {
    const profile = this.current?.profile;
    if (profile) applyPresence(profile, endpoint);
    this.emit(this.listeners.presence, endpoint);
  }

  private onKickedNote(ws: WebSocket, reason: string): void {
    if (this.ws !== ws || this.stateNow === 'closed') return;
    const wasOnline = this.stateNow === 'online';
    this.log.warn({ reason }, 'kicked by the access server; not reconnecting');
    this.stateNow = 'kicked';
    this.clearTimers();
    void this.dropSocket();
    if (wasOnline) this.emit(this.listeners.connection, false);
    this.emit(this.listeners.kicked, reason);
  }

  /** Lets go of the current socket (its close event is then ignored) and waits for it to close. */
  private async dropSocket(): Promise<void> {
    const ws = this.ws;
    const channel = this.channel;
    this.ws = undefined;
    this.channel = undefined;
    channel?.close('access client dropped the connection');
    this.pages?.fail(new SweepError('CLOSED', 'login: the connection was dropped before the profile was whole'));
    if (!ws || ws.readyState === WebSocket.CLOSED) return;
    await new Promise<void>((resolve) => {
      const timer = this.clock.setTimeout(() => {
        ws.terminate();
        resolve();
      }, CLOSE_WAIT_MS);
      ws.once('close', () => {
        this.clock.clear(timer);
        resolve();
      });
      try {
        ws.close(1000, 'bye');
      } catch {
        ws.terminate();
      }
    });
  }

  private clearTimers(): void {
    if (this.reconnectTimer) this.clock.clear(this.reconnectTimer);
    if (this.renewTimer) this.clock.clear(this.renewTimer);
    this.reconnectTimer = undefined;
    this.renewTimer = undefined;
  }

  private listen<T>(set: Set<Listener<T>>, fn: Listener<T>): () => void {
    set.add(fn);
    return () => set.delete(fn);
  }

  private emit<T>(set: Set<Listener<T>>, value: T): void {
    for (const fn of [...set]) {
      try {
        fn(value);
      } catch (err) {
        this.log.error({ err }, 'access client listener threw');
      }
    }
  }
}

/** The access-client options an endpoint config and its keys determine (the rest is wiring). */
export function accessOptionsFromConfig(
  config: { endpoint: { id: string; kind: EndpointKind; label: string }; access: { url: string; fallbackUrls?: string[] | undefined; username: string; password: string; serverPublicKey: string } },
  keys: { signingKeyRaw: string; dtlsFingerprint: string },
): Pick<AccessClientOptions, 'url' | 'fallbackUrls' | 'username' | 'password' | 'endpointId' | 'kind' | 'label' | 'signingKeyRaw' | 'dtlsFingerprint' | 'serverPublicKeyRaw'> {
  return {
    url: config.access.url,
    ...(config.access.fallbackUrls?.length ? { fallbackUrls: config.access.fallbackUrls } : {}),
    username: config.access.username,
    password: config.access.password,
    endpointId: config.endpoint.id,
    kind: config.endpoint.kind,
    label: config.endpoint.label,
    signingKeyRaw: keys.signingKeyRaw,
    dtlsFingerprint: keys.dtlsFingerprint,
    serverPublicKeyRaw: config.access.serverPublicKey,
  };
}
