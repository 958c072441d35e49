import { accessCatalogue, type AccessCatalogue, type LoginResult, type SignalIn, type SignalPayload, type SessionToken } from '../../core/protocol/access.ts';
import type { EndpointInfo } from '../../core/protocol/common.ts';
import type { IceConfig } from '../../core/protocol/ice.ts';
import type { CallRecord } from '../../core/protocol/history.ts';
import type { PushSubscriptionJson } from '../../core/protocol/push.ts';
import { RpcChannel } from '../../core/protocol/rpc.ts';
import { ProfileCollector } from '../../core/protocol/profile-collector.ts';
import { systemClock } from '../../core/clock.ts';
import { SweepError } from '../../core/errors.ts';
import type { Identity } from './identity.ts';
import type { Logger } from '../../core/log.ts';

export interface AccessEvents {
  presence: (e: EndpointInfo) => void;
  signal: (s: SignalIn) => void;
  kicked: (reason: string) => void;
  /** The socket went away (not after close()). */
  lost: (reason: string) => void;
  /** A7/A9: a new session token to keep (undefined: forget it). */
  session: (s: SessionToken | undefined) => void;
  /** A13: fresh TURN credentials (L9: relayed links are remade with them). */
  ice: (ice: IceConfig) => void;
}

/** Refresh the session token when this share of its lifetime has passed (A9). */
const REFRESH_AT = 0.7;

/**
 * The browser's connection to the access server (docs/protocol.md part A): one WebSocket, the
 * shared RpcChannel and catalogue (every message validated), login by password or session token,
 * token refresh, logout.
 */
/** How many link set-up signals are kept for the endpoint before it listens. */
const MAX_EARLY_SIGNALS = 64;

export class AccessConnection {
  private readonly channel: RpcChannel<AccessCatalogue>;
  private readonly listeners: { [K in keyof AccessEvents]: AccessEvents[K][] } = { presence: [], signal: [], kicked: [], lost: [], session: [], ice: [] };
  private refreshTimer: ReturnType<typeof setTimeout> | undefined;
  /**
   * Signals that arrive before the page's endpoint listens: a far end may ask for a link the
   * moment this page logs in (a household ringing, H1), while the page still waits for the
   * microphone. Kept (bounded) for the first listener instead of being lost.
   */
  private earlySignals: SignalIn[] = [];
  private closed = false;
  /** A12: the pages of a login's profile being collected. */
  private pages: ProfileCollector | undefined;
  result: LoginResult | undefined;

