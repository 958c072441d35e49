import type { WebSocket, RawData } from 'ws';
import { randomBytes } from 'node:crypto';
import { accessCatalogue, LoginResult as LoginResultSchema, type AccessCatalogue, type LoginBody, type LoginResult, type Profile, type ResumeBody, type ResumeProofBody, type SessionToken } from '../core/protocol/access.ts';
import { Envelope, type NoteBody, type NoteType } from '../core/protocol/envelope.ts';
import { RpcChannel } from '../core/protocol/rpc.ts';
import { MAX_MESSAGE_BYTES, parseJsonText, parseWith } from '../core/protocol/validate.ts';
import { profilePages } from './profile-pages.ts';
import { issueCertificate } from '../platform/certificate.ts';
import { iceConfigFor, iceRenewalDelayMs, type IceOptions } from './ice.ts';
import { SweepError, toWireError } from '../core/errors.ts';
import type { Clock, TimerHandle } from '../core/clock.ts';
import type { Logger } from '../platform/log.ts';
import { checkPassword, checkSessionToken, hashToken, storeTrouble } from './credentials.ts';
import { issueNonce, refuseProof, verifyResumeProof, type VerifiedProof } from './resume-proof.ts';
import type { PasswordGate } from './password-gate.ts';
import type { LoginGate } from './login-gate.ts';
import type { LoginLimiter } from './shared-rate-limit.ts';
import type { OnlineEndpoint, OnlineRegistry } from './registry.ts';
import type { NodeBus } from './node-bus.ts';
import { profileFrom } from './login-profile.ts';
import type { ServerKey } from './server-key.ts';
import type { Account, AccountStore } from './store.ts';
import { listCalls, reportCall } from './history.ts';
import type { PushService } from './push/push-service.ts';
import type { OnlineRows } from './online-rows.ts';
import type { Revocations } from './revocations.ts';

export interface ConnectionContext {
  store: AccountStore;
  registry: OnlineRegistry;
  limiter: LoginLimiter;
  /** A11: bounded Argon2 work, and bounded logins in progress. */
  passwords: PasswordGate;
  logins: LoginGate;
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
  /** This node's id (the store's online rows name it). */
  nodeId: string;
  /** Relay and presence between nodes (A4, A5). */
  nodeBus: NodeBus;
  /** A16: Web Push subscriptions and ring pushes. */
  push: PushService;
  /** A15: call records older than this are deleted. */
  historyRetentionMs: number;
  /** Store writes that nobody waits for (logouts): errors logged, awaited at shutdown. */
  background(work: Promise<unknown>): void;
  /** A4: removes an ended login's online row, later if the store is out of reach now. */
  onlineRows: OnlineRows;
  /** A9: revokes a session token, later if the store is out of reach now (refused here meanwhile). */
  revocations: Revocations;
}

/** WebSocket close codes used by the server (4000-4999 are for applications). */
export const CLOSE = {
  kicked: 4001,
  loginTimeout: 4002,
  tooManyBadMessages: 4003,
  /** The node fenced itself (cut off from the cluster): log in again, elsewhere if need be. */
  fenced: 4004,
  shutdown: 1001,
} as const;

