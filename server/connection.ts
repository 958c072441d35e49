import type { WebSocket, RawData } from 'ws';
import { createHash, randomBytes } from 'node:crypto';
import { accessCatalogue, LoginResult as LoginResultSchema, type AccessCatalogue, type LoginBody, type LoginResult, type Profile, type ResumeBody, type SessionToken } from '../core/protocol/access.ts';
import { Envelope, type NoteBody, type NoteType } from '../core/protocol/envelope.ts';
import { RpcChannel } from '../core/protocol/rpc.ts';
import { MAX_MESSAGE_BYTES, parseJsonText, parseWith } from '../core/protocol/validate.ts';
import { profilePages } from './profile-pages.ts';
import { issueCertificate } from '../platform/certificate.ts';
import { iceConfigFor, iceRenewalDelayMs, type IceOptions } from './ice.ts';
import { SweepError, toWireError } from '../core/errors.ts';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';
import { dummyHash } from './passwords.ts';
import type { PasswordGate } from './password-gate.ts';
import type { LoginRateLimiter } from './rate-limit.ts';
import { follows, type OnlineEndpoint, type OnlineRegistry } from './registry.ts';
import type { ServerKey } from './server-key.ts';
import type { Account, AccountStore } from './store.ts';

export interface ConnectionContext {
  store: AccountStore;
  registry: OnlineRegistry;
  limiter: LoginRateLimiter;
  /** A11: bounded Argon2 work. */
  passwords: PasswordGate;
  key: ServerKey;
  clock: Clock;
  log: Logger;
  certTtlMs: number;
  /** Lifetime of a login session token (A7). */
  sessionTtlMs: number;
  /** A socket that has not logged in within this time is closed. */
  loginTimeoutMs: number;
  /** A13: STUN/TURN servers handed out at login; undefined when none are configured. */
  ice: IceOptions | undefined;
}

/** WebSocket close codes used by the server (4000-4999 are for applications). */
export const CLOSE = {
  kicked: 4001,
  loginTimeout: 4002,
  tooManyBadMessages: 4003,
  shutdown: 1001,
} as const;

const WRONG_CREDENTIALS = 'username or password is wrong';
const BAD_SESSION = 'session token is unknown, expired or already used; log in with the password';
const MAX_BAD_MESSAGES = 50;
/** A12: a login answer whose profile would pass this size sends the profile in pages instead. */
const INLINE_PROFILE_BYTES = MAX_MESSAGE_BYTES - 1024;