  private constructor(
    private readonly ws: WebSocket,
    private readonly id: Identity,
    private readonly log: Logger,
  ) {
    this.channel = new RpcChannel({
      catalogue: accessCatalogue,
      send: (text) => ws.send(text),
      log,
      timeoutMs: 10_000,
      // The server sends only responses and notes; requests from it are refused.
      admit: (type) => {
        throw new SweepError('UNKNOWN_TYPE', `the browser answers no "${type}" request`);
      },
    });
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.channel.receive(ev.data);
      else log.warn({ type: typeof ev.data }, 'binary frame from the access server dropped');
    };
    ws.onclose = (ev) => {
      const reason = ev.reason || `socket closed (${ev.code})`;
      this.channel.close(reason);
      this.pages?.fail(new SweepError('CLOSED', `login: ${reason} before the profile was whole`));
      this.stopRefresh();
      if (!this.closed) for (const fn of this.listeners.lost) fn(reason);
      this.closed = true;
    };
    this.channel.onNote('presence', (b) => this.listeners.presence.forEach((fn) => fn(b.endpoint)));
    this.channel.onNote('signal', (b) => {
      if (this.listeners.signal.length === 0) {
        if (this.earlySignals.length < MAX_EARLY_SIGNALS) this.earlySignals.push(b);
        return;
      }
      this.listeners.signal.forEach((fn) => fn(b));
    });
    this.channel.onNote('kicked', (b) => this.listeners.kicked.forEach((fn) => fn(b.reason)));
    this.channel.onNote('error', (b) => log.warn({ code: b.code, reason: b.message }, 'the access server refused a message'));
    this.channel.onNote('ice', (b) => {
      if (!this.result) return;
      this.result.ice = b;
      for (const fn of this.listeners.ice) fn(b);
    });
    this.channel.onNote('profilePage', (b) => {
      if (this.pages) this.pages.add(b);
      else log.warn({ page: b.page }, 'profile page without a login waiting for it; ignored');
    });
  }

  static open(url: string, id: Identity, log: Logger): Promise<AccessConnection> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const fail = (): void => reject(new SweepError('OFFLINE', `the access server at ${url} cannot be reached`));
      ws.onerror = fail;
      ws.onclose = fail;
      ws.onopen = () => {
        ws.onerror = null;
        resolve(new AccessConnection(ws, id, log));
      };
    });
  }

  on<K extends keyof AccessEvents>(type: K, fn: AccessEvents[K]): void {
    this.listeners[type].push(fn);
    if (type === 'signal') {
      const early = this.earlySignals;
      this.earlySignals = [];
      for (const s of early) (fn as AccessEvents['signal'])(s);
    }
  }

  private keys(label: string) {
    return { endpointId: this.id.endpointId, kind: 'browser' as const, label, signingKey: this.id.signingKeyRaw, dtlsFingerprint: this.id.dtlsFingerprint };
  }

  /** A1: the password goes to the server once and is kept nowhere. */
  async login(username: string, password: string, label: string): Promise<LoginResult> {
    return this.opened(await this.whole(await this.channel.request('login', { username, password, ...this.keys(label) })));
  }

  /** A8: logs in with the stored session token. */
  async resume(token: string, label: string): Promise<LoginResult> {
    return this.opened(await this.whole(await this.channel.request('resume', { token, ...this.keys(label) })));
  }

  /** A12: a large building's profile follows its login answer in pages; resolves once it is whole. */
  private whole(result: LoginResult): Promise<LoginResult> {
    if (!result.profileFollows) return Promise.resolve(result);
    const pages = new ProfileCollector(result, systemClock, 10_000);
    this.pages = pages;
    return pages.whole.finally(() => {
      if (this.pages === pages) this.pages = undefined;
    });
  }

  signal(to: string, payload: SignalPayload): Promise<void> {
    return this.channel.request('signal', { to, payload }).then(() => undefined);
  }

  /** A15: the newest calls of this account's household, newest first. */
  history(limit: number): Promise<CallRecord[]> {
    return this.channel.request('history.list', { limit }).then((r) => r.records);
  }

  /** A16: the server's VAPID public key, to subscribe with. */
  pushKey(): Promise<string> {
    return this.channel.request('push.key', {}).then((r) => r.publicKey);
  }

  /** A16: hands this browser's push subscription to the server, bound to this endpoint. */
  pushSubscribe(subscription: PushSubscriptionJson): Promise<void> {
    return this.channel.request('push.subscribe', { subscription }).then(() => undefined);
  }

  /** A16: the server forgets this endpoint's push subscription (do not disturb, H7). */
  pushUnsubscribe(): Promise<void> {
    return this.channel.request('push.unsubscribe', {}).then(() => undefined);
  }

  /** A9: ends the login; the server revokes the token. */
  async logout(): Promise<void> {
    this.stopRefresh();
    try {
      await this.channel.request('logout', {}, { timeoutMs: 3000 });
    } finally {
      this.emitSession(undefined);
      this.close();
    }
  }

  close(): void {
    this.stopRefresh();
    this.closed = true;
    this.channel.close('closed');
    this.ws.close(1000, 'bye');
  }

  private opened(result: LoginResult): LoginResult {
    this.result = result;
    this.emitSession(result.session);
    return result;
  }

  private emitSession(s: SessionToken | undefined): void {
    for (const fn of this.listeners.session) fn(s);
    if (s) this.scheduleRefresh(s);
  }

  private scheduleRefresh(s: SessionToken): void {
    this.stopRefresh();
    const ms = Math.max(1000, (s.expiresAt - Date.now()) * REFRESH_AT);
    this.refreshTimer = setTimeout(() => {
      this.channel.request('refresh', {}).then(
        (next) => this.emitSession(next),
        (err: unknown) => this.log.warn({ err }, 'session refresh failed'),
      );
    }, ms);
  }

  private stopRefresh(): void {
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.refreshTimer = undefined;
  }
}