const MAX_BAD_MESSAGES = 50;
const LOGIN_TYPES: ReadonlySet<string> = new Set(['login', 'resume', 'challenge', 'resumeProof']);
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
  /** M3, A12: notes that wait while a login is answered (set from registering until the answer and its pages are out). */
  private held: Array<() => void> | undefined;

  /** `sendRetryAfter`: the client asked for A17's `retryAfterMs` on refusals (older ones cannot read it). */
  constructor(private readonly ws: WebSocket, readonly address: string, private readonly ctx: ConnectionContext, sendRetryAfter = false) {
    this.log = ctx.log.child({ address });
    this.channel = new RpcChannel({
      catalogue: accessCatalogue,
      send: (text) => ws.send(text),
      log: this.log,
      clock: ctx.clock,
      sendRetryAfter,
      // A6: before login, only the ways to log in are answered (A1, A8, A14).
      admit: (type) => {
        if (!LOGIN_TYPES.has(type) && !this.entry) throw new SweepError('UNAUTHORIZED', `"${type}" needs a login first`);
      },
      onBadMessage: () => this.countBad(),
    });
    this.channel.handle('login', (body) => this.onLogin(body));
    this.channel.handle('signal', (body) => this.onSignal(body.to, body.payload));
    this.channel.handle('resume', (body) => this.onResume(body));
    this.channel.handle('refresh', () => this.onRefresh());
    this.channel.handle('challenge', () => issueNonce(this.ctx.key, this.ctx.clock.now()));
    this.channel.handle('resumeProof', (body) => this.onResumeProof(body));
    this.channel.handle('logout', () => this.onLogout());
    // A15: A6's `admit` guarantees a login; `loggedInAs` names the endpoint.
    this.channel.handle('history.report', (body) => reportCall(ctx.store, this.log, this.loggedInAs('history.report'), body.record, ctx.clock.now(), ctx.historyRetentionMs));
    this.channel.handle('history.list', (body) => listCalls(ctx.store, this.log, this.loggedInAs('history.list'), body.limit));
    this.channel.handle('push.key', () => ({ publicKey: ctx.push.publicKey }));
    this.channel.handle('push.subscribe', (body) => ctx.push.subscribe(this.loggedInAs('push.subscribe'), body.subscription, ctx.clock.now()));
    this.channel.handle('push.unsubscribe', () => ctx.push.unsubscribe(this.loggedInAs('push.unsubscribe')));
    this.channel.handle('ring.notify', (body) => ctx.push.notice(this.loggedInAs('ring.notify'), body, ctx.clock.now()));
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

  private loggedInAs(type: string): OnlineEndpoint {
    if (!this.entry) throw new SweepError('UNAUTHORIZED', `"${type}" needs a login first`);
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
    if (this.held) this.held.push(() => this.channel.notify(type, body));
    else this.channel.notify(type, body);
  }

  /** A newer login of the same endpoint replaces this one: no offline presence, the newcomer announces itself. */
  kick(reason: string): void {
    if (this.entry) this.leaveRegistry(this.entry);
    this.entry = undefined;
    this.held = undefined;
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

  /** One login at a time on a socket (BUSY); within the node's bound on logins in progress when a gate is given (A11). */
  private async oneLogin(what: string, run: () => Promise<LoginResult>, gate?: LoginGate): Promise<LoginResult> {
    if (this.loginBusy) throw new SweepError('BUSY', `${what}: another login on this connection is in progress`);
    this.loginBusy = true;
    try {
      return await (gate ? gate.run(what, run, () => !this.closed) : run());
    } finally {
      this.loginBusy = false;
    }
  }

  /** A11: the Argon2 gate bounds password logins (in the login gate they would hold slots the cheap ones need); while that gate's slots are all taken or a refused crowd is due back, a check costing what twenty proofs do waits. */
  private onLogin(body: LoginBody): Promise<LoginResult> {
    const busy = this.ctx.logins.refuseWhileCrowded();
    return busy ? Promise.reject(busy) : this.oneLogin('login', () => this.login(body));
  }

  /** A8: a session token instead of the password; single use, bound to its endpoint id. */
  private onResume(body: ResumeBody): Promise<LoginResult> {
    return this.oneLogin('resume', async () => {
      const account = await checkSessionToken(this.ctx, this.address, body, this.log);
      const { token: _token, ...rest } = body;
      return await this.establish(account, { ...rest, username: account.name }, 'resumed');
    }, this.ctx.logins);
  }

  /** A14: a certificate of an earlier login and a signed server nonce instead of the password. */
  private onResumeProof(body: ResumeProofBody): Promise<LoginResult> {
    return this.oneLogin('resumeProof', async () => {
      const proof = await verifyResumeProof(this.ctx, this.address, body, this.log);
      const { certificate: c } = proof;
      if (this.closed) throw new SweepError('CLOSED', 'login: connection closed');
      return await this.establish(proof, { username: c.account, endpointId: c.endpointId, kind: c.kind, label: body.label, signingKey: c.signingKey, dtlsFingerprint: c.dtlsFingerprint }, 'proof');
    }, this.ctx.logins);
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
    const account = await checkPassword(this.ctx, this.address, body, this.log);
    if (this.closed) throw new SweepError('CLOSED', 'login: connection closed');
    return await this.establish(account, body, 'password');
  }

  /**
   * A3, A4, A6, A7: registers the login, announces it, certifies the keys, opens a session.
   * The store is written first (binding, token, online row); then the login is registered and
   * subscribed in one synchronous run; then the profile is read. Notes for this socket are held
   * from registering until the answer and its pages are out (M3, A12).
   */
  private async establish(checked: Account | VerifiedProof, body: Omit<LoginBody, 'password'>, how: 'password' | 'resumed' | 'proof'): Promise<LoginResult> {
    const { registry, key, clock, store, nodeBus } = this.ctx;
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
    const token = this.makeToken();
    const info = { endpointId, account: username, kind: body.kind, label: body.label, online: true };
    const sessionId = randomBytes(12).toString('base64url');
    const undo = (err: unknown): never => {
      this.revoke(token.hash);
      this.ctx.background(this.ctx.onlineRows.drop(info, sessionId));
      throw err;
    };
    // A10: an endpoint id belongs to the account that first logged in with it, online or not;
    // only its owner's session token and online row are written (a newer login's row replaces
    // an older one's, on any node). One round trip. An error may come after the commit: undone.
    const online = { endpointId, account: username, kind: body.kind, label: body.label, nodeId: this.ctx.nodeId, sessionId, since: clock.now() };
    // A14: a resume proof's nonce is recorded in the same round trip; used before, nothing is written.
    const proof = 'nonce' in checked ? checked : undefined;
    const { owner, buddies, account, replayed } = await store.writeLogin({ boundAt: online.since, tokenHash: token.hash, expiresAt: token.expiresAt, online, ...(proof && { resumeNonce: proof.nonce }) }).catch((err: unknown) => undo(storeTrouble(err, this.log, ids)));
    if (proof && (replayed || !account)) return undo(await refuseProof(this.ctx, proof.certificate, this.address, this.log, replayed ? 'replayed' : 'no account'));
    if (!account) return undo(new SweepError('UNAUTHORIZED', 'login: the account no longer exists'));
    if (owner !== username) throw refuseOwner(owner);
    const entry: OnlineEndpoint = { account: username, info, peer: this, buddies, sessionId };
    // The awaits above let other logins run: everything checked before is checked again now.
    if (this.closed) undo(new SweepError('CLOSED', 'login: connection closed'));
    let current: OnlineEndpoint | undefined;
    try {
      current = checkSameLogin();
    } catch (err) {
      undo(err);
    }
    const holder = registry.get(endpointId);
    if (holder && holder.account !== username) undo(refuseOwner(holder.account));
    this.issuedToken = token.hash;
    this.held ??= [];
    if (holder && holder.peer !== this) {
      this.log.info(ids, 'login replaces an older connection of the same endpoint');
      holder.peer.kick('replaced by a newer login of the same endpoint');
    }
    if (current) this.leaveRegistry(current);
    this.entry = entry;
    registry.set(entry);
    nodeBus.attach(entry);
    nodeBus.kickElsewhere(endpointId, entry.sessionId);
    if (this.loginTimer) {
      clock.clear(this.loginTimer);
      this.loginTimer = undefined;
    }
    const changed = current === undefined || current.info.kind !== info.kind || current.info.label !== info.label;
    if (changed) nodeBus.announce(info);

    let profile: Profile;
    try {
      // Subscribed before reading: whatever changes after the read arrives as a note (A4, A12).
      await nodeBus.flush();
      const rows = await store.onlineForAccount(username);
      nodeBus.seed(rows);
      profile = profileFrom(entry, account.displayName, rows);
    } catch (err) {
      this.log.error({ ...ids, err }, 'login failed: profile not read');
      this.endLogin('profile not read');
      this.releaseHeld();
      throw new SweepError('INTERNAL', 'login: the profile could not be read; retry');
    }
    if (this.entry !== entry) {
      this.releaseHeld();
      throw new SweepError('CLOSED', 'login: ended while the profile was read');
    }
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
    this.log.info({ ...ids, kind: body.kind, renewed: current !== undefined, how, node: this.ctx.nodeId }, 'logged in');
    const session = { token: token.token, expiresAt: token.expiresAt };
    const result: LoginResult = { profile, certificate, serverTime: now, session };
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
    setImmediate(() => this.afterLoginAnswer(entry, issued, inline ? undefined : profile));
    return result;
  }

  /**
   * A12: runs once the login answer is on its way: the profile pages go out in one synchronous
   * run, then the notes held since the login registered, so no note falls between two pages and
   * every note that changes the profile comes after it. A login whose socket closed before this
   * point never delivered its session token: it is revoked.
   */
  private afterLoginAnswer(entry: OnlineEndpoint, issued: string | undefined, paged: Profile | undefined): void {
    if (this.closed) {
      if (issued) this.revoke(issued);
      this.held = undefined;
      return;
    }
    if (paged && this.entry === entry) {
      try {
        const pages = profilePages(paged);
        for (const page of pages) this.channel.notify('profilePage', page);
        this.log.info({ account: entry.account, endpointId: entry.info.endpointId, pages: pages.length, buddies: paged.buddies.length }, 'profile sent in pages');
      } catch (err) {
        // Without its pages the client's login times out and it retries (A10): close rather than leave it waiting.
        this.log.error({ err }, 'profile pages not sent; closing the connection');
        this.closeSocket(CLOSE.shutdown, 'profile not available');
      }
    }
    this.releaseHeld();
  }

  /** Sends the notes held while a login was being answered. */
  private releaseHeld(): void {
    const held = this.held;
    this.held = undefined;
    for (const send of held ?? []) send();
  }

  /** Revokes one session token in the background; never throws (the store may already be closed at shutdown). */
  private revoke(tokenHash: string): void {
    this.ctx.background(this.ctx.revocations.revoke(tokenHash).then((now) => now && this.log.info('revoked the session token of a login answer that was not delivered')));
  }

  /** A5: over the bus to the node that holds the target (this one too); that node applies the account rule. */
  private async onSignal(to: string, payload: NoteBody<AccessCatalogue, 'signal'>['payload']): Promise<Record<string, never>> {
    const me = this.entry;
    if (!me) throw new SweepError('UNAUTHORIZED', '"signal" needs a login first');
    const ids = { from: me.info.endpointId, fromAccount: me.account, to, kind: payload.kind };
    if (to === me.info.endpointId) throw new SweepError('INVALID_MESSAGE', `signal.to: "${to}" is this endpoint itself`);
    try {
      await this.ctx.nodeBus.relay(me, to, payload);
    } catch (err) {
      this.log.info({ ...ids, code: toWireError(err).code }, 'signal refused');
      throw err;
    }
    this.log.debug(ids, 'signal relayed');
    return {};
  }

  private async onLogout(): Promise<Record<string, never>> {
    // A9: the session token dies with the login (its own, later, if the store is out of reach now).
    const entry = this.entry;
    const issued = this.issuedToken;
    this.endLogin('logged out');
    if (entry) await this.ctx.store.revokeLoginSessions(entry.account, entry.info.endpointId).catch(() => (issued ? this.ctx.revocations.revoke(issued) : false));
    // A10, A16: a phone page that logs out lets go of its id (a shared browser may log in to another account) and its pushes.
    if (entry?.info.kind === 'browser') await Promise.all([this.ctx.store.releaseEndpoint(entry.info.endpointId), this.ctx.push.unsubscribe(entry)]);
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

  private leaveRegistry(entry: OnlineEndpoint): boolean {
    if (!this.ctx.registry.remove(entry)) return false;
    this.ctx.nodeBus.detach(entry);
    return true;
  }

  private endLogin(why: string): void {
    if (this.iceTimer) this.ctx.clock.clear(this.iceTimer);
    this.iceTimer = undefined;
    const entry = this.entry;
    if (!entry) return;
    this.entry = undefined;
    // Offline only if the online row was still this login's: a newer login (any node) wins.
    if (this.leaveRegistry(entry)) this.ctx.background(this.ctx.onlineRows.drop(entry.info, entry.sessionId));
    this.log.info({ account: entry.account, endpointId: entry.info.endpointId, why }, 'login ended');
  }
}