/** One endpoint's socket: login, rendezvous relay, logout (docs/protocol.md part A). */
export class AccessConnection {
  private readonly channel: RpcChannel<AccessCatalogue>;
  private readonly log: Logger;
  private entry: OnlineEndpoint | undefined;
  private loginBusy = false;
  private badMessages = 0;
  private loginTimer: TimerHandle | undefined;
  private closed = false;
  /** False after a ping, true again when the pong comes back. */
  private alive = true;
  /** A12: hash of the session token of the login answered last, until we know it was sent. */
  private issuedToken: string | undefined;
  /** A13: sends fresh TURN credentials before the ones handed out expire. */
  private iceTimer: TimerHandle | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly address: string,
    private readonly ctx: ConnectionContext,
  ) {
    this.log = ctx.log.child({ address });
    this.channel = new RpcChannel({
      catalogue: accessCatalogue,
      send: (text) => ws.send(text),
      log: this.log,
      clock: ctx.clock,
      // A6: before login, only `login` and `resume` are answered.
      admit: (type) => {
        if (type !== 'login' && type !== 'resume' && !this.entry) throw new SweepError('UNAUTHORIZED', `"${type}" needs a login first`);
      },
      onBadMessage: () => this.countBad(),
    });
    this.channel.handle('login', (body) => this.onLogin(body));
    this.channel.handle('signal', (body) => this.onSignal(body.to, body.payload));
    this.channel.handle('resume', (body) => this.onResume(body));
    this.channel.handle('refresh', () => this.onRefresh());
    this.channel.handle('logout', () => this.onLogout());
    this.armLoginTimer();
  }

  /** A socket without a login may not linger (before the first login and after a logout). */
  private armLoginTimer(): void {
    if (this.loginTimer) this.ctx.clock.clear(this.loginTimer);
    this.loginTimer = this.ctx.clock.setTimeout(() => {
      this.loginTimer = undefined;
      if (!this.entry) this.closeSocket(CLOSE.loginTimeout, 'no login in time');
    }, this.ctx.loginTimeoutMs);
  }

  /** Called by the server's heartbeat: a socket that did not answer the previous ping is dropped. */
  heartbeat(): void {
    if (!this.alive) {
      this.log.info('no pong since the last ping; dropping socket');
      this.ws.terminate();
      return;
    }
    this.alive = false;
    try {
      this.ws.ping();
    } catch {
      this.ws.terminate();
    }
  }

  pong(): void {
    this.alive = true;
  }

  get loggedIn(): OnlineEndpoint | undefined {
    return this.entry;
  }

  /** Feeds one WebSocket frame. Never throws. */
  receive(data: RawData, isBinary: boolean): void {
    if (this.closed) return;
    try {
      if (isBinary) throw new SweepError('INVALID_MESSAGE', 'message: binary frames are not accepted, send JSON text');
      const text = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
      // Checked here as well as in the channel: a message without a usable id cannot be answered
      // with a response, so the sender gets an `error` note instead of silence.
      parseWith(Envelope, parseJsonText(text, 'message'), 'message');
      this.channel.receive(text);
    } catch (err) {
      const wire = toWireError(err);
      this.log.warn({ code: wire.code, reason: wire.message }, 'refused malformed message');
      this.channel.notify('error', wire);
      this.countBad();
    }
  }

  notify<T extends NoteType<AccessCatalogue>>(type: T, body: NoteBody<AccessCatalogue, T>): void {
    this.channel.notify(type, body);
  }

  /** A newer login of the same endpoint replaces this one: no offline presence, the newcomer announces itself. */
  kick(reason: string): void {
    if (this.entry) this.ctx.registry.remove(this.entry);
    this.entry = undefined;
    this.channel.notify('kicked', { reason });
    this.closeSocket(CLOSE.kicked, 'kicked');
  }

  closeSocket(code: number, reason: string): void {
    try {
      this.ws.close(code, reason);
    } catch (err) {
      this.log.debug({ err }, 'close failed; terminating');
      this.ws.terminate();
    }
  }

  /**
   * The socket is gone: leave the registry, tell the related endpoints, reject anything pending.
   * A12: closed with 1009 (a message too big for the other side, such as a login answer an older
   * server made too large), the session token of the last login never reached a client that can
   * use it: it is revoked, as is one whose answer was still on its way.
   */
  onSocketClosed(code?: number): void {
    if (this.closed) return;
    this.closed = true;
    if (this.issuedToken && code === 1009) this.revoke(this.issuedToken);
    if (this.loginTimer) this.ctx.clock.clear(this.loginTimer);
    this.loginTimer = undefined;
    this.endLogin('disconnected');
    this.channel.close('connection closed');
  }

  private countBad(): void {
    this.badMessages += 1;
    if (this.badMessages === MAX_BAD_MESSAGES) {
      this.log.warn({ count: this.badMessages }, 'closing connection: too many malformed messages');
      this.closeSocket(CLOSE.tooManyBadMessages, 'too many malformed messages');
    }
  }

  private async onLogin(body: LoginBody): Promise<LoginResult> {
    if (this.loginBusy) throw new SweepError('BUSY', 'login: another login on this connection is in progress');
    this.loginBusy = true;
    try {
      return await this.login(body);
    } finally {
      this.loginBusy = false;
    }
  }

  /** A8: a session token instead of the password; single use, bound to its endpoint id. */
  private async onResume(body: ResumeBody): Promise<LoginResult> {
    if (this.loginBusy) throw new SweepError('BUSY', 'resume: another login on this connection is in progress');
    const { store, limiter, clock } = this.ctx;
    // Keyed apart from usernames ('#' is not an account name character).
    const rateKey = `#${body.endpointId}`;
    const attempt = limiter.reserve(rateKey, this.address);
    let account: Account | undefined;
    try {
      const session = await store.takeLoginSession(hashToken(body.token), clock.now());
      account = session && session.endpointId === body.endpointId ? await store.getAccount(session.account) : undefined;
    } catch (err) {
      attempt.release();
      throw err;
    }
    if (!account) {
      attempt.failed();
      this.log.warn({ endpointId: body.endpointId }, 'resume refused');
      throw new SweepError('UNAUTHORIZED', BAD_SESSION);
    }
    attempt.succeeded();
    this.loginBusy = true;
    try {
      const { token: _token, ...rest } = body;
      return await this.establish(account, { ...rest, username: account.name }, 'resumed');
    } finally {
      this.loginBusy = false;
    }
  }

  /** A9: a fresh token for the current login; the previous one stops working. */
  private async onRefresh(): Promise<SessionToken> {
    const me = this.entry;
    if (!me) throw new SweepError('UNAUTHORIZED', '"refresh" needs a login first');
    const { token, expiresAt, hash } = this.makeToken();
    await this.ctx.store.replaceLoginSession(hash, me.account, me.info.endpointId, expiresAt);
    this.issuedToken = hash;
    return { token, expiresAt };
  }

  /** A7: a new session token; only its hash is ever stored (one live token per endpoint). */
  private makeToken(): SessionToken & { hash: string } {
    const token = randomBytes(32).toString('base64url');
    return { token, expiresAt: this.ctx.clock.now() + this.ctx.sessionTtlMs, hash: hashToken(token) };
  }

  private async login(body: LoginBody): Promise<LoginResult> {
    const { store, limiter, passwords } = this.ctx;
    const { username, endpointId } = body;
    const ids = { account: username, endpointId };
    // A11: the attempt counts from now, before Argon2, so parallel attempts cannot all pass the check.
    const attempt = limiter.reserve(username, this.address);
    let account: Account | undefined;
    let matches: boolean;
    try {
      account = await store.getAccount(username);
      // An unknown name costs a hash check too, so timing does not reveal which names exist.
      const hash = account?.passwordHash ?? (await dummyHash());
      matches = await passwords.verify(hash, body.password);
      // A provisioned device's own credential works for that endpoint id, with the signing key it was issued to.
      const device = !matches && account ? await store.getEndpointCredential(account.name, endpointId) : undefined;
      if (device && device.signingKey === body.signingKey) matches = await passwords.verify(device.passwordHash, body.password);
    } catch (err) {
      // Nothing was decided (server busy, internal error): the attempt is not a failure.
      attempt.release();
      if (toWireError(err).code === 'RATE_LIMITED') this.log.warn(ids, 'login refused: password checks busy');
      throw err;
    }
    if (!account || !matches) {
      // Counted even if the socket closed meanwhile: closing early must not hide a wrong guess.
      attempt.failed();
      this.log.warn({ ...ids, reason: account ? 'wrong password' : 'unknown account' }, 'login refused');
      throw new SweepError('UNAUTHORIZED', WRONG_CREDENTIALS);
    }
    attempt.succeeded();
    if (this.closed) throw new SweepError('CLOSED', 'login: connection closed');
    return await this.establish(account, body, 'password');
  }

  /**
   * A3, A4, A6, A7: registers the login, announces it, certifies the keys, opens a session.
   * Everything read from or written to the store happens first; from registering the login to
   * returning the answer nothing waits, so no presence note reaches this socket before its answer.
   */
  private async establish(account: Account, body: Omit<LoginBody, 'password'>, how: 'password' | 'resumed'): Promise<LoginResult> {
    const { registry, key, clock, store } = this.ctx;
    const { username, endpointId } = body;
    const ids = { account: username, endpointId };
    const checkSameLogin = (): OnlineEndpoint | undefined => {
      const current = this.entry;
      if (current && (current.account !== username || current.info.endpointId !== endpointId)) {
        throw new SweepError('BAD_STATE', `login: this connection is logged in as ${current.account}/${current.info.endpointId}; log out first`);
      }
      return current;
    };
    const refuseOwner = (owner: string | undefined): SweepError => {
      this.log.warn({ ...ids, owner }, 'login refused: endpoint id belongs to another account');
      return new SweepError('FORBIDDEN', `endpointId: "${endpointId}" belongs to another account; use this device's own id, or have an operator release it (sweep server endpoint release ${endpointId})`);
    };
    checkSameLogin();
    // A10: an endpoint id belongs to the account that first logged in with it, online or not.
    const owner = await store.claimEndpoint(endpointId, username, clock.now());
    if (owner !== username) throw refuseOwner(owner);
    const buddies = await store.buddiesOf(username);
    const token = this.makeToken();
    await store.replaceLoginSession(token.hash, username, endpointId, token.expiresAt);
    // The awaits above let other logins run: everything checked before is checked again now.
    if (this.closed) {
      this.revoke(token.hash);
      throw new SweepError('CLOSED', 'login: connection closed');
    }
    let current: OnlineEndpoint | undefined;
    try {
      current = checkSameLogin();
    } catch (err) {
      this.revoke(token.hash);
      throw err;
    }
    const holder = registry.get(endpointId);
    if (holder && holder.account !== username) {
      this.revoke(token.hash);
      throw refuseOwner(holder.account);
    }
    this.issuedToken = token.hash;
    const info = { endpointId, account: username, kind: body.kind, label: body.label, online: true };
    const renewed = current !== undefined;
    const entry: OnlineEndpoint = { account: username, info, peer: this, buddies };
    if (holder && holder.peer !== this) {
      this.log.info(ids, 'login replaces an older connection of the same endpoint');
      holder.peer.kick('replaced by a newer login of the same endpoint');
    }
    if (current) registry.remove(current);
    this.entry = entry;
    registry.set(entry);
    if (this.loginTimer) {
      clock.clear(this.loginTimer);
      this.loginTimer = undefined;
    }
    const changed = current === undefined || current.info.kind !== info.kind || current.info.label !== info.label;
    if (changed) registry.announce(entry, true);

    const now = clock.now();
    const certificate = issueCertificate(
      {
        v: 1,
        account: username,
        endpointId,
        kind: body.kind,
        label: body.label,
        signingKey: body.signingKey,
        dtlsFingerprint: body.dtlsFingerprint,
        issuedAt: now,
        expiresAt: now + this.ctx.certTtlMs,
      },
      key.privateKey,
    );
    this.log.info({ ...ids, kind: body.kind, renewed, how }, 'logged in');
    const session = { token: token.token, expiresAt: token.expiresAt };
    const result: LoginResult = { profile: this.profile(entry, account.displayName), certificate, serverTime: now, session };
    if (this.ctx.ice) {
      result.ice = iceConfigFor(this.ctx.ice, username, now);
      this.renewIce(this.ctx.ice, entry);
    }
    // A12: the answer stays within the message limit however many buddies are online.
    const inline = Buffer.byteLength(JSON.stringify(result)) <= INLINE_PROFILE_BYTES && LoginResultSchema.safeParse(result).success;
    if (!inline) {
      result.profile = { ...result.profile, siblings: [], buddies: [] };
      result.profileFollows = true;
    }
    // M3: the pages go after the answer; the channel sends the answer once this handler returns.
    const issued = this.issuedToken;
    setImmediate(() => this.afterLoginAnswer(entry, issued, !inline));
    return result;
  }

  /**
   * A12: runs once the login answer is on its way. The profile pages are built now, not with the
   * answer, so that every presence note sent before them is already reflected in them, and they
   * go out in one synchronous run, so no presence note falls between two pages. A login whose
   * socket closed before this point never delivered its session token: it is revoked.
   */
  private afterLoginAnswer(entry: OnlineEndpoint, issued: string | undefined, paged: boolean): void {
    if (this.closed) {
      if (issued) this.revoke(issued);
      return;
    }
    if (!paged || this.entry !== entry) return;
    try {
      const profile = this.profile(entry, '');
      const pages = profilePages(profile);
      for (const page of pages) this.channel.notify('profilePage', page);
      this.log.info({ account: entry.account, endpointId: entry.info.endpointId, pages: pages.length, buddies: profile.buddies.length }, 'profile sent in pages');
    } catch (err) {
      // Without its pages the client's login times out and it retries (A10): close rather than leave it waiting.
      this.log.error({ err }, 'profile pages not sent; closing the connection');
      this.closeSocket(CLOSE.shutdown, 'profile not available');
    }
  }

  /** A4: built from the registry and the buddies read at login, without waiting, so it matches the presence notes sent so far (A12). */
  private profile(entry: OnlineEndpoint, displayName: string): Profile {
    const { registry } = this.ctx;
    return {
      account: entry.account,
      displayName,
      endpointId: entry.info.endpointId,
      siblings: registry.endpointsOf(entry.account, entry.info.endpointId),
      buddies: entry.buddies.map((b) => ({
        account: b.name,
        displayName: b.displayName,
        endpoints: registry.endpointsOf(b.name),
      })),
    };
  }

  /** Revokes one session token in the background; never throws (the store may already be closed at shutdown). */
  private revoke(tokenHash: string): void {
    this.ctx.store.revokeLoginSession(tokenHash).then(
      () => this.log.info('revoked the session token of a login answer that was not delivered'),
      (err: unknown) => this.log.warn({ err }, 'could not revoke an undelivered session token'),
    );
  }

  private onSignal(to: string, payload: NoteBody<AccessCatalogue, 'signal'>['payload']): Record<string, never> {
    const me = this.entry;
    if (!me) throw new SweepError('UNAUTHORIZED', '"signal" needs a login first');
    const ids = { from: me.info.endpointId, fromAccount: me.account, to, kind: payload.kind };
    if (to === me.info.endpointId) throw new SweepError('INVALID_MESSAGE', `signal.to: "${to}" is this endpoint itself`);
    const target = this.ctx.registry.get(to);
    if (!target) {
      this.log.info(ids, 'signal refused: target offline');
      throw new SweepError('OFFLINE', `signal.to: endpoint "${to}" is not online`);
    }
    // A5: the relay forwards only between the same account or buddies (as read at the target's login).
    if (!follows(target, me.account)) {
      this.log.warn({ ...ids, toAccount: target.account }, 'signal refused: accounts may not talk');
      throw new SweepError('FORBIDDEN', `signal.to: endpoint "${to}" is neither of account "${me.account}" nor of a buddy`);
    }
    target.peer.notify('signal', { from: me.info.endpointId, fromAccount: me.account, payload });
    this.log.debug(ids, 'signal relayed');
    return {};
  }

  private async onLogout(): Promise<Record<string, never>> {
    // A9: the session token dies with the login.
    const entry = this.entry;
    this.endLogin('logged out');
    if (entry) await this.ctx.store.revokeLoginSessions(entry.account, entry.info.endpointId);
    // A10: a phone page that logs out lets go of its id, so a shared browser can log in to another account.
    if (entry?.info.kind === 'browser') await this.ctx.store.releaseEndpoint(entry.info.endpointId);
    this.armLoginTimer();
    return {};
  }

  /** A13: fresh credentials go out a while before the ones in use expire, for as long as this login lasts. */
  private renewIce(ice: IceOptions, entry: OnlineEndpoint): void {
    if (this.iceTimer) this.ctx.clock.clear(this.iceTimer);
    this.iceTimer = this.ctx.clock.setTimeout(() => {
      this.iceTimer = undefined;
      if (this.closed || this.entry !== entry) return;
      this.channel.notify('ice', iceConfigFor(ice, entry.account, this.ctx.clock.now()));
      this.renewIce(ice, entry);
    }, iceRenewalDelayMs(ice));
  }

  private endLogin(why: string): void {
    if (this.iceTimer) this.ctx.clock.clear(this.iceTimer);
    this.iceTimer = undefined;
    const entry = this.entry;
    if (!entry) return;
    this.entry = undefined;
    if (this.ctx.registry.remove(entry)) this.ctx.registry.announce(entry, false);
    this.log.info({ account: entry.account, endpointId: entry.info.endpointId, why }, 'login ended');
  }
}

function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('base64url');
}
